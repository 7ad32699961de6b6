"""Gene graphs GEARS learns on. Here: the Gene Ontology perturbation graph.

GEARS links two genes by the Jaccard index of their GO annotation sets,
``J(a, b) = |GO(a) ∩ GO(b)| / |GO(a) ∪ GO(b)|``, keeps pairs with ``J > 0.1``
(``gears.utils.get_GO_edge_list``) and then, for every target gene, its ``k + 1`` strongest
sources (the ``+ 1`` is the self-loop, ``J(a, a) = 1``). This module computes the same edges
with one sparse matrix product instead of GEARS' all-pairs Python loop, from the shipped
gene → GO table, so nothing is fetched from Dataverse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

GO_EDGE_COLUMNS = ["source", "target", "importance"]


def go_jaccard_edges(gene2go: Mapping[str, frozenset[str] | set[str]], genes: Sequence[str],
                     threshold: float = 0.1) -> pd.DataFrame:
    """All directed edges with GO Jaccard ``> threshold`` among ``genes`` that have annotation.

    Rows are ordered like GEARS' edge list: by source in the order of ``genes``, then target.
    """
    annotated = [g for g in genes if gene2go.get(g)]
    terms = sorted({t for g in annotated for t in gene2go[g]})
    term_index = {t: i for i, t in enumerate(terms)}
    rows = [i for i, g in enumerate(annotated) for _ in gene2go[g]]
    cols = [term_index[t] for g in annotated for t in gene2go[g]]
    membership = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                               shape=(len(annotated), len(terms)))  # genes × GO terms
    shared = (membership @ membership.T).toarray()  # genes × genes: |GO(a) ∩ GO(b)|
    sizes = np.diag(shared).copy()
    jaccard = shared / (sizes[:, None] + sizes[None, :] - shared)
    source, target = np.nonzero(jaccard > threshold)
    names = np.array(annotated, dtype=object)
    return pd.DataFrame({"source": names[source], "target": names[target],
                         "importance": jaccard[source, target].astype(float)})


def top_k_per_target(edges: pd.DataFrame, k: int = 20) -> pd.DataFrame:
    """For every target, its ``k + 1`` highest-importance edges (GEARS'
    ``groupby('target').apply(nlargest(k + 1))``: ties keep the earlier row)."""
    ranked = edges.assign(_row=np.arange(len(edges))).sort_values(
        ["target", "importance", "_row"], ascending=[True, False, True], kind="stable")
    return ranked.groupby("target", sort=True).head(k + 1).drop(columns="_row").reset_index(drop=True)


def go_perturbation_graph(gene2go: Mapping[str, frozenset[str] | set[str]], genes: Sequence[str],
                          k: int = 20, threshold: float = 0.1) -> pd.DataFrame:
    """GEARS' GO graph over ``genes`` (``source,target,importance``), ready for cell-gears."""
    return top_k_per_target(go_jaccard_edges(gene2go, sorted(set(genes)), threshold), k)


def write_gears_go_csv(edges: pd.DataFrame, path: Path) -> Path:
    """Write the graph as cell-gears' ``go_essential_<name>.csv`` (all GEARS' Jaccard edges;
    cell-gears does its own top-k). Note that cell-gears looks for that file relative to the
    working directory (``./data/go_essential_<name>.csv``)."""
    from helpers.files import atomic_write_csv

    missing = set(GO_EDGE_COLUMNS) - set(edges.columns)
    if missing:
        raise ValueError(f"GO edge table lacks columns {sorted(missing)}; expected {GO_EDGE_COLUMNS}")
    return atomic_write_csv(edges[GO_EDGE_COLUMNS], path)


def coexpression_edges(X: np.ndarray, gene_names: Sequence[str], k: int = 20,
                       threshold: float = 0.4, block_rows: int = 4096) -> pd.DataFrame:
    """GEARS' gene co-expression graph (``gears.utils.get_coexpression_network_from_train``).

    ``X`` holds the cells GEARS uses: training cells whose condition contains ``ctrl`` (control
    and training singles), cells × genes. For every target gene, the ``k + 1`` genes with the
    largest absolute Pearson correlation (itself included) become sources, and edges with
    ``|r| <= threshold`` are dropped.
    """
    # the Gram matrix in float64, a block of cells at a time (dense or sparse X): no centred
    # copy of the whole matrix (at Norman's size two float64 copies took 4 GB)
    n_cells, n_genes = X.shape
    gram, sums = np.zeros((n_genes, n_genes)), np.zeros(n_genes)
    for start in range(0, n_cells, block_rows):
        block = X[start:start + block_rows]
        block = np.asarray(block.toarray() if hasattr(block, "toarray") else block, dtype=np.float64)
        gram += block.T @ block
        sums += block.sum(axis=0)
    mean = sums / n_cells
    covariance = gram - n_cells * np.outer(mean, mean)
    norms = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = covariance / np.outer(norms, norms)
    corr = np.abs(np.nan_to_num(corr, nan=0.0))
    order = np.argsort(corr, axis=1)[:, -(k + 1):]  # as GEARS: ascending, last k+1
    values = np.take_along_axis(corr, order, axis=1)
    names = np.asarray(gene_names, dtype=object)
    targets = np.repeat(np.arange(len(names)), order.shape[1])
    edges = pd.DataFrame({"source": names[order.ravel()], "target": names[targets],
                          "importance": values.ravel()})
    return edges[edges.importance > threshold].reset_index(drop=True)


def edge_tensors(edges: pd.DataFrame, nodes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(edge_index (2, E), edge_weight (E,))`` of the edges among ``nodes``, indexed by position
    in ``nodes`` (what GEARS' ``GeneSimNetwork`` hands to its graph convolutions)."""
    index = {n: i for i, n in enumerate(nodes)}
    kept = edges[edges.source.isin(index) & edges.target.isin(index)]
    kept = kept.drop_duplicates(["source", "target"], keep="last")
    edge_index = np.vstack([kept.source.map(index).to_numpy(), kept.target.map(index).to_numpy()])
    return edge_index.astype(np.int64), kept.importance.to_numpy(np.float32)
