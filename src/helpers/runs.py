"""Profiles, results folders, ``run.json`` and atomic writes.

A *profile* is a named set of parameter values shared by every notebook: ``quick`` for tests and
CI, ``default`` for ``make book`` on a laptop, ``full`` for the real Norman data on a GPU. Every
profile keeps all 284 Norman conditions, so the split is the same in each; profiles shrink
cells, genes and training steps. Explicit notebook parameters win over the profile's values.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from helpers import pipeline
from helpers.reference import REPO_ROOT


@dataclass(frozen=True)
class Profile:
    """Parameter values one profile gives every notebook (``None`` = no cap)."""

    name: str
    data_source: str  # 'simulated', 'dataverse' or a path to a GEARS-format .h5ad
    max_cells_per_condition: int | None  # perturbed cells kept per condition
    max_control_cells: int | None  # control cells kept
    n_high_mean_genes: int | None  # simulated genes besides the 105 perturbed genes
    gears_steps: int  # GEARS optimisation steps (batches of 32 cells), every GEARS run
    gears_lr_halving_steps: int | None  # GEARS' learning rate halves every this many steps (None: every epoch)
    gears_eval_every: int  # GEARS validates every this many steps (its learning curve)
    seeds: tuple[int, ...]
    pretrain_steps: int  # GeneMamba optimisation steps
    context_length: int  # GeneMamba tokens per cell (<cls> + top-ranked genes)
    # GEARS' settings (helpers.models.gears_module.GearsConfig) that differ from cell-gears'
    # defaults; a chapter's gears_config overrides them
    gears_config: dict[str, Any] = field(default_factory=dict)


NORMAN_EPOCH_STEPS = 49_849 // 32  # one cell-gears epoch on Norman: training cells of GEARS' split / batch

PROFILES: dict[str, Profile] = {
    # CI and tests: a few hundred genes, ~10 cells per condition, one epoch.
    "quick": Profile("quick", "simulated", max_cells_per_condition=10, max_control_cells=300,
                     n_high_mean_genes=300, gears_steps=8, gears_lr_halving_steps=None,
                     gears_eval_every=4, seeds=(1,),
                     pretrain_steps=10, context_length=64),
    # `make book`: the full Norman scaffold (all 3,051 genes) with Norman's cell counts (91,205
    # cells, 7,353 control). GEARS: the learning rate halved every 278 steps (cell-gears' epoch
    # on 50-cell conditions, the schedule benchmarks/learning_curves.py measured) for 2,000
    # steps: on this data every GEARS run came within 2% of its plateau by step 1,600 and every
    # prior run by step 1,500 (benchmarks/RESULTS.md); with Norman's counts an epoch is 1,557
    # steps, so this is ~1.3 epochs at cell-gears' batch size.
    "default": Profile("default", "simulated", max_cells_per_condition=None,
                       max_control_cells=None, n_high_mean_genes=None, gears_steps=2000,
                       gears_lr_halving_steps=278, gears_eval_every=100,
                       seeds=(1, 2, 3), pretrain_steps=1000, context_length=256),
    # Real Norman on 2 CPU cores in a few hours: all cells and all genes, every model on the
    # default's schedule (trained to its plateau there; each chapter checks its own runs), the
    # time projected in benchmarks/RESULTS.md from benchmarks/real_scale.py.
    "norman_cpu": Profile("norman_cpu", "dataverse", max_cells_per_condition=None, max_control_cells=None,
                          n_high_mean_genes=None, gears_steps=2000, gears_lr_halving_steps=278,
                          gears_eval_every=100, seeds=(1, 2, 3), pretrain_steps=1000, context_length=256),
    # Real Norman at full size; meant for a GPU.
    # GEARS exactly as cell-gears: 20 epochs, the learning rate halved after each.
    "full": Profile("full", "dataverse", max_cells_per_condition=None, max_control_cells=None,
                    n_high_mean_genes=None, gears_steps=20 * NORMAN_EPOCH_STEPS, gears_lr_halving_steps=None,
                    gears_eval_every=500, seeds=(1, 2, 3),
                    pretrain_steps=20000, context_length=2048),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[name]


def resolve_parameters(profile: str, **explicit: Any) -> Profile:
    """The profile's values, overridden by every explicit parameter that is not ``None``."""
    base = get_profile(profile)
    known = {f.name for f in fields(Profile)}
    unknown = set(explicit) - known
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)}; profiles define {sorted(known)}")
    overrides = {k: (tuple(v) if k == "seeds" else v) for k, v in explicit.items() if v is not None}
    return replace(base, **overrides)


PROGRESS_FILE_VARIABLE = "HELPERS_PROGRESS_FILE"


def progress_bar(iterable: Any = None, enabled: bool = True, **options: Any) -> tqdm:
    """A tqdm progress bar that never draws into a chapter's page.

    In a chapter run by the book runner (``python -m helpers.book``), the bar is written to the
    runner's progress file (``$HELPERS_PROGRESS_FILE``), which the runner copies to its console, so
    whoever runs ``make book`` sees steps and an ETA while the page stays clean (a kernel's own
    stdout and stderr end up in the page). Elsewhere it draws only on a terminal: in a notebook
    opened by hand, a log or CI it stays silent. ``enabled=False`` silences it everywhere."""
    path = os.environ.get(PROGRESS_FILE_VARIABLE)
    if enabled and path:
        return tqdm(iterable, file=_progress_stream(path), disable=False, dynamic_ncols=False, ncols=100, **options)
    return tqdm(iterable, disable=None if enabled else True, **options)


_progress_streams: dict[str, Any] = {}


def _progress_stream(path: str):
    if path not in _progress_streams:
        _progress_streams[path] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (lives with the process)
    return _progress_streams[path]


DEFAULT_RESULTS = REPO_ROOT / "results"


def results_root() -> Path:
    """Where every step reads and writes: ``$HELPERS_RESULTS_DIR`` when set (the book runner sets
    it per data source, the tests to a temporary folder), else ``results/`` at the repository root."""
    return Path(os.environ.get("HELPERS_RESULTS_DIR", DEFAULT_RESULTS))


NAMED_SOURCES = ("simulated", "dataverse")  # the simulated default and GEARS' Norman file


def resolve_data_source(given: str | None, profile: str) -> str:
    """The data source a run reads: ``given`` (a named source, or a path to a GEARS-format file,
    made absolute because chapters run from the repository root), else the profile's."""
    source = str(given or get_profile(profile).data_source)
    return source if source in NAMED_SOURCES else str(Path(source).expanduser().resolve())


def data_tag(data_source: str) -> str:
    """A folder name for a data source: ``simulated``, ``norman-dataverse`` or, for a local file,
    its name and a digest of its absolute path (``perturb_processed-1a2b3c4d``)."""
    import hashlib

    if data_source in NAMED_SOURCES:
        return "simulated" if data_source == "simulated" else "norman-dataverse"
    path = Path(data_source).expanduser().resolve()
    return f"{path.stem}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"


def results_root_for(data_source: str, base: Path | None = None) -> Path:
    """The results root of a data source under ``base`` (default :func:`results_root`): the
    simulated default's results stay in ``base`` itself, real data's go to
    ``base/real/<data_tag>``, so neither ever overwrites the other."""
    base = results_root() if base is None else Path(base)
    return base if data_source == "simulated" else base / "real" / data_tag(data_source)


def check_results_root(data_source: str) -> None:
    """Stop a data step that would write one data source's results into another's folder: real
    data into the simulated default's (a chapter run by hand with ``data_source`` changed but no
    results root for it), or any data into another real data source's ``real/<tag>`` folder."""
    root = results_root().resolve()
    if root.parent.name == "real" and root.name != data_tag(data_source):
        raise ValueError(f"data_source={data_source!r} would write into {root}, the results of another data "
                         f"source ({root.name}). What to do: run the book with `python -m helpers.book --data "
                         f"{data_source}`, which picks this data source's own results folder")
    if data_source != "simulated" and root == DEFAULT_RESULTS.resolve():
        target = results_root_for(data_source, DEFAULT_RESULTS)
        raise ValueError(
            f"data_source={data_source!r} would write into {DEFAULT_RESULTS}, the simulated default's "
            f"results. What to do: run the book with `python -m helpers.book --data {data_source}` "
            f"(or `make book DATA={data_source}`), which keeps its results in {target}; or set "
            f"HELPERS_RESULTS_DIR={target} before running chapters by hand")


def data_provenance() -> dict[str, Any] | None:
    """The data source (and file checksum) the data step of this results root prepared, as its
    ``run.json`` recorded them; None before the data step has run."""
    record_path = pipeline.folder("prepared_data") / "run.json"
    if not record_path.is_file():
        return None
    return _provenance(json.loads(record_path.read_text())["parameters"])


def data_statement(profile: str, data_source: str | None = None, simulator_seed: int | None = None,
                   data_file_sha256: str | None = None) -> str:
    """One Markdown paragraph for the head of every page: which data the page shows (from the data
    step's record in this results root, or the data step's own ``data_source``, ``simulator_seed``
    and ``data_file_sha256``) and the profile's training budget."""
    settings = get_profile(profile)
    provenance = data_provenance() or {}
    source = data_source or provenance.get("data_source") or settings.data_source
    if source == "simulated":
        seed = simulator_seed if simulator_seed is not None else provenance.get("simulator_seed", 0)
        data = (f"**Data:** simulated on the Norman et al. 2019 design (its 284 conditions, cell counts, "
                f"split and GI fits; simulator seed {seed}), not Norman's measured expression.")
    else:
        name = "GEARS' Norman file from Dataverse" if source == "dataverse" else f"`{Path(source).name}`"
        digest = data_file_sha256 or provenance.get("data_file_sha256")
        data = f"**Data:** {name}" + (f" (SHA-256 `{digest[:12]}…`)." if digest else ".")
    halving = (f"learning rate halved every {settings.gears_lr_halving_steps:,} steps"
               if settings.gears_lr_halving_steps else "learning rate halved every epoch")
    budget = (f"**Budget** (profile `{profile}`): GEARS {settings.gears_steps:,} steps per run ({halving}), "
              f"seeds {', '.join(map(str, settings.seeds))}; GeneMamba {settings.pretrain_steps:,} steps at "
              f"{settings.context_length} tokens per cell.")
    return f"{data} {budget}"


def _provenance(parameters: dict[str, Any]) -> dict[str, Any]:
    return {k: parameters[k] for k in ("data_source", "data_file_sha256", "simulator_seed") if k in parameters}


def step_dir(step: str) -> Path:
    path = results_root() / step
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds,
    so a crash never leaves a half-written result."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".part{path.suffix}")
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    tmp_path.chmod(0o666 & ~umask)  # mkstemp makes 0600 files; results are for everyone to read
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write(path: Path, write: Callable[[Path], Any]) -> Path:
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_csv(df: pd.DataFrame, path: Path) -> Path:
    return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))


def atomic_savefig(fig: Any, path: Path, dpi: int = 150) -> Path:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight",
                                                      format=Path(path).suffix.lstrip(".")))


_TRACKED_PACKAGES = ("helpers", "numpy", "scipy", "pandas", "anndata", "scanpy", "torch",
                     "torch-geometric", "cell-gears", "scikit-learn", "matplotlib")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    """The repository's HEAD commit, with ``+dirty`` when tracked files changed."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty.strip() else "")


def _jsonable(parameters: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps({k: (asdict(v) if hasattr(v, "__dataclass_fields__") else v)
                                  for k, v in parameters.items()}, default=str))


# Modules whose code cannot change what a step computes: where results go, how progress and pages
# look. Everything else a step's computation imports is part of its cache key (code_digest).
NOT_IN_CODE_DIGEST = frozenset({"helpers.runs", "helpers.pipeline", "helpers.book", "helpers.plots"})
PACKAGE_DIR = Path(__file__).resolve().parent


def _module_file(module: str) -> Path | None:
    """The source file of a ``helpers`` module (a package's ``__init__.py``), or None."""
    parts = module.split(".")[1:]
    path = PACKAGE_DIR.joinpath(*parts)
    if path.is_dir():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def helpers_imports(module: str) -> set[str]:
    """The ``helpers`` modules that ``module``'s source imports (``import helpers.x``,
    ``from helpers import x``, ``from helpers.x import y``, at any depth of the file)."""
    import ast

    source = _module_file(module)
    if source is None:
        raise ValueError(f"{module!r} is not a module of the helpers package")
    found = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "helpers"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "helpers":
            found.add(node.module)
            # `from helpers import data` and `from helpers.models import gears` name modules
            found |= {f"{node.module}.{a.name}" for a in node.names
                      if _module_file(f"{node.module}.{a.name}") is not None}
    return {m for m in found if _module_file(m) is not None} - {"helpers"}


def code_digest(*modules: str) -> str:
    """A short SHA-256 of the source of ``modules`` and of every ``helpers`` module they import,
    transitively, leaving out :data:`NOT_IN_CODE_DIGEST`: part of a cached step's key, so that
    a change to the code a step computes with (a fix pulled, a model changed) recomputes it, and
    a change elsewhere does not."""
    import hashlib

    seen: set[str] = set()
    pending = [m for m in modules if m not in NOT_IN_CODE_DIGEST]
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        pending += [m for m in helpers_imports(module) if m not in seen and m not in NOT_IN_CODE_DIGEST]
    digest = hashlib.sha256()
    for module in sorted(seen):
        digest.update(module.encode() + b"\0" + _module_file(module).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def is_cached(step: str, parameters: dict[str, Any], outputs: list[str]) -> bool:
    """Whether ``step`` already ran with exactly these parameters and all its outputs exist."""
    record_path = results_root() / step / "run.json"
    if not record_path.is_file():
        return False
    record = json.loads(record_path.read_text())
    return (record.get("parameters") == _jsonable(parameters)
            and all((results_root() / step / name).exists() for name in outputs))


def forget_run(step: str) -> None:
    """Remove ``step``'s ``run.json`` before it writes anything, so a run that stops half-way
    (an error, an interrupt) is never taken for a finished one: its outputs are only trusted
    again once a run completes and records itself."""
    (results_root() / step / "run.json").unlink(missing_ok=True)


def reuse_or_restart(step: str, parameters: dict[str, Any], outputs: list[str], force: bool = False) -> bool:
    """``True`` when ``step``'s results for these parameters can be reused (see :func:`is_cached`);
    otherwise (or with ``force``) forget its old record (:func:`forget_run`) and return ``False``."""
    if not force and is_cached(step, parameters, outputs):
        return True
    forget_run(step)
    return False


@dataclass(frozen=True)
class CachedRun:
    """One unit of cached work: its folder under the results root, the parameters its results
    are keyed on, and whatever ``compute`` needs to produce them (e.g. a GEARS run)."""

    name: str
    parameters: dict[str, Any]
    task: Any = None


def _write_output(path: Path, value: Any) -> None:
    if path.suffix == ".csv":
        atomic_write_csv(value, path)
    elif path.suffix == ".parquet":
        atomic_write(path, value.to_parquet)
    elif path.suffix == ".pt":
        import torch

        atomic_write(path, lambda tmp: torch.save(value, tmp))
    else:
        raise ValueError(f"{path.name}: cannot write a {path.suffix or 'suffix-less'} output "
                         "(use .csv, .parquet or .pt)")


def _read_output(path: Path) -> Any:
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return path  # not a table: its path


def reuse_or_compute(cached_runs: list[CachedRun], outputs: list[str],
                     compute: Callable[[list[CachedRun]], Any], force: bool = False,
                     describe: str = "runs") -> list[dict[str, Any]]:
    """Each run's ``outputs`` (file name → table read from its file, or the path of a non-table),
    in order.

    A run that finished before with the same parameters and has every output is read back
    (see :func:`is_cached`). The others are handed to ``compute`` together, so that it can run
    them side by side; it yields (or returns) one dict per pending run, file name → value, with
    every name in ``outputs`` and maybe more (e.g. a ``model.pt`` state dict). Each run's files
    are written atomically as soon as its dict arrives, then its ``run.json``: an interrupted
    call keeps the runs it finished and leaves no half-written one.
    """
    results: dict[str, dict[str, Any]] = {}
    pending = []
    for run in cached_runs:
        if reuse_or_restart(run.name, run.parameters, outputs, force):
            folder = results_root() / run.name
            results[run.name] = {name: _read_output(folder / name) for name in outputs}
        else:
            pending.append(run)
    print(f"{describe}: {len(cached_runs) - len(pending)} of {len(cached_runs)} reused from "
          f"results/, {len(pending)} to compute")
    if pending:
        computed = 0
        for run, produced in zip(pending, compute(pending)):
            missing = sorted(set(outputs) - set(produced))
            if missing:
                raise ValueError(f"{run.name}: compute returned no {missing}")
            for name, value in produced.items():
                _write_output(step_dir(run.name) / name, value)
            write_run_json(run.name, run.parameters, sorted(produced))
            # read back, so a computed run hands on exactly what a reused one would
            results[run.name] = {name: _read_output(step_dir(run.name) / name) for name in outputs}
            computed += 1
        if computed != len(pending):
            raise ValueError(f"compute returned {computed} results for {len(pending)} runs")
    return [results[run.name] for run in cached_runs]


def parameters_fingerprint(step: str) -> str:
    """A short hash of the parameters a step last ran with (from its ``run.json``), so outputs
    made from that step's results can be told apart from stale ones."""
    import hashlib

    record_path = results_root() / step / "run.json"
    if not record_path.is_file():
        raise FileNotFoundError(f"{record_path} does not exist; run the {step} step first")
    parameters = json.loads(record_path.read_text())["parameters"]
    return hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()[:16]


def write_run_json(step: str, parameters: dict[str, Any], outputs: list[str] | None = None) -> None:
    """Record a step's parameters, package versions and git commit beside its outputs
    (``results/<step>/run.json``). Returns nothing: a chapter that ends a cell with this call
    must not print a machine path on its page."""
    record = {
        "step": step,
        "parameters": _jsonable(parameters),
        "data": _provenance(_jsonable(parameters)) if step == pipeline.PREPARE_DATA else data_provenance(),
        "outputs": sorted(outputs or []),
        "versions": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_text(step_dir(step) / "run.json", json.dumps(record, indent=1, default=str))
