"""Shared fixtures (an isolated results folder, a small simulated screen, the quick book built
once for every test process) and the order that keeps the test processes busy."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

# Threads out of work sleep instead of spinning (what the book's kernels do, helpers.models.
# torch_runtime.thread_environment): the test processes share the cores and a spinning thread
# takes them from the other process's work. Set before any test imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp


@pytest.fixture(autouse=True)
def isolated_results(tmp_path, monkeypatch):
    """Every test writes results under its own temporary folder, never into the repo."""
    results = tmp_path / "results"
    monkeypatch.setenv("HELPERS_RESULTS_DIR", str(results))
    return results


def make_gears_adata(conditions: dict[str, int], n_genes: int = 30, seed: int = 0) -> ad.AnnData:
    """A tiny log-normalised AnnData in GEARS format with the given cells per condition."""
    rng = np.random.default_rng(seed)
    labels = [c for c, n in conditions.items() for _ in range(n)]
    counts = rng.poisson(2.0, (len(labels), n_genes)).astype(np.float32)
    X = np.log1p(counts / np.maximum(counts.sum(1, keepdims=True), 1) * 1e4)
    genes = [f"G{i}" for i in range(n_genes)]
    return ad.AnnData(X=sp.csr_matrix(X.astype(np.float32)),
                      obs=pd.DataFrame({"condition": labels, "cell_type": "K562"},
                                       index=[f"c{i}" for i in range(len(labels))]),
                      var=pd.DataFrame({"gene_name": genes}, index=genes))


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto`` (pyproject's default): one test process per core this process may use."""
    from helpers.models.torch_runtime import available_cores

    return available_cores()


def _reads_quick_book(item: pytest.Item) -> bool:
    return "quick_book" in getattr(item, "fixturenames", ())


def _minutes(item: pytest.Item) -> float:
    mark = item.get_closest_marker("long")
    return mark.args[0] if mark else 0.0


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items) -> None:
    """The order that keeps every test process busy. pytest-xdist (``--maxschedchunk 1``) first
    hands each process two tests, the second to run after the first, then one at a time to
    whichever is free. The quick book is built once (:func:`quick_book`) by the first test that
    reads it, and a dozen tests read it: a quick reader goes first, to start the build at once,
    and the other tests that read it go last, so that no process waits for the build while
    there is other work. In between, the tests marked ``long(minutes)`` go longest first, so
    that none is left running alone at the end, and each process's second test is a quick one,
    never stuck behind a long first one; the rest keep their order (``pytest --reverse``
    included)."""
    readers = [item for item in items if _reads_quick_book(item)]
    others = [item for item in items if not _reads_quick_book(item)]
    if not readers:
        return
    starter = next((item for item in readers if not _minutes(item)), readers[0])
    readers.remove(starter)
    longs = sorted((item for item in others if _minutes(item)), key=lambda item: -_minutes(item))
    quick = [item for item in others if not _minutes(item)]
    processes = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))  # set in each test process
    head = [starter, *quick[:1]]
    for first, second in zip(longs[:processes - 1], quick[1:processes]):
        head += [first, second]
    placed = set(map(id, head))
    rest = [item for item in [*longs, *quick] if id(item) not in placed]
    items[:] = head + rest + sorted(readers, key=lambda item: -_minutes(item))


def built_once(tmp_path_factory, name: str, build: Callable[[Path], object]) -> Path:
    """The folder ``name``, filled by ``build(folder)`` once for the whole test session.

    With several test processes (pytest-xdist) the first to need it builds it under a file lock
    in their common temporary folder, and the others wait for it and read the same folder. A
    failed build leaves no marker, so the next test that needs it builds it again and fails
    with its own error."""
    import shutil

    from filelock import FileLock

    common = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:  # each process has its own folder below the common one
        common = common.parent
    folder, finished = common / name, common / f"{name}.finished"
    with FileLock(str(common / f"{name}.lock")):
        if not finished.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a failed build left
            folder.mkdir()
            build(folder)
            finished.touch()
    return folder


@pytest.fixture(scope="session")
def quick_book(tmp_path_factory) -> Path:
    """The whole book executed once on the quick profile, shared by the end-to-end tests:
    the returned folder holds the book sources (config, table of contents, intro, CSS),
    ``book/executed/`` and ``results/``. Tests read it and never change it."""
    return built_once(tmp_path_factory, "quick_book", _build_quick_book)


def _build_quick_book(root: Path) -> None:
    import shutil

    from helpers import book
    from helpers.reference import REPO_ROOT

    for name in ("_config.yml", "_toc.yml", "book/intro.md"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / name, root / name)
    shutil.copytree(REPO_ROOT / "_static", root / "_static")  # the book's CSS
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HELPERS_RESULTS_DIR", str(root / "results"))
        for name in book.toc_notebooks():
            book.execute(name, {"profile": "quick"}, executed_dir=root / "book" / "executed")
        book.write_data_statement("quick", root / "book" / "executed")


@pytest.fixture
def finished_results(quick_book, tmp_path, monkeypatch):
    """A private copy of the quick book's results, so a test that reruns or breaks a step cannot
    disturb the others."""
    import shutil

    results = tmp_path / "results"
    shutil.copytree(quick_book / "results", results)
    monkeypatch.setenv("HELPERS_RESULTS_DIR", str(results))
    return results
