"""Fixed gene embeddings ("priors") for GEARS: from GO annotations or from a file.

A prior is a table gene symbol → vector. It enters the dense GEARS engine through a trainable
projection beside GEARS' own trainable embedding (as scELMo plugged language-model embeddings
into GEARS); genes the table lacks get zeros and are counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

PRIOR_TARGETS = ("gene", "perturbation", "both")


class EmbeddingFileError(ValueError):
    """An embedding table that cannot be used; the message names the file and the fix."""


def go_svd_embeddings(gene2go: Mapping[str, frozenset[str] | set[str]], genes: Sequence[str],
                      n_components: int = 64, seed: int = 0) -> pd.DataFrame:
    """Truncated SVD of the binary gene × GO-term matrix (rows L2-normalised first), for the
    ``genes`` with annotation: genes sharing GO terms get nearby vectors. No pretraining."""
    from sklearn.decomposition import TruncatedSVD

    annotated = [g for g in dict.fromkeys(genes) if gene2go.get(g)]
    terms = sorted({t for g in annotated for t in gene2go[g]})
    index = {t: i for i, t in enumerate(terms)}
    rows = [i for i, g in enumerate(annotated) for _ in gene2go[g]]
    cols = [index[t] for g in annotated for t in gene2go[g]]
    membership = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(annotated), len(terms)))
    norms = np.sqrt(np.asarray(membership.sum(axis=1))).ravel()
    membership = sp.diags(1 / norms) @ membership
    k = min(n_components, min(membership.shape) - 1)
    vectors = TruncatedSVD(n_components=k, random_state=seed).fit_transform(membership)
    return pd.DataFrame(vectors, index=annotated, columns=[f"go_svd_{i}" for i in range(k)])


def read_embedding_table(path: Path | str) -> pd.DataFrame:
    """Read a gene-embedding table: CSV/TSV (first column the gene symbol), Parquet (index or
    first column the symbol) or NPZ (arrays ``genes`` and ``embeddings``)."""
    path = Path(path)
    if not path.is_file():
        raise EmbeddingFileError(f"{path}: file not found. What to do: pass the path of a CSV, TSV, "
                                 "Parquet or NPZ table of gene symbol → vector")
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix in (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt"):
        table = pd.read_csv(path, sep="\t" if ".tsv" in suffix or suffix == ".txt" else ",", index_col=0)
    elif suffix == ".parquet":
        table = pd.read_parquet(path)
        if isinstance(table.index, pd.RangeIndex):  # symbols stored as the first column
            table = table.set_index(table.columns[0])
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if not {"genes", "embeddings"} <= set(archive.files):
                raise EmbeddingFileError(f"{path}: NPZ needs arrays 'genes' and 'embeddings', found "
                                         f"{archive.files}. What to do: np.savez(path, genes=..., embeddings=...)")
            table = pd.DataFrame(archive["embeddings"], index=archive["genes"].astype(str))
    else:
        raise EmbeddingFileError(f"{path}: unknown format {suffix!r}. What to do: use .csv, .tsv, "
                                 ".parquet or .npz")
    table.index = table.index.astype(str)
    duplicated = table.index[table.index.duplicated()].unique().tolist()
    if duplicated:
        raise EmbeddingFileError(f"{path}: {len(duplicated)} gene(s) appear more than once "
                                 f"({', '.join(duplicated[:5])}). What to do: keep one row per gene")
    try:
        table = table.astype(np.float32)
    except (TypeError, ValueError) as error:
        raise EmbeddingFileError(f"{path}: embedding values must be numbers ({error}). What to do: "
                                 "one row per gene, its symbol first, then only numeric columns") from error
    if not np.isfinite(table.to_numpy()).all():
        raise EmbeddingFileError(f"{path}: contains NaN or infinite values. What to do: drop or fix those rows")
    return table


def match_genes(wanted: Sequence[str], available: Sequence[str], aliases: pd.DataFrame) -> dict[str, str]:
    """For each wanted gene, the name it has in ``available``: the same symbol, else its current
    symbol (when ``wanted`` is an alias), else one of its aliases. ``aliases`` has columns
    ``symbol`` (current) and ``alias_symbol``."""
    have = set(available)
    current_of = aliases.groupby("alias_symbol")["symbol"].agg(list).to_dict()
    aliases_of = aliases.groupby("symbol")["alias_symbol"].agg(list).to_dict()
    matched = {}
    for gene in wanted:
        candidates = [gene, *current_of.get(gene, [])]
        candidates += [a for c in list(candidates) for a in aliases_of.get(c, [])]
        hit = next((c for c in candidates if c in have), None)
        if hit is not None:
            matched[gene] = hit
    return matched


def align_embeddings(table: pd.DataFrame, genes: Sequence[str], aliases: pd.DataFrame,
                     source: str = "embedding table") -> tuple[np.ndarray, pd.DataFrame]:
    """``(matrix (len(genes), D), report)``: the table's vector for each gene (zeros when it has
    none) and, per gene, whether and under which name it was found.

    A table that matches none of ``genes`` is an error naming ``source`` (usually a table keyed
    by another identifier, e.g. Ensembl IDs, or of another species)."""
    matched = match_genes(genes, table.index, aliases)
    if not matched:
        raise EmbeddingFileError(
            f"{source}: none of its {len(table)} genes (first: {', '.join(map(str, table.index[:3]))}) "
            f"matches any of the {len(genes)} dataset genes (first: {', '.join(list(genes)[:3])}), even "
            "through HGNC aliases. What to do: key the table by human gene symbols (map Ensembl IDs to "
            "symbols first)")
    matrix = np.zeros((len(genes), table.shape[1]), dtype=np.float32)
    for i, gene in enumerate(genes):
        if gene in matched:
            matrix[i] = table.loc[matched[gene]].to_numpy()
    report = pd.DataFrame({"gene": list(genes), "matched_as": [matched.get(g) for g in genes]})
    report["found"] = report.matched_as.notna()
    report["via_alias"] = report.found & (report.matched_as != report.gene)
    return matrix, report


def nearest_neighbours(table: pd.DataFrame, queries: Sequence[str], k: int = 5) -> pd.DataFrame:
    """The ``k`` rows of ``table`` most cosine-similar to each query row (``query,rank,gene,cosine``)."""
    vectors = table.to_numpy(dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    rows = []
    for query in queries:
        similarity = unit @ unit[table.index.get_loc(query)]
        order = [i for i in np.argsort(-similarity, kind="stable") if table.index[i] != query][:k]
        rows += [{"query": query, "rank": r + 1, "gene": table.index[i], "cosine": float(similarity[i])}
                 for r, i in enumerate(order)]
    return pd.DataFrame(rows)


def neighbour_agreement(table: pd.DataFrame, labels: pd.Series, k: int = 5) -> tuple[float, float, int]:
    """How often a labelled row's ``k`` most cosine-similar labelled rows share its label, beside
    the rate a random choice of neighbours would give (the labels' own frequencies). Returns
    ``(rate, chance, n)``, ``n`` the labelled rows; NaN rates when fewer than two."""
    labelled = [g for g in table.index if g in labels.index and pd.notna(labels[g])]
    if len(labelled) < 2:
        return float("nan"), float("nan"), len(labelled)
    vectors = table.loc[labelled].to_numpy(dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    k = min(k, len(labelled) - 1)
    neighbours = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    own = labels.loc[labelled].to_numpy()
    rate = float((own[neighbours] == own[:, None]).mean())
    counts = pd.Series(own).value_counts().to_numpy()
    chance = float(((counts * (counts - 1)) / (len(own) - 1)).sum() / len(own))  # same label, another row
    return rate, chance, len(labelled)


def choose_prior_target(validation: pd.DataFrame) -> pd.DataFrame:
    """Per prior, the target (``gene``, ``perturbation`` or ``both``) with the lowest validation
    error; ``validation`` has columns ``prior, target, val_mse_top20_de`` (one row per run; seeds
    are averaged). Ties go to the earlier target in :data:`PRIOR_TARGETS`. The test set is never
    looked at. Returns ``prior, target, val_mse_top20_de, chosen`` for every candidate."""
    unknown = sorted(set(validation.target) - set(PRIOR_TARGETS))
    if unknown:
        raise ValueError(f"unknown prior target(s) {unknown}; choose from {PRIOR_TARGETS}")
    mean = (validation.groupby(["prior", "target"], as_index=False).val_mse_top20_de.mean()
            .assign(order=lambda t: t.target.map(PRIOR_TARGETS.index))
            .sort_values(["prior", "val_mse_top20_de", "order"], kind="stable"))
    mean["chosen"] = ~mean.duplicated("prior")
    return mean.drop(columns="order").sort_values(["prior", "target"]).reset_index(drop=True)


def go_categories(gene2go: Mapping[str, frozenset[str] | set[str]], genes: Sequence[str],
                  term_names: Mapping[str, str], n_categories: int = 8,
                  min_genes: int = 10, max_overlap: float = 0.2) -> pd.Series:
    """A colour label per gene from its GO annotation, chosen from the data, not by hand: the
    ``n_categories`` terms that annotate most of ``genes`` while no bigger chosen term already
    shares more than ``max_overlap`` of their genes (so near-synonymous terms are not both
    picked); each gene is labelled with the smallest chosen term it carries, ``'other'`` when it
    carries none."""
    members: dict[str, set[str]] = {}
    for gene in genes:
        for term in gene2go.get(gene, ()):
            if term in term_names:
                members.setdefault(term, set()).add(gene)
    chosen: list[str] = []
    for term in sorted(members, key=lambda t: (-len(members[t]), t)):
        if len(chosen) == n_categories or len(members[term]) < min_genes:
            break
        if all(len(members[term] & members[c]) <= max_overlap * len(members[term]) for c in chosen):
            chosen.append(term)
    labels = {}
    for gene in genes:
        carried = [t for t in chosen if gene in members[t]]
        labels[gene] = term_names[min(carried, key=lambda t: len(members[t]))] if carried else "other"
    return pd.Series(labels, name="go_category")


def leading_component_correlation(table: pd.DataFrame, values: pd.Series) -> float:
    """|Spearman ρ| between the rows' scores on the table's first principal component and
    ``values`` (per gene, e.g. mean expression); the sign of a principal component is arbitrary."""
    from scipy.stats import spearmanr

    vectors = table.to_numpy(dtype=np.float64)
    centred = vectors - vectors.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    return float(abs(spearmanr(u[:, 0] * s[0], values.reindex(table.index).to_numpy()).statistic))
