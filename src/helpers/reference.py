"""The compact real reference files shipped in ``data/reference/`` (see its README for sources
and licences): GEARS' Norman conditions and split, Norman's GI fits and clusters, GEARS' GI
labels and high-mean genes, and org.Hs.eg.db GO annotations and aliases."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE_DIR = REPO_ROOT / "data" / "reference"


def reference_path(name: str) -> Path:
    path = REFERENCE_DIR / name
    if not path.exists():
        raise FileNotFoundError(
            f"reference file {path} is missing; it ships with the repository "
            "(restore it with `git checkout -- data/reference`)")
    return path


def reference_digest() -> str:
    """A digest of every shipped reference file, so that a cached data step (whose GO graph,
    split and simulated data are made from them) is redone when any of them changes."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in REFERENCE_DIR.iterdir() if p.is_file() and p.suffix not in (".md", ".py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def norman_conditions() -> pd.DataFrame:
    """The 284 GEARS Norman conditions with their real cell counts (``condition,n_cells,kind``)."""
    return pd.read_csv(reference_path("norman_conditions.csv"))


def gears_split() -> dict:
    """GEARS' own simulation split of Norman (seed 1, 0.75, 0.75), as produced by cell-gears."""
    return json.loads(reference_path("gears_simulation_split_seed1.json").read_text())


def gi_fits() -> pd.DataFrame:
    """Norman's Theil–Sen GI fits for 125 combinations, in GEARS spelling.

    ``c_a``/``c_b`` are the coefficients of ``gene_a``/``gene_b`` (the first/second gene of
    ``condition``)."""
    return pd.read_csv(reference_path("norman_gi_fits.csv"))


def gi_types() -> dict[str, list[str]]:
    """GEARS' verified GI labels: class name → combinations (order of genes as GEARS wrote them)."""
    return json.loads(reference_path("gears_gi_types.json").read_text())


def high_mean_genes() -> list[str]:
    """The 2,967 genes GEARS used for GI model fits (high mean expression in Norman)."""
    return reference_path("gears_genes_with_hi_mean.txt").read_text().split()


def single_clusters() -> pd.DataFrame:
    """Norman's GI-manifold cluster per perturbed gene (``-1`` = unclustered)."""
    return pd.read_csv(reference_path("norman_single_clusters.csv"))


@cache
def _gene2go_table() -> pd.DataFrame:
    return pd.read_csv(reference_path("gene2go.tsv.gz"), sep="\t")


def gene2go() -> dict[str, frozenset[str]]:
    """Direct GO annotations (all ontologies) per gene, keyed by the data's gene symbols."""
    table = _gene2go_table().sort_values("gene", kind="stable")
    genes, terms = table["gene"].to_numpy(), table["go_id"].to_numpy()
    # each gene's rows in one slice (a pandas groupby over its 20,731 genes took 6× longer)
    starts = np.flatnonzero(np.r_[True, genes[1:] != genes[:-1]])
    ends = np.r_[starts[1:], len(genes)]
    return {genes[start]: frozenset(terms[start:end]) for start, end in zip(starts, ends)}


def aliases() -> pd.DataFrame:
    """Alias → current symbol (org.Hs.eg.db) for the genes the project uses."""
    return pd.read_csv(reference_path("alias2symbol.tsv.gz"), sep="\t")


def go_terms() -> pd.DataFrame:
    """Name (``term``) and ontology (``BP``, ``MF``, ``CC``) of every GO term annotated above."""
    return pd.read_csv(reference_path("go_terms.tsv.gz"), sep="\t")


# Norman's counts per cell in GEARS' processed file (``layers['counts']`` of
# ``perturb_processed.h5ad``, Dataverse datafile 6154020; 91,205 cells × 5,045 genes), as printed
# from the file: the depth the simulator's default is scaled from.
NORMAN_COUNTS_LAYER = {"genes": 5045, "median_umis_per_cell": 2999, "min_umis_per_cell": 322,
                       "max_umis_per_cell": 11831, "median_detected_genes_per_cell": 409,
                       "nonzero_share": 0.08}
