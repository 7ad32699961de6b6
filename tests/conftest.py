"""Shared fixtures: a small simulated screen and an isolated results folder."""

from __future__ import annotations

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


@pytest.fixture(scope="session")
def quick_book(tmp_path_factory):
    """The whole book executed once on the quick profile, shared by the end-to-end tests:
    the returned folder holds the book sources (config, table of contents, intro, CSS),
    ``book/executed/`` and ``results/``."""
    import shutil

    from helpers import book
    from helpers.reference import REPO_ROOT

    root = tmp_path_factory.mktemp("quick_book")
    for name in ("_config.yml", "_toc.yml", "book/intro.md"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / name, root / name)
    shutil.copytree(REPO_ROOT / "_static", root / "_static")  # the book's CSS
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HELPERS_RESULTS_DIR", str(root / "results"))
        for name in book.toc_notebooks():
            book.execute(name, {"profile": "quick"}, executed_dir=root / "book" / "executed")
        book.write_data_statement("quick", root / "book" / "executed")
    return root


@pytest.fixture
def finished_results(quick_book, tmp_path, monkeypatch):
    """A private copy of the quick book's results, so a test that reruns or breaks a step cannot
    disturb the others."""
    import shutil

    results = tmp_path / "results"
    shutil.copytree(quick_book / "results", results)
    monkeypatch.setenv("HELPERS_RESULTS_DIR", str(results))
    return results
