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

import os
import shutil
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

from helpers.conditions import CONTROL, condition_by_name, condition_genes, condition_problem, genes_of
from helpers.reference import REPO_ROOT
from helpers import pipeline
from helpers.runs import atomic_path, progress_bar
from helpers.splits import SimulationSplit

NORMAN_DATAVERSE_URL = "https://dataverse.harvard.edu/api/access/datafile/6154020"
NORMAN_ZIP_BYTES = 168_758_985  # norman.zip as served by Dataverse (GEARS' datafile 6154020)
NORMAN_H5AD_MEMBER = "norman/perturb_processed.h5ad"


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
    sizes = adata.obs["condition"].astype(str).value_counts()
    single = sorted(sizes.index[sizes < 2])
    if single:
        raise _fail(source, "obs['condition']", f"{len(single)} condition(s) with a single cell "
                    f"({', '.join(single[:5])}{', …' if len(single) > 5 else ''}); GEARS' t-test ranking of "
                    "DE genes needs at least two cells per condition",
                    "remove those cells, or keep more cells per condition")
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


def read_gears_h5ad(path: Path | str, cell_type: str | None = None) -> ad.AnnData:
    """Read and validate a GEARS-format ``.h5ad`` (GEARS' Norman ``perturb_processed.h5ad``, or a
    single-gene screen such as its ``adamson`` or ``replogle_k562_essential`` files).

    Only ``obs``, ``var`` and ``X`` are read. A counts layer (the real file's is dense, 1.8 GB) is
    summed per cell in blocks into ``obs['total_counts']`` and ``obs['n_genes_by_counts']`` and
    not kept; ``uns`` is not read (the data step ranks DE genes again on the cells it keeps). The
    gene axis becomes the symbols (:func:`use_symbols`). ``cell_type`` relabels every cell;
    ``None`` takes the data set's label (:mod:`helpers.datasets`: the real Norman file says
    'A549', its cells are K562) or, where the data set names none, keeps the file's. The
    original label is kept in ``obs['cell_type_original']``.
    """
    from helpers.datasets import detect

    import h5py
    from anndata.io import read_elem

    path = Path(path)
    if not path.is_file():
        raise DataValidationError(f"{path}: file not found. What to do: pass the path of a "
                                  "GEARS-format .h5ad, or data_source='simulated'")
    try:
        with h5py.File(path, "r") as file:
            absent = [key for key in ("obs", "var", "X") if key not in file]
            if absent:
                raise _fail(str(path), ", ".join(absent), "missing from the file",
                            "write the AnnData with obs, var and X (adata.write_h5ad)")
            adata = ad.AnnData(X=read_elem(file["X"]), obs=read_elem(file["obs"]), var=read_elem(file["var"]))
            layers = file.get("layers")
            depth = _depth_per_cell(layers["counts"]) if layers is not None and "counts" in layers else None
    except DataValidationError:
        raise
    except Exception as error:  # h5py/anndata raise many types for damaged files
        raise DataValidationError(
            f"{path}: cannot be read as an .h5ad ({type(error).__name__}: {error}). What to do: the "
            "file may be truncated or not an AnnData file; download or write it again") from error
    if not sp.issparse(adata.X):
        adata.X = sp.csr_matrix(adata.X)
    adata.X = adata.X.astype(np.float32)
    missing = validate_gears_adata(adata, str(path))
    use_symbols(adata, str(path))
    if depth is not None:
        adata.obs["total_counts"], adata.obs["n_genes_by_counts"] = depth
    if missing:
        warnings.warn(f"{path}: {len(missing)} perturbed gene(s) are not in var['gene_name'] "
                      f"({', '.join(missing[:10])}); GEARS can still perturb them through the GO graph",
                      stacklevel=2)
    if cell_type is None:
        cell_type = detect(adata.obs["condition"].astype(str).unique()).cell_type
    if cell_type is not None:
        if "cell_type" in adata.obs and (adata.obs["cell_type"].astype(str) != cell_type).any():
            adata.obs["cell_type_original"] = adata.obs["cell_type"]
        adata.obs["cell_type"] = cell_type
    elif "cell_type" not in adata.obs:
        raise _fail(str(path), "obs['cell_type']", "column is missing",
                    "add the cell line of every cell (adata.obs['cell_type'] = 'K562')")
    return adata


def _depth_per_cell(counts, block_rows: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Total counts and detected genes per cell of a stored counts matrix (a dense h5py dataset,
    read a block of rows at a time, or a sparse group)."""
    from anndata.io import read_elem

    if hasattr(counts, "shape") and not hasattr(counts, "keys"):  # dense dataset
        totals, detected = [], []
        for start in range(0, counts.shape[0], block_rows):
            block = counts[start:start + block_rows]
            totals.append(block.sum(axis=1, dtype=np.float64))
            detected.append((block > 0).sum(axis=1))
        return np.concatenate(totals), np.concatenate(detected)
    matrix = sp.csr_matrix(read_elem(counts))
    return np.asarray(matrix.sum(axis=1)).ravel(), np.diff(matrix.indptr)


def use_symbols(adata: ad.AnnData, source: str = "AnnData") -> None:
    """Make gene symbols (``var['gene_name']``) the gene axis, in place, keeping the file's own
    index (GEARS' real file: Ensembl IDs) as ``var['gene_id']``. Symbols that occur twice get
    their ID appended (``SYMBOL_ID``), with a warning."""
    symbols = adata.var["gene_name"].astype(str).to_numpy()
    ids = adata.var_names.astype(str).to_numpy()
    if (symbols == ids).all():
        return
    duplicated = pd.Series(symbols).duplicated(keep=False).to_numpy()
    if duplicated.any():
        warnings.warn(f"{source}: {int(duplicated.sum())} genes share a symbol with another "
                      f"({', '.join(sorted(set(symbols[duplicated]))[:5])}); they are named SYMBOL_ID",
                      stacklevel=3)
        symbols = np.where(duplicated, np.char.add(np.char.add(symbols.astype(str), "_"), ids), symbols)
    adata.var["gene_id"] = ids
    adata.var["gene_name"] = symbols
    adata.var_names = pd.Index(symbols, name=None)


def file_digest(path: Path | str, algorithm: str = "sha256") -> str:
    """Hex digest of a file (``hashlib`` algorithm name), read in 8 MiB blocks."""
    import hashlib

    digest = hashlib.new(algorithm)
    with open(path, "rb") as file:
        while block := file.read(1 << 23):
            digest.update(block)
    return digest.hexdigest()


def download_norman(cache_dir: Path | str, url: str = NORMAN_DATAVERSE_URL,
                    expected_bytes: int | None = None, expected_md5: str | None = None,
                    timeout: float = 60.0, progress: bool = True) -> Path:
    """Fetch GEARS' processed Norman data (``norman.zip``) from Harvard Dataverse into
    ``cache_dir`` and unpack ``norman/perturb_processed.h5ad``; a cached copy is reused.

    The download sends a User-Agent (Dataverse refuses some clients without one), resumes a
    broken transfer from ``norman.zip.part``, and checks the size and, where known, the MD5
    (``expected_md5``, else the checksum Dataverse's API reports for the file, when it answers)
    before the zip is trusted (``expected_bytes``: Dataverse's size for Dataverse's address;
    another address, e.g. a mirror, is checked against the length its server announces).
    Errors say what happened: an HTTP refusal (403) is not "offline".
    """
    if expected_bytes is None and url == NORMAN_DATAVERSE_URL:
        expected_bytes = NORMAN_ZIP_BYTES
    cache_dir = Path(cache_dir)
    h5ad_path = cache_dir / NORMAN_H5AD_MEMBER
    if h5ad_path.is_file():
        return h5ad_path
    zip_path = cache_dir / "norman.zip"
    if not zip_path.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        if expected_md5 is None and url == NORMAN_DATAVERSE_URL:
            expected_md5 = _dataverse_md5(url, timeout)
        part = zip_path.with_name(zip_path.name + ".part")
        _resumable_download(url, part, timeout, progress)
        size = part.stat().st_size
        if expected_bytes is not None and size != expected_bytes:
            part.unlink()
            raise DataSourceUnavailable(
                f"{url}: downloaded {size:,} bytes, expected {expected_bytes:,}; the file changed or the "
                f"transfer broke. What to do: run again, or download norman.zip by hand ({MANUAL_DOWNLOAD}), "
                "unzip it and pass data_source='<path>/norman/perturb_processed.h5ad'")
        if expected_md5 is not None and file_digest(part, "md5") != expected_md5:
            part.unlink()
            raise DataSourceUnavailable(f"{url}: the downloaded file's MD5 differs from {expected_md5}; it "
                                        "was removed. What to do: run again (the transfer was damaged)")
        part.replace(zip_path)
    try:
        with zipfile.ZipFile(zip_path) as archive, atomic_path(h5ad_path) as tmp:
            with archive.open(NORMAN_H5AD_MEMBER) as member, open(tmp, "wb") as out:
                shutil.copyfileobj(member, out, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as error:
        raise DataValidationError(f"{zip_path}: not GEARS' norman.zip ({error}). What to do: delete it "
                                  f"and download again, or pass the .h5ad's path") from error
    return h5ad_path


MANUAL_DOWNLOAD = "https://dataverse.harvard.edu/file.xhtml?fileId=6154020"
USER_AGENT = "genemamba-gears-book (https://github.com; python-urllib)"


def _request(url: str, start: int = 0) -> urllib.request.Request:
    headers = {"User-Agent": USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.Request(url, headers=headers)


def _resumable_download(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Download ``url`` into ``part``, continuing from what ``part`` already holds when the server
    honours a byte range (else starting over)."""
    start = part.stat().st_size if part.is_file() else 0
    try:
        with urllib.request.urlopen(_request(url, start), timeout=timeout) as response:
            resumed = start > 0 and getattr(response, "status", 200) == 206
            length = response.headers.get("Content-Length")
            total = (int(length) + (start if resumed else 0)) if length else None
            with open(part, "ab" if resumed else "wb") as out, \
                    progress_bar(None, progress, total=total, initial=start if resumed else 0, unit="B",
                                 unit_scale=True, desc="norman.zip") as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        if total is not None and part.stat().st_size != total:
            raise OSError(f"the transfer stopped at {part.stat().st_size:,} of {total:,} bytes")
    except urllib.error.HTTPError as error:
        why = ("Dataverse refused the request (HTTP 403 Forbidden): it does so for some clients and "
               "networks, or when a file needs its terms accepted in a browser" if error.code == 403
               else f"the server answered HTTP {error.code} {error.reason}")
        raise DataSourceUnavailable(
            f"cannot download Norman data from {url}: {why}. What to do: download norman.zip by hand "
            f"from {MANUAL_DOWNLOAD}, unzip it and pass data_source='<path>/norman/perturb_processed.h5ad'; "
            f"or use data_source='simulated' (the embedded default)") from error
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DataSourceUnavailable(
            f"cannot download Norman data from {url} ({reason}); what was received so far is kept in "
            f"{part} and the next run continues from it. What to do: check the network and run again; "
            f"or download norman.zip by hand from {MANUAL_DOWNLOAD}, unzip it and pass "
            "data_source='<path>/norman/perturb_processed.h5ad'; or use data_source='simulated'") from error


def _dataverse_md5(url: str, timeout: float) -> str | None:
    """The MD5 Dataverse's API reports for a datafile (``/api/files/<id>``), or None when it does
    not answer (the size check still applies)."""
    import json

    file_id = url.rstrip("/").rsplit("/", 1)[-1]
    api = url.split("/api/")[0] + f"/api/files/{file_id}"
    try:
        with urllib.request.urlopen(_request(api), timeout=timeout) as response:
            checksum = json.load(response)["data"]["dataFile"].get("checksum", {})
    except (urllib.error.URLError, TimeoutError, OSError, ValueError, KeyError):
        return None
    return checksum.get("value") if checksum.get("type", "").upper() == "MD5" else None


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
    name_to_condition = condition_by_name(adata.obs)
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
    name_to_condition = condition_by_name(adata.obs)
    position = pd.Series(np.arange(adata.n_vars), index=adata.var_names)
    return {name_to_condition[name]: position[list(ids)].to_numpy()
            for name, ids in adata.uns["top_non_dropout_de_20"].items()}


def rank_de_positions(adata: ad.AnnData, n: int = 20) -> dict[str, np.ndarray]:
    """Condition → column positions of its top ``n`` genes by the t-test ranking, drop-outs
    included (``uns['rank_genes_groups_cov_all']``: the genes of cell-gears' ``mse_de``)."""
    name_to_condition = condition_by_name(adata.obs)
    position = pd.Series(np.arange(adata.n_vars), index=adata.var_names)
    return {name_to_condition[name]: position[list(ids)[:n]].to_numpy()
            for name, ids in adata.uns["rank_genes_groups_cov_all"].items()}


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


DATASET_FILE = "perturb_processed.h5ad"
TRUTH_FILE = "simulation_truth.h5ad"
EXTERNAL_CACHE = REPO_ROOT / "data" / "external"


def load_expression(data_source: str, max_cells_per_condition: int | None,
                    max_control_cells: int | None, n_high_mean_genes: int | None = None,
                    simulator_seed: int = 0,
                    cache_dir: Path = EXTERNAL_CACHE,
                    simulator_settings: Mapping[str, Any] | None = None) -> tuple[ad.AnnData, ad.AnnData | None]:
    """Expression in GEARS format from ``data_source``, with the simulator's truth if simulated.

    ``data_source`` is ``'simulated'`` (the Norman-scaffold simulator, the default),
    ``'dataverse'`` (GEARS' processed Norman, downloaded once into ``cache_dir``) or the path
    of a local GEARS-format ``.h5ad``. Cells are capped per condition as the profile asks.
    ``simulator_settings``: simulator settings that differ from ``SimulatorConfig``'s defaults
    (e.g. ``{"go_weight": 0.0}``; simulated data only).
    """
    if data_source == "simulated":
        from helpers.simulator import norman_scaffold, simulate_perturb_seq

        adata, truth = simulate_perturb_seq(norman_scaffold(n_high_mean_genes),
                                            simulator_config(simulator_seed, simulator_settings),
                                            max_cells_per_condition, max_control_cells)
        validate_gears_adata(adata, "simulated data")
        return adata, truth
    adata = read_gears_h5ad(data_file(data_source, cache_dir))
    if simulator_settings:
        raise ValueError(f"simulator_settings {dict(simulator_settings)} apply to simulated data only, "
                         f"not to data_source={data_source!r}; leave them empty")
    return subsample_cells(adata, max_cells_per_condition, max_control_cells, seed=simulator_seed), None


def data_file(data_source: str, cache_dir: Path = EXTERNAL_CACHE) -> Path:
    """The ``.h5ad`` a real data source names: GEARS' Norman file for ``'dataverse'``
    (downloaded once into ``cache_dir``, or ``$HELPERS_DATA_CACHE``, from Dataverse or from
    ``$HELPERS_NORMAN_URL``: a mirror or a local ``file://`` copy of ``norman.zip``), or the
    path given, which must exist."""
    if data_source == "dataverse":
        return download_norman(Path(os.environ.get("HELPERS_DATA_CACHE", cache_dir)),
                               url=os.environ.get("HELPERS_NORMAN_URL", NORMAN_DATAVERSE_URL))
    path = Path(data_source).expanduser()
    if not path.is_file():
        raise DataValidationError(f"{path}: file not found. What to do: pass the path of a "
                                  "GEARS-format .h5ad, or data_source='simulated'")
    return path


def read_prepared(step_path: Path, truth_only: bool = False) -> tuple[ad.AnnData | None, ad.AnnData | None]:
    """The processed dataset (and simulator truth, if any) written by the data step;
    ``truth_only`` skips reading the dataset (returned as None)."""
    dataset = Path(step_path) / DATASET_FILE
    if not dataset.is_file():
        raise FileNotFoundError(f"{dataset} does not exist; run notebooks/01_prepare_data.py first "
                                "(`make book` runs every step in order)")
    truth = Path(step_path) / TRUTH_FILE
    return (None if truth_only else ad.read_h5ad(dataset)), (ad.read_h5ad(truth) if truth.is_file() else None)


@dataclass(frozen=True)
class Prepared:
    """What the data step wrote, as every later chapter reads it."""

    adata: ad.AnnData
    truth: ad.AnnData | None  # the simulator's noise-free expected means (simulated data only)
    split: SimulationSplit
    go_graph: pd.DataFrame  # source, target, importance
    fingerprint: str  # of the data step's parameters: every later cache is keyed on it

    @property
    def dataset(self):
        """The data set these conditions belong to (:func:`helpers.datasets.detect`)."""
        from helpers.datasets import detect

        return detect(self.adata.obs["condition"].astype(str).unique())


def load_prepared() -> Prepared:
    """The data step's results in the current results root (``runs.results_root()``)."""
    from helpers.runs import parameters_fingerprint

    path = pipeline.folder("prepared_data")
    adata, truth = read_prepared(path)
    return Prepared(adata, truth, SimulationSplit.from_json(path / "split.json"), pd.read_csv(path / "go_graph.csv"),
                    parameters_fingerprint(pipeline.PREPARE_DATA))


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
    "go_weight": "single effects smoothed over GO neighbours: how much GO annotation predicts an effect",
    "go_neighbours": "GO neighbours each perturbed gene's effect is smoothed over",
    "cluster_weight": "effects shared within Norman's GI clusters",
    "private_weight": "each gene's own, unshared part of its effect",
    "shared_axis_share": "share of each effect on the axes most perturbations move along",
    "manifold_weight": "how far an effect follows the gene's place on Norman's GI map (his singles' similarity, which itself follows GO)",
    "shuffle_manifold": "places on the map dealt out at random: singles as alike as Norman's, but not the same genes alike",
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


def simulator_config(seed: int, settings: Mapping[str, Any] | None = None):
    """The simulator's configuration: its defaults with ``seed`` and ``settings`` (names of
    ``SimulatorConfig`` fields) changed. An unknown name is an error that lists the known ones."""
    from dataclasses import fields, replace

    from helpers.simulator import SimulatorConfig

    settings = dict(settings or {})
    known = {f.name for f in fields(SimulatorConfig)} - {"seed"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"unknown simulator setting(s) {unknown}; SimulatorConfig defines {sorted(known)}")
    return replace(SimulatorConfig(seed=seed), **settings)


def simulator_fingerprint(seed: int, settings: Mapping[str, Any] | None = None) -> dict:
    """What makes the simulated data besides the profile and the code (the data step's cache
    key holds ``runs.code_digest`` of this module, which imports the simulator): the
    simulator's settings."""
    from dataclasses import asdict

    return {"config": asdict(simulator_config(seed, settings))}
