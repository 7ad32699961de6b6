"""Load and validate GEARS-format AnnData, and read what the data step prepared.

GEARS' format (its processed ``perturb_processed.h5ad`` files): one row per cell,
``obs['condition']`` in GEARS spelling (``ctrl``, ``A+ctrl``, ``A+B``), ``obs['cell_type']``,
``var['gene_name']`` and log-normalised ``X`` (``log1p`` of library-normalised counts). GEARS'
DE genes are in :mod:`helpers.de_genes`, the download of its Norman file in
:mod:`helpers.download`, the simulated default in :mod:`helpers.simulator`.
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from helpers import pipeline
from helpers.conditions import CONTROL, condition_genes, condition_problem, genes_of
from helpers.files import atomic_path
from helpers.simulator import simulator_config
from helpers.splits import SimulationSplit


class DataValidationError(ValueError):
    """Input data that cannot be used; the message names the file, the field and the fix."""


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


def load_expression(data_source: str, max_cells_per_condition: int | None,
                    max_control_cells: int | None, n_high_mean_genes: int | None = None,
                    simulator_seed: int = 0,
                    cache_dir: Path | None = None,
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
    from helpers.download import EXTERNAL_CACHE, data_file

    adata = read_gears_h5ad(data_file(data_source, cache_dir or EXTERNAL_CACHE))
    if simulator_settings:
        raise ValueError(f"simulator_settings {dict(simulator_settings)} apply to simulated data only, "
                         f"not to data_source={data_source!r}; leave them empty")
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


CONTENT_RTOL = 1e-6  # sums of the values within this relative tolerance: the same data
CONTENT_FILE = "content_signature.json"  # the data step's :func:`content_signature`, for later readers


def content_signature(adata: ad.AnnData, split: SimulationSplit) -> dict[str, Any]:
    """What prepared data hold, whatever code or settings made them, for :func:`same_content`.

    ``layout``: a SHA-256 of everything exact (the shape, which entries are non-zero, each
    cell's condition, the genes, the split). ``sums``: Σx, Σx², and Σx weighted by the gene's
    and by the cell's position, over the expression values. The values are log1p of normalised
    counts, whose last bits can differ between CPUs (NumPy's float32 ``log1p`` has AVX-512 and
    AVX2 code paths). A hash of the values would then call one simulation on two machines two
    data sets, while sums move by ~1e-7 at most for such differences and far beyond
    :data:`CONTENT_RTOL` for any real change (another seed, setting or file). A change to a few
    values that moves no sum by 1e-6 goes unseen.

    The data step's fingerprint is of its parameters and code, so any change to that code gives
    a new one; this signature stays while the data do. It tells whether evidence computed on
    some data (``benchmarks/prior_target.py``) is about these."""
    import hashlib

    matrix = sp.csr_matrix(adata.X, dtype=np.float32, copy=True)
    matrix.sum_duplicates()  # sorts the indices too
    matrix.eliminate_zeros()
    n_cells, n_genes = matrix.shape
    digest = hashlib.sha256(np.asarray(matrix.shape, dtype=np.int64).tobytes())
    for part in (matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64)):
        digest.update(np.ascontiguousarray(part).tobytes())
    for names in (adata.obs["condition"].astype(str), adata.var["gene_name"].astype(str)):
        digest.update("\n".join(names).encode() + b"\0")
    digest.update(split.json_text().encode())
    sums = np.zeros(4)
    for start in range(0, n_cells, 8192):  # blocks of cells: no float64 copy of every value at once
        block = matrix[start:start + 8192]
        values = block.data.astype(np.float64)
        cells = np.repeat(np.arange(start, start + block.shape[0]), np.diff(block.indptr))
        sums += [values.sum(), values @ values, values @ (block.indices / n_genes), values @ (cells / n_cells)]
    return {"layout": digest.hexdigest()[:16], "sums": [float(s) for s in sums]}


def same_content(signature: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Whether two :func:`content_signature` results are of the same data: the same layout, and
    sums within :data:`CONTENT_RTOL`."""
    return (signature["layout"] == other["layout"]
            and bool(np.allclose(signature["sums"], other["sums"], rtol=CONTENT_RTOL, atol=0)))


@dataclass(frozen=True)
class Prepared:
    """What the data step wrote, as every later chapter reads it."""

    adata: ad.AnnData
    truth: ad.AnnData | None  # the simulator's noise-free expected means (simulated data only)
    split: SimulationSplit
    go_graph: pd.DataFrame  # source, target, importance
    fingerprint: str  # of the data step's parameters: every later cache is keyed on it
    recorded_content: Mapping[str, Any] | None = None  # the data step's CONTENT_FILE, if written

    @functools.cached_property
    def content_signature(self) -> dict[str, Any]:
        """:func:`content_signature` of these data: as the data step recorded it, else computed
        (a CSR copy of the matrix, seconds at Norman's size)."""
        if self.recorded_content is not None:
            return dict(self.recorded_content)
        return content_signature(self.adata, self.split)

    @property
    def dataset(self):
        """The data set these conditions belong to (:func:`helpers.datasets.detect`)."""
        from helpers.datasets import detect

        return detect(self.adata.obs["condition"].astype(str).unique())


def load_prepared() -> Prepared:
    """The data step's results in the current results root (``roots.results_root()``)."""
    from helpers.runs import parameters_fingerprint

    path = pipeline.folder("prepared_data")
    adata, truth = read_prepared(path)
    content = path / CONTENT_FILE
    return Prepared(adata, truth, SimulationSplit.from_json(path / "split.json"), pd.read_csv(path / "go_graph.csv"),
                    parameters_fingerprint(pipeline.PREPARE_DATA),
                    json.loads(content.read_text()) if content.is_file() else None)


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


