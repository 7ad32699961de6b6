"""Small stand-ins for GEARS' real files. The first is GEARS' Norman file, laid out exactly as
``perturb_processed.h5ad`` from Dataverse datafile 6154020 (``norman.zip``) is:

- ``var`` indexed by Ensembl-like IDs (index name ``gene_id``), the symbols in the category
  column ``var['gene_name']``; symbols include mitochondrial genes and lncRNA clone names that
  have no GO annotation, and perturbed genes of GEARS' high-mean panel;
- ``obs`` indexed by cell barcodes (``cell_barcode``) with ``condition`` (all 284 real labels,
  single genes in both orders such as ``KLF1+ctrl`` and ``ctrl+KLF1``, and the conditions with
  IER5L, KIAA1804 and RHOXF2BB that GEARS drops for lack of GO), ``cell_type`` ``'A549'`` (the
  real file's label slip), ``dose_val``, ``control`` (int64) and ``condition_name``;
- ``X``: CSR float32, ``log1p`` of per-cell-scaled counts (scaled to the median total, not 1e4);
- ``layers['counts']``: dense float32;
- ``uns``: made by cell-gears' own ``get_DE_genes`` and ``get_dropout_non_zero_genes``, so its
  gene lists hold gene IDs keyed by the non-control ``condition_name``s.

The second (:func:`single_gene_layout_adata`) is a single-gene CRISPRi screen laid out as GEARS'
``replogle_k562_essential`` and ``adamson`` files (``perturb_processed.h5ad`` in
``replogle_k562_essential.zip``, Dataverse datafile 7458695, and ``adamson.zip``, 6154417): every
condition is one gene in one spelling (``GENE+ctrl``), ``cell_type`` is ``'K562'``, ``var`` is
indexed by gene IDs with the symbols in ``var['gene_name']``, ``X`` is CSR ``log1p`` data, there is
no counts layer, and ``uns`` is again made by cell-gears' own functions. The knocked-down genes are
real, GO-annotated genes of GEARS' high-mean panel that Norman did not perturb.

The expression itself is a plain negative-binomial draw with random perturbation effects:
the fixtures test layout and plumbing, not biology.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from helpers import reference
from helpers.conditions import CONTROL, condition_genes

# symbols with no GO annotation, as in the real file's 5,045 genes
NON_GO_SYMBOLS = ["MT-ND1", "MT-CO1", "MT-ATP6", "RP11-34P13.8", "RP11-54O7.3", "AC092143.1", "LINC00115"]


def real_layout_adata(n_genes: int = 240, cells_per_condition: int = 4, control_cells: int = 200,
                      seed: int = 0) -> ad.AnnData:
    """The stand-in AnnData (see the module docstring); every real condition has
    ``cells_per_condition`` cells, control ``control_cells``."""
    conditions = reference.norman_conditions().condition.tolist()
    perturbed = sorted({g for c in conditions for g in condition_genes(c)})
    high_mean = reference.high_mean_genes()
    in_panel = [g for g in high_mean if g in set(perturbed)]  # perturbed genes GEARS measured
    others = [g for g in high_mean if g not in set(perturbed)]
    symbols = in_panel + NON_GO_SYMBOLS
    symbols += others[: n_genes - len(symbols)]
    return _gears_layout(conditions, symbols, cells_per_condition, control_cells, seed,
                         own_effect=3.0, cell_type="A549", counts_layer=True)


def single_gene_layout_adata(n_perturbed: int = 40, n_genes: int = 200, cells_per_condition: int = 6,
                             control_cells: int = 150, seed: int = 0) -> ad.AnnData:
    """The single-gene stand-in (see the module docstring): ``n_perturbed`` knock-downs
    (``GENE+ctrl``), each with ``cells_per_condition`` cells, and ``control_cells`` controls."""
    norman_genes = {g for c in reference.norman_conditions().condition for g in condition_genes(c)}
    annotated = reference.gene2go()
    candidates = [g for g in reference.high_mean_genes() if g not in norman_genes and annotated.get(g)]
    targets = candidates[:n_perturbed]
    symbols = targets + candidates[n_perturbed: n_genes]
    conditions = [CONTROL] + [f"{g}+ctrl" for g in targets]
    return _gears_layout(conditions, symbols, cells_per_condition, control_cells, seed,
                         own_effect=-2.0, cell_type="K562", counts_layer=False)


def _gears_layout(conditions: list[str], symbols: list[str], cells_per_condition: int, control_cells: int,
                  seed: int, own_effect: float, cell_type: str, counts_layer: bool) -> ad.AnnData:
    """Cells of ``conditions`` on the genes ``symbols`` in GEARS' processed layout; a perturbed
    gene's own log rate moves by ``own_effect`` (CRISPRa up, CRISPRi down)."""
    from gears.data_utils import get_DE_genes, get_dropout_non_zero_genes

    rng = np.random.default_rng(seed)
    perturbed = sorted({g for c in conditions for g in condition_genes(c)})
    ids = [f"ENSG{100_000 + 7 * i:011d}" for i in range(len(symbols))]

    labels = [CONTROL] * control_cells + [c for c in conditions if c != CONTROL for _ in range(cells_per_condition)]
    log_mu = rng.normal(-1.0, 1.5, len(symbols))
    effects = {g: rng.normal(0, 0.8, len(symbols)) * (rng.random(len(symbols)) < 0.2) for g in perturbed}
    position = {g: i for i, g in enumerate(symbols)}
    log_rate = np.tile(log_mu, (len(labels), 1))
    for row, label in enumerate(labels):
        for gene in condition_genes(label):
            log_rate[row] += effects[gene]
            if gene in position:
                log_rate[row, position[gene]] += own_effect
    log_rate += rng.normal(0, 0.3, (len(labels), 1))  # library size
    theta = 10.0
    rate = np.exp(log_rate)
    counts = rng.negative_binomial(theta, theta / (theta + rate)).astype(np.float32)
    totals = np.maximum(counts.sum(1, keepdims=True), 1.0)
    X = np.log1p(counts * (np.median(totals) / totals)).astype(np.float32)

    barcodes = ["".join(rng.choice(list("ACGT"), 16)) + "-1" for _ in labels]
    obs = pd.DataFrame({"condition": pd.Categorical(labels), "cell_type": cell_type},
                       index=pd.Index(barcodes, name="cell_barcode"))
    var = pd.DataFrame({"gene_name": pd.Categorical(symbols)}, index=pd.Index(ids, name="gene_id"))
    adata = ad.AnnData(X=sp.csr_matrix(X), obs=obs, var=var, layers={"counts": counts} if counts_layer else None)
    adata.obs_names_make_unique()
    adata = get_DE_genes(adata, skip_calc_de=False)
    adata = get_dropout_non_zero_genes(adata)
    adata.obs["control"] = adata.obs["control"].astype(np.int64)
    adata.uns.pop("rank_genes_groups", None)  # scanpy's working copy; the real file has none
    return adata


def real_layout_paths(directory: Path) -> tuple[Path, Path]:
    """Where :func:`write_real_layout` puts the h5ad and the zip under ``directory``."""
    return Path(directory) / "norman" / "perturb_processed.h5ad", Path(directory) / "norman.zip"


def write_real_layout(directory: Path, **options) -> tuple[Path, Path]:
    """Write the stand-in as ``<directory>/norman/perturb_processed.h5ad`` and as a
    ``norman.zip`` holding Dataverse's member names (``norman/go.csv`` and the h5ad). Returns
    (h5ad path, zip path)."""
    adata = real_layout_adata(**options)
    h5ad_path, zip_path = real_layout_paths(directory)
    h5ad_path.parent.mkdir(parents=True, exist_ok=True)
    adata.write_h5ad(h5ad_path)
    go_csv = h5ad_path.parent / "go.csv"
    pd.DataFrame({"source": ["KLF1", "CEBPE"], "target": ["CEBPE", "KLF1"], "importance": [0.2, 0.2]}
                 ).to_csv(go_csv, index=False)
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.write(go_csv, "norman/go.csv")
        archive.write(h5ad_path, "norman/perturb_processed.h5ad")
    return h5ad_path, zip_path


def write_single_gene_layout(directory: Path, **options) -> Path:
    """Write the single-gene stand-in as ``<directory>/replogle_k562_essential/perturb_processed.h5ad``
    (the folder name GEARS' zip unpacks to); returns its path."""
    path = Path(directory) / "replogle_k562_essential" / "perturb_processed.h5ad"
    path.parent.mkdir(parents=True, exist_ok=True)
    single_gene_layout_adata(**options).write_h5ad(path)
    return path
