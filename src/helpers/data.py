"""Load, validate and process GEARS-format AnnData; GEARS' top differentially expressed genes.

GEARS' format (its processed Norman ``perturb_processed.h5ad``): one row per cell,
``obs['condition']`` in GEARS spelling (``ctrl``, ``A+ctrl``, ``A+B``), ``obs['cell_type']``,
``var['gene_name']`` and log-normalised ``X`` (``log1p`` of library-normalised counts).
Processing adds ``obs['condition_name']`` (``<cell_type>_<condition>_<dose>``), the
Welch t-test ranking of every gene per condition against control
(``uns['rank_genes_groups_cov_all']``) and the top-20 DE genes that are not drop-outs
(``uns['top_non_dropout_de_20']``), exactly as cell-gears' ``new_data_process`` does.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from tqdm import tqdm

from helpers.conditions import CONTROL, condition_genes, condition_problem, genes_of
from helpers.reference import REPO_ROOT
from helpers.runs import atomic_path

NORMAN_DATAVERSE_URL = "https://dataverse.harvard.edu/api/access/datafile/6154020"
NORMAN_ZIP_BYTES = 168_758_985  # norman.zip as served by Dataverse (GEARS' datafile 6154020)
NORMAN_H5AD_MEMBER = "norman/perturb_processed.h5ad"
NORMAN_CELL_TYPE = "K562"  # the real file labels every cell 'A549'; Norman screened K562 cells


class DataValidationError(ValueError):
    """Input data that cannot be used; the message names the file, the field and the fix."""


class DataSourceUnavailable(RuntimeError):
    """A download that could not be made (offline, moved, or a file that failed its check)."""


def _fail(source: str, field: str, problem: str, fix: str) -> DataValidationError:
    return DataValidationError(f"{source}: {field}: {problem}. What to do: {fix}")


def _sample_values(X, max_rows: int = 2000) -> np.ndarray:
    rows = X[: min(max_rows, X.shape[0])]
    return rows.data if sp.issparse(rows) else np.asarray(rows).ravel()


def validate_gears_adata(adata: ad.AnnData, source: str = "AnnData") -> list[str]:
    """Check that ``adata`` is in GEARS format; raise :class:`DataValidationError` otherwise.

    Returns the perturbed genes that are not among ``var['gene_name']`` (allowed: GEARS only
    needs them in the GO graph), so the caller can report them.
    """
    if "condition" not in adata.obs:
        raise _fail(source, "obs['condition']", "column is missing",
                    "add one per cell in GEARS spelling: 'ctrl', 'A+ctrl' or 'A+B'")
    conditions = pd.Index(adata.obs["condition"].astype(str).unique())
    problems = [p for p in map(condition_problem, conditions) if p]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise _fail(source, "obs['condition']", f"{len(problems)} condition(s) not in GEARS spelling: {shown}",
                    "rename them to 'ctrl', 'A+ctrl' or 'A+B'")
    if CONTROL not in conditions:
        raise _fail(source, "obs['condition']", "no control cells (condition 'ctrl')",
                    "label non-targeting control cells 'ctrl'")
    if "gene_name" not in adata.var:
        raise _fail(source, "var['gene_name']", "column is missing",
                    "add gene symbols, e.g. adata.var['gene_name'] = adata.var_names")
    if adata.var["gene_name"].isna().any():
        raise _fail(source, "var['gene_name']", f"{int(adata.var['gene_name'].isna().sum())} missing symbols",
                    "fill in a symbol for every gene")
    values = _sample_values(adata.X)
    if values.size and not np.isfinite(values).all():
        raise _fail(source, "X", "contains NaN or infinite values", "remove or impute them before loading")
    if values.size and (values < 0).any():
        raise _fail(source, "X", "contains negative values (scaled or centred data?)",
                    "pass log-normalised expression: sc.pp.normalize_total then sc.pp.log1p")
    if values.size and values.max() > 30:
        raise _fail(source, "X", f"maximum {values.max():.0f} is too large for log-normalised data "
                    "(looks like raw or un-logged counts)",
                    "run sc.pp.normalize_total(adata) and sc.pp.log1p(adata) first")
    if values.size and np.allclose(values, np.round(values)) and values.max() > 1:
        raise _fail(source, "X", "all values are integers (looks like raw counts)",
                    "run sc.pp.normalize_total(adata) and sc.pp.log1p(adata) first")
    expressed = set(adata.var["gene_name"].astype(str))
    return [g for g in genes_of(conditions) if g not in expressed]


def read_gears_h5ad(path: Path | str, cell_type: str | None = NORMAN_CELL_TYPE) -> ad.AnnData:
    """Read and validate a GEARS-format ``.h5ad`` (e.g. GEARS' Norman ``perturb_processed.h5ad``).

    ``cell_type`` relabels every cell (the real Norman file says 'A549'; the cells are K562);
    ``None`` keeps the file's labels. The original label is kept in ``obs['cell_type_original']``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataValidationError(f"{path}: file not found. What to do: pass the path of a "
                                  "GEARS-format .h5ad, or data_source='simulated'")
    try:
        adata = ad.read_h5ad(path)
    except Exception as error:  # h5py/anndata raise many types for damaged files
        raise DataValidationError(
            f"{path}: cannot be read as an .h5ad ({type(error).__name__}: {error}). What to do: the "
            "file may be truncated or not an AnnData file; download or write it again") from error
    missing = validate_gears_adata(adata, str(path))
    if missing:
        warnings.warn(f"{path}: {len(missing)} perturbed gene(s) are not in var['gene_name'] "
                      f"({', '.join(missing[:10])}); GEARS can still perturb them through the GO graph",
                      stacklevel=2)
    if cell_type is not None:
        if "cell_type" in adata.obs and (adata.obs["cell_type"].astype(str) != cell_type).any():
            adata.obs["cell_type_original"] = adata.obs["cell_type"]
        adata.obs["cell_type"] = cell_type
    elif "cell_type" not in adata.obs:
        raise _fail(str(path), "obs['cell_type']", "column is missing",
                    "pass cell_type='K562' (or your cell line) to label the cells")
    return adata


def download_norman(cache_dir: Path | str, url: str = NORMAN_DATAVERSE_URL,
                    expected_bytes: int = NORMAN_ZIP_BYTES, timeout: float = 60.0) -> Path:
    """Fetch GEARS' processed Norman data from Harvard Dataverse into ``cache_dir``.

    Returns the path of ``perturb_processed.h5ad``; a cached copy is reused. The zip's size is
    checked before it is unpacked, and nothing half-downloaded is left behind.
    """
    cache_dir = Path(cache_dir)
    h5ad_path = cache_dir / NORMAN_H5AD_MEMBER
    if h5ad_path.is_file():
        return h5ad_path
    zip_path = cache_dir / "norman.zip"
    if not zip_path.is_file():
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(zip_path) as tmp:
                total = int(response.headers.get("Content-Length") or expected_bytes)
                with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True,
                                                  desc="norman.zip") as bar:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        bar.update(len(chunk))
                size = tmp.stat().st_size
                if size != expected_bytes:
                    raise DataSourceUnavailable(
                        f"{url}: downloaded {size:,} bytes, expected {expected_bytes:,}; the file "
                        "changed or the transfer broke. Try again, or download norman.zip by hand "
                        "and pass data_source='<path>/perturb_processed.h5ad'")
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise DataSourceUnavailable(
                f"cannot download Norman data from {url} ({error}). You seem to be offline. What to "
                "do: on a machine with internet, download norman.zip from that address, unzip it "
                "and pass data_source='<path>/norman/perturb_processed.h5ad'; or use "
                "data_source='simulated' (the embedded default)") from error
    with zipfile.ZipFile(zip_path) as archive, atomic_path(h5ad_path) as tmp:
        with archive.open(NORMAN_H5AD_MEMBER) as member, open(tmp, "wb") as out:
            shutil.copyfileobj(member, out, 1 << 20)
    return h5ad_path


def subsample_cells(adata: ad.AnnData, max_cells_per_condition: int | None,
                    max_control_cells: int | None, seed: int = 0) -> ad.AnnData:
    """Keep at most that many cells per condition (a seeded, order-preserving draw)."""
    rng = np.random.default_rng(seed)
    keep = []
    for condition, index in adata.obs.groupby("condition", observed=True).indices.items():
        cap = max_control_cells if condition == CONTROL else max_cells_per_condition
        keep.append(index if cap is None or len(index) <= cap
                    else np.sort(rng.choice(index, cap, replace=False)))
    return adata[np.sort(np.concatenate(keep))].copy()


def add_condition_fields(adata: ad.AnnData) -> None:
    """GEARS' derived obs columns: ``dose_val``, ``control`` and ``condition_name``."""
    condition = adata.obs["condition"].astype(str)
    two = condition.str.count(r"\+") == 1
    adata.obs["dose_val"] = np.where(two, "1+1", "1")
    adata.obs["control"] = np.where(two, 0, 1)
    adata.obs["condition_name"] = (adata.obs["cell_type"].astype(str) + "_" + condition + "_"
                                   + adata.obs["dose_val"])
    for column in ("condition", "cell_type", "dose_val", "condition_name"):
        adata.obs[column] = adata.obs[column].astype("category")


def condition_means(adata: ad.AnnData) -> pd.DataFrame:
    """Mean of ``X`` per condition (conditions × genes, columns = var_names)."""
    codes = adata.obs["condition"].astype("category")
    indicator = sp.csr_matrix((np.ones(adata.n_obs), (codes.cat.codes.to_numpy(), np.arange(adata.n_obs))),
                              shape=(len(codes.cat.categories), adata.n_obs))
    sums = indicator @ adata.X
    sums = sums.toarray() if sp.issparse(sums) else np.asarray(sums)
    counts = np.asarray(indicator.sum(axis=1)).ravel()
    return pd.DataFrame(sums / counts[:, None], index=codes.cat.categories.astype(str),
                        columns=adata.var_names)


def add_de_genes(adata: ad.AnnData) -> None:
    """GEARS' DE genes: per condition, every gene ranked by |t| against control (scanpy's
    t-test, ``rankby_abs=True``), then the top 20 that are not drop-outs and not zero.

    Matches ``gears.data_utils.get_DE_genes`` + ``get_dropout_non_zero_genes``; keys are
    ``condition_name`` and gene entries are ``var_names``.
    """
    add_condition_fields(adata)
    ranked: dict[str, list[str]] = {}
    for cell_type in adata.obs["cell_type"].cat.categories:
        subset = adata[adata.obs["cell_type"] == cell_type]
        reference = f"{cell_type}_{CONTROL}_1"
        with warnings.catch_warnings():  # scanpy warns once per group about frame.insert
            warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
            result = sc.tl.rank_genes_groups(subset, groupby="condition_name", reference=reference,
                                             rankby_abs=True, n_genes=adata.n_vars, use_raw=False,
                                             method="t-test", copy=True).uns["rank_genes_groups"]
        names = pd.DataFrame(result["names"])
        ranked.update({group: names[group].tolist() for group in names.columns})
    adata.uns["rank_genes_groups_cov_all"] = ranked

    means = condition_means(adata)
    control_mean = means.loc[CONTROL].to_numpy()
    name_to_condition = dict(zip(adata.obs["condition_name"].astype(str), adata.obs["condition"].astype(str)))
    gene_position = pd.Series(np.arange(adata.n_vars), index=adata.var_names)
    var_names = np.asarray(adata.var_names)
    top_non_dropout, top_non_zero, non_zero_idx, non_dropout_idx = {}, {}, {}, {}
    for name, genes in ranked.items():
        mean = means.loc[name_to_condition[name]].to_numpy()
        non_zero = mean != 0
        non_dropout = non_zero | (control_mean == 0)  # true zeros: zero here and in control
        order = gene_position[genes].to_numpy()
        top_non_dropout[name] = var_names[order[non_dropout[order]][:20]]
        top_non_zero[name] = var_names[order[non_zero[order]][:20]]
        non_zero_idx[name] = np.flatnonzero(non_zero)
        non_dropout_idx[name] = np.flatnonzero(non_dropout)
    adata.uns["top_non_dropout_de_20"] = top_non_dropout
    adata.uns["top_non_zero_de_20"] = top_non_zero
    adata.uns["non_zeros_gene_idx"] = non_zero_idx
    adata.uns["non_dropout_gene_idx"] = non_dropout_idx


def top_de_genes(adata: ad.AnnData, condition: str, n: int = 20) -> list[str]:
    """Gene symbols of a condition's top non-drop-out DE genes (GEARS' evaluation genes)."""
    row = adata.obs.loc[adata.obs["condition"] == condition, "condition_name"]
    if row.empty:
        raise KeyError(f"condition {condition!r} is not in the data")
    ids = adata.uns["top_non_dropout_de_20"][str(row.iloc[0])][:n]
    return adata.var.loc[list(ids), "gene_name"].astype(str).tolist()


def top_de_positions(adata: ad.AnnData) -> dict[str, np.ndarray]:
    """Condition → column positions of its top-20 non-drop-out DE genes (evaluation genes)."""
    name_to_condition = dict(zip(adata.obs["condition_name"].astype(str), adata.obs["condition"].astype(str)))
    position = pd.Series(np.arange(adata.n_vars), index=adata.var_names)
    return {name_to_condition[name]: position[list(ids)].to_numpy()
            for name, ids in adata.uns["top_non_dropout_de_20"].items()}


def cells_by_condition(adata: ad.AnnData) -> dict[str, np.ndarray]:
    """Condition → its cells as a dense array (cells × genes)."""
    X = adata.X
    return {condition: np.asarray(X[index].toarray() if sp.issparse(X) else X[index], dtype=np.float32)
            for condition, index in adata.obs.groupby("condition", observed=True).indices.items()}


def write_h5ad(adata: ad.AnnData, path: Path) -> Path:
    """Write ``adata`` atomically (a crash leaves no half-written file)."""
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp, compression="gzip")
    return Path(path)


def perturbed_gene_summary(adata: ad.AnnData, go_genes: set[str]) -> pd.DataFrame:
    """Per perturbed gene: in the expression matrix? GO-annotated? number of conditions."""
    conditions = adata.obs["condition"].astype(str).unique()
    expressed = set(adata.var["gene_name"].astype(str))
    rows = [{"gene": g, "in_expression_matrix": g in expressed, "has_go_annotation": g in go_genes,
             "n_conditions": sum(g in condition_genes(c) for c in conditions)}
            for g in genes_of(conditions)]
    return pd.DataFrame(rows)


PREPARE_STEP = "01_prepare_data"
DATASET_FILE = "perturb_processed.h5ad"
TRUTH_FILE = "simulation_truth.h5ad"
EXTERNAL_CACHE = REPO_ROOT / "data" / "external"


def load_expression(data_source: str, max_cells_per_condition: int | None,
                    max_control_cells: int | None, n_high_mean_genes: int | None = None,
                    simulator_seed: int = 0,
                    cache_dir: Path = EXTERNAL_CACHE) -> tuple[ad.AnnData, ad.AnnData | None]:
    """Expression in GEARS format from ``data_source``, with the simulator's truth if simulated.

    ``data_source`` is ``'simulated'`` (the Norman-scaffold simulator, the default),
    ``'dataverse'`` (GEARS' processed Norman, downloaded once into ``cache_dir``) or the path
    of a local GEARS-format ``.h5ad``. Cells are capped per condition as the profile asks.
    """
    if data_source == "simulated":
        from helpers.simulator import SimulatorConfig, norman_scaffold, simulate_perturb_seq

        adata, truth = simulate_perturb_seq(norman_scaffold(n_high_mean_genes),
                                            SimulatorConfig(seed=simulator_seed),
                                            max_cells_per_condition, max_control_cells)
        validate_gears_adata(adata, "simulated data")
        return adata, truth
    path = download_norman(cache_dir) if data_source == "dataverse" else Path(data_source)
    adata = read_gears_h5ad(path)
    return subsample_cells(adata, max_cells_per_condition, max_control_cells, seed=simulator_seed), None


def read_prepared(step_path: Path, truth_only: bool = False) -> tuple[ad.AnnData | None, ad.AnnData | None]:
    """The processed dataset (and simulator truth, if any) written by the data step;
    ``truth_only`` skips reading the dataset (returned as None)."""
    dataset = Path(step_path) / DATASET_FILE
    if not dataset.is_file():
        raise FileNotFoundError(f"{dataset} does not exist; run notebooks/01_prepare_data.py first "
                                "(`make book` runs every step in order)")
    truth = Path(step_path) / TRUTH_FILE
    return (None if truth_only else ad.read_h5ad(dataset)), (ad.read_h5ad(truth) if truth.is_file() else None)


def depth_table(adata: ad.AnnData) -> pd.DataFrame:
    """Counts per cell of a simulated dataset beside Norman's (``reference.NORMAN_COUNTS_LAYER``):
    one row per measure, columns ``norman`` (5,045 genes), ``norman_scaled`` (on this panel: GEARS'
    high-mean genes carry nearly all of Norman's counts and detected genes, so depth and detected
    genes per cell stay and the non-zero share grows) and ``simulated``. Needs the simulator's
    ``obs['total_counts']`` and ``obs['n_genes_by_counts']``."""
    from helpers.reference import NORMAN_COUNTS_LAYER as norman

    missing = {"total_counts", "n_genes_by_counts"} - set(adata.obs)
    if missing:
        raise ValueError(f"obs lacks {sorted(missing)}: depth is known for simulated data only")
    totals, detected = adata.obs["total_counts"].to_numpy(), adata.obs["n_genes_by_counts"].to_numpy()
    rows = [("genes", norman["genes"], adata.n_vars, adata.n_vars),
            ("median UMIs per cell", norman["median_umis_per_cell"], norman["median_umis_per_cell"], np.median(totals)),
            ("min UMIs per cell", norman["min_umis_per_cell"], norman["min_umis_per_cell"], totals.min()),
            ("max UMIs per cell", norman["max_umis_per_cell"], norman["max_umis_per_cell"], totals.max()),
            ("median detected genes per cell", norman["median_detected_genes_per_cell"],
             norman["median_detected_genes_per_cell"], np.median(detected)),
            ("non-zero share of the matrix", norman["nonzero_share"],
             norman["median_detected_genes_per_cell"] / adata.n_vars, detected.sum() / (adata.n_obs * adata.n_vars))]
    return pd.DataFrame(rows, columns=["measure", "norman", "norman_scaled", "simulated"]).set_index("measure")


# The simulator's settings that decide which kind of gene prior has signal on the default data.
PRIOR_SIGNAL_KNOBS = {
    "go_weight": "single effects smoothed over GO neighbours: GO-based priors are favoured by construction",
    "go_neighbours": "GO neighbours each perturbed gene's effect is smoothed over",
    "cluster_weight": "effects shared within Norman's GI clusters",
    "private_weight": "each gene's own, unshared part of its effect",
    "coexpression_strength": "how much a regulator's own expression follows the programs it drives",
}


def genes_outside_rank_context(adata: ad.AnnData, genes: list[str], context_length: int) -> list[str]:
    """Of ``genes``, those that never rank among a control cell's top ``context_length`` − 1
    expressed genes (GeneMamba's rank tokens, ``<cls>`` taking one place), so a model reading
    control cells' contexts never sees them."""
    from helpers.conditions import CONTROL

    names = adata.var["gene_name"].astype(str).to_numpy()
    X = adata.X[(adata.obs["condition"] == CONTROL).to_numpy()]
    X = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
    keep = context_length - 1
    order = np.argsort(-X, axis=1, kind="stable")[:, :keep]  # ties by gene order, as rank_tokens
    in_context = np.take_along_axis(X, order, axis=1) > 0
    seen = set(names[order[in_context]])
    return [g for g in genes if g not in seen]


def simulator_fingerprint(seed: int) -> dict:
    """What makes the simulated data besides the profile: the simulator's settings and a digest
    of its code, so that a cached data step is redone when either changes."""
    import hashlib
    from dataclasses import asdict

    from helpers import simulator

    code = hashlib.sha256(Path(simulator.__file__).read_bytes()).hexdigest()[:16]
    return {"config": asdict(simulator.SimulatorConfig(seed=seed)), "code": code}
