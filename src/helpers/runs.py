"""Runs: a step's cached results keyed on its parameters and the code it computes with, and the
``run.json`` that records each run (parameters, data source, outputs, versions, commit)."""

from __future__ import annotations

import json
import platform
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from helpers import pipeline
from helpers.files import atomic_write, atomic_write_csv, atomic_write_text
from helpers.profiles import get_profile
from helpers.reference import REPO_ROOT
from helpers.roots import results_root, step_dir


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
NOT_IN_CODE_DIGEST = frozenset({"helpers.runs", "helpers.pipeline", "helpers.book", "helpers.plots", "helpers.roots",
                                "helpers.files", "helpers.progress", "helpers.profiles"})
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
    elif path.suffix == ".h5ad":  # an AnnData
        atomic_write(path, lambda tmp: value.write_h5ad(tmp, compression="gzip"))
    elif path.suffix == ".json":  # text already in JSON
        atomic_write_text(path, value)
    else:
        raise ValueError(f"{path.name}: cannot write a {path.suffix or 'suffix-less'} output "
                         "(use .csv, .parquet, .pt, .h5ad or .json)")


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
