"""The real-data path end to end, on a stand-in laid out exactly as GEARS' Norman file
(``tests/real_layout.py``): loading, one gene axis for the whole book, every chapter of the quick
book, results kept apart from the simulated default's, and the README's real-data commands."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from helpers import book, data, download, pipeline, roots, splits
from conftest import built_once
from real_layout import NON_GO_SYMBOLS, real_layout_paths, write_real_layout


def _digests(root: Path, skip: str | None = None) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and (skip is None or skip not in p.parts)}


@pytest.fixture(scope="session")
def real_file(tmp_path_factory) -> tuple[Path, Path]:
    folder = built_once(tmp_path_factory, "real_layout", write_real_layout)
    return real_layout_paths(folder)


@pytest.fixture(scope="session")
def real_book(quick_book, real_file, tmp_path_factory):
    """The quick book run by ``python -m helpers.book --data <file>`` (once for the session) into
    a results folder that already held the simulated quick book's results; returns (base, real
    root, digests of the simulated results before the run: the quick book's own)."""
    def build(folder: Path) -> None:
        shutil.copytree(quick_book / "results", folder / "results")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("HELPERS_RESULTS_DIR", str(folder / "results"))
            assert book.main(["--profile", "quick", "--data", str(real_file[0])],
                             executed_dir=folder / "executed") == 0

    base = built_once(tmp_path_factory, "real_book", build) / "results"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HELPERS_RESULTS_DIR", str(base))
        root = roots.results_root_for(str(real_file[0]))
    return base, root, _digests(quick_book / "results")


def test_the_real_layout_loads_with_symbols_as_the_gene_axis(real_file):
    path = real_file[0]
    stored = ad.read_h5ad(path)
    adata = data.read_gears_h5ad(path)
    assert list(adata.var_names) == list(stored.var["gene_name"].astype(str))  # symbols, not IDs
    assert list(adata.var["gene_id"]) == list(stored.var_names)  # the IDs are kept
    assert adata.var_names.is_unique and not adata.layers  # the dense counts layer is not carried
    counts = stored.layers["counts"]
    assert np.allclose(adata.obs["total_counts"], counts.sum(axis=1))
    assert (adata.obs["n_genes_by_counts"].to_numpy() == (counts > 0).sum(axis=1)).all()
    assert (adata.obs["cell_type"] == "K562").all() and (adata.obs["cell_type_original"] == "A549").all()
    assert {"KLF1+ctrl", "ctrl+KLF1", "IER5L+ctrl", "RHOXF2BB+ZBTB25"} <= set(adata.obs["condition"])


def test_duplicate_symbols_are_made_unique_with_their_ids():
    adata = ad.AnnData(np.zeros((2, 3), dtype=np.float32),
                       var=pd.DataFrame({"gene_name": ["A", "B", "A"]}, index=["E1", "E2", "E3"]))
    with pytest.warns(UserWarning, match="share a symbol"):
        data.use_symbols(adata)
    assert list(adata.var_names) == ["A_E1", "B", "A_E3"] and list(adata.var["gene_id"]) == ["E1", "E2", "E3"]


@pytest.mark.slow
@pytest.mark.long(3)
def test_every_chapter_runs_on_the_real_layout(real_book, real_file):
    _, root, _ = real_book
    prepared = ad.read_h5ad(root / pipeline.PREPARE_DATA / data.DATASET_FILE)
    assert set(NON_GO_SYMBOLS) <= set(prepared.var_names)
    assert prepared.var["gene_id"].str.startswith("ENSG").all()
    # every model predicts on the prepared gene axis
    stored = sorted((root / "predictions").glob("*/seed=*/predictions.h5ad"))
    assert {p.parts[-3] for p in stored} >= {"no_change", "additive", "linear", "gears", "gears+genemamba",
                                             "gears+go_svd"}
    for path in stored:
        assert list(ad.read_h5ad(path).var_names) == list(prepared.var_names), path
    # chapter 21's box plot and chapter 22's GI scores are computed
    assert list((root / "21_inspect_combination").rglob("*.png"))
    magnitudes = pd.read_csv(pipeline.folder("gi", root) / "magnitude.csv")
    assert len(magnitudes) and magnitudes.magnitude.notna().all()
    assert {"truth", "gears", "additive"} <= set(magnitudes.model)
    per_perturbation = pd.read_csv(pipeline.folder("metrics", root) / "per_perturbation.csv")
    split = splits.SimulationSplit.from_json(root / pipeline.PREPARE_DATA / "split.json")
    # every model (and the ceiling) scored on every test perturbation, by every metric
    assert (per_perturbation.groupby(["model", "seed"]).perturbation.nunique() == len(split.test)).all()
    headline = per_perturbation[per_perturbation.metric == "mse_de"]
    assert headline.value.notna().all() and (headline.value >= 0).all()
    # the DE genes behind those metrics are those cell-gears wrote into the file (IDs → symbols;
    # the file names its cell type A549, the book K562, so conditions are matched without it)
    original = ad.read_h5ad(real_file[0])
    symbol = dict(zip(original.var_names, original.var["gene_name"].astype(str)))

    def condition_of(name):
        return name.split("_", 1)[1]

    for key in ("rank_genes_groups_cov_all", "top_non_dropout_de_20"):
        theirs = {condition_of(n): [symbol[g] for g in genes] for n, genes in original.uns[key].items()}
        ours = {condition_of(n): list(genes) for n, genes in prepared.uns[key].items()}
        assert ours.keys() == theirs.keys(), key
        for name in theirs:
            assert ours[name][:20] == theirs[name][:20], (key, name)
    # every result records the data source and the file's checksum
    expected = {"data_source": str(real_file[0]), "data_file_sha256": download.file_digest(real_file[0])}
    for record in root.glob("*/run.json"):
        provenance = json.loads(record.read_text())["data"]
        assert {k: provenance[k] for k in expected} == expected, record


@pytest.mark.slow
def test_real_and_simulated_results_never_overwrite_each_other(real_book):
    base, root, before = real_book
    assert root.is_relative_to(base / "real")
    assert _digests(base, skip="real") == before  # the real run left the simulated results alone
    real_before = _digests(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HELPERS_RESULTS_DIR", str(base))
        book.main(["--profile", "quick", "--only", "01_prepare_data", "-p", "force", "True"],
                  executed_dir=base.parent / "executed_simulated")
    assert _digests(root) == real_before  # and a simulated run leaves the real ones alone
    assert json.loads((base / "01_prepare_data" / "run.json").read_text())["data"]["data_source"] == "simulated"


@pytest.mark.slow
def test_export_for_cell_eval_on_the_real_layout(real_book, tmp_path, monkeypatch):
    _, root, _ = real_book
    results = tmp_path / "results"
    shutil.copytree(root, results)
    monkeypatch.setenv("HELPERS_RESULTS_DIR", str(results))
    book.execute("20_evaluate_perturbations", {"profile": "quick", "cell_eval_models": ["gears"]},
                 executed_dir=tmp_path / "executed")
    predicted = ad.read_h5ad(next((pipeline.folder("cell_eval", results) / "gears").glob("seed=*/adata_pred.h5ad")))
    real = ad.read_h5ad(next((pipeline.folder("cell_eval", results) / "gears").glob("seed=*/adata_real.h5ad")))
    assert list(predicted.var_names) == list(real.var_names)
    split = splits.SimulationSplit.from_json(root / pipeline.PREPARE_DATA / "split.json")
    prepared = ad.read_h5ad(root / pipeline.PREPARE_DATA / data.DATASET_FILE)
    expected = prepared.obs.condition.astype(str).isin([*split.test, "ctrl"]).sum()
    assert predicted.n_obs == real.n_obs == expected  # control and every test cell, once each
    assert set(predicted.obs.condition) == {*split.test, "ctrl"}


def test_the_download_command_works_from_a_local_zip(real_file, tmp_path, monkeypatch):
    """`python -m helpers.book --data dataverse` (the README's download command), served from a
    file:// copy of norman.zip."""
    monkeypatch.setenv("HELPERS_NORMAN_URL", real_file[1].as_uri())
    monkeypatch.setenv("HELPERS_DATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HELPERS_RESULTS_DIR", str(tmp_path / "results"))
    assert book.main(["--profile", "quick", "--data", "dataverse", "--only", "01_prepare_data"],
                     executed_dir=tmp_path / "executed") == 0
    prepared = tmp_path / "results" / "real" / "norman-dataverse" / pipeline.PREPARE_DATA
    assert (prepared / data.DATASET_FILE).is_file()
    assert (tmp_path / "cache" / download.NORMAN_H5AD_MEMBER).read_bytes() == real_file[0].read_bytes()
    assert not (tmp_path / "results" / pipeline.PREPARE_DATA).exists()  # nothing in the simulated root


def test_a_chapter_run_by_hand_on_real_data_cannot_overwrite_the_default(real_file, monkeypatch):
    monkeypatch.setenv("HELPERS_RESULTS_DIR", str(roots.DEFAULT_RESULTS))
    with pytest.raises(ValueError, match="helpers.book --data"):
        roots.check_results_root(str(real_file[0]))
    roots.check_results_root("simulated")  # the default is fine
    monkeypatch.setenv("HELPERS_RESULTS_DIR", str(roots.results_root_for(str(real_file[0]), roots.DEFAULT_RESULTS)))
    roots.check_results_root(str(real_file[0]))  # its own folder is fine
    with pytest.raises(ValueError, match="another data source"):
        roots.check_results_root("simulated")
