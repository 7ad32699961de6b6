"""Results roots: one per data source (the simulated default in ``results/``, real data in
``results/real/<tag>/``, so neither overwrites the other), and one folder per step inside it."""

from __future__ import annotations

import os
from pathlib import Path

from helpers.profiles import get_profile
from helpers.reference import REPO_ROOT

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


def step_dir(step: str) -> Path:
    path = results_root() / step
    path.mkdir(parents=True, exist_ok=True)
    return path
