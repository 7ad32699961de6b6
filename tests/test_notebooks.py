"""The data chapter runs headlessly through papermill on the quick profile."""

import json

import pandas as pd
import pytest

from helpers import book, splits


def test_toc_lists_the_data_chapter_first():
    assert book.toc_notebooks()[0] == "01_prepare_data"


def test_every_notebook_has_literal_defaults_and_a_profile():
    for name in book.toc_notebooks():
        parameters = book.notebook_parameters(book.NOTEBOOK_DIR / f"{name}.py")
        assert parameters["profile"] == "default", name


def test_unknown_parameter_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown parameter.*profil"):
        book.execute("01_prepare_data", {"profil": "quick"}, executed_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_prepare_data_notebook_quick_profile(tmp_path, isolated_results):
    executed = book.execute("01_prepare_data", {"profile": "quick"}, executed_dir=tmp_path)
    notebook = json.loads(executed.read_text())
    errors = [o for c in notebook["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors
    out = isolated_results / "01_prepare_data"
    composition = pd.read_csv(out / "split_composition.csv")
    assert composition.columns.tolist() == ["subgroup", "n_perturbations"]
    assert dict(zip(composition.subgroup, composition.n_perturbations)) == {
        "combo_seen0": 9, "combo_seen1": 43, "combo_seen2": 19, "unseen_single": 36}
    split = splits.SimulationSplit.from_json(out / "split.json")
    assert len(split.test) == 107
    record = json.loads((out / "run.json").read_text())
    assert record["parameters"]["max_cells_per_condition"] == 10  # the quick profile's cap
    for figure in ("split_composition.png", "gene_venn.png", "cells_per_condition.png",
                   "simulation_recovery.png"):
        assert (out / figure).stat().st_size > 10_000, figure
    # A second run with the same parameters reuses the cached dataset
    before = (out / "perturb_processed.h5ad").stat().st_mtime_ns
    book.execute("01_prepare_data", {"profile": "quick"}, executed_dir=tmp_path)
    assert (out / "perturb_processed.h5ad").stat().st_mtime_ns == before

    # The model and evaluation chapters, in book order, on the same quick data
    for name in ("10_train_baselines", "11_train_gears", "12_pretrain_genemamba", "13_gene_embeddings",
                 "14_train_gears_priors", "20_evaluate_perturbations"):
        executed = book.execute(name, {"profile": "quick"}, executed_dir=tmp_path)
        notebook = json.loads(executed.read_text())
        assert not [o for c in notebook["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    per_perturbation = pd.read_csv(isolated_results / "metrics" / "per_perturbation.csv")
    assert per_perturbation.columns.tolist() == ["model", "seed", "perturbation", "subgroup", "metric", "value"]
    assert set(per_perturbation.model) == {"no_change", "train_mean", "additive", "linear", "gears",
                                           "gears+go_svd", "gears+genemamba", "noise_ceiling"}
    assert per_perturbation.groupby("model").perturbation.nunique().eq(107).all()
    summary = pd.read_csv(isolated_results / "metrics" / "summary.csv")
    assert summary.columns.tolist() == ["model", "subgroup", "metric", "mean", "ci_low", "ci_high", "n"]
    no_change = summary.query("model == 'no_change' and metric == 'mse_top20_de'").set_index("subgroup")
    additive = summary.query("model == 'additive' and metric == 'mse_top20_de'").set_index("subgroup")
    # knowing both single effects must beat predicting no change on pairs seen as singles
    assert additive.at["combo_seen2", "mean"] < no_change.at["combo_seen2", "mean"]
    assert (isolated_results / "20_evaluate_perturbations" / "mse_top20_de_by_subgroup.png").stat().st_size > 10_000


@pytest.mark.slow
def test_same_parameters_give_identical_metrics(tmp_path, monkeypatch):
    """Two clean quick-profile runs of the whole book give byte-identical metric tables."""
    tables = []
    for run in ("first", "second"):
        monkeypatch.setenv("HELPERS_RESULTS_DIR", str(tmp_path / run / "results"))
        for name in book.toc_notebooks():
            book.execute(name, {"profile": "quick"}, executed_dir=tmp_path / run / "executed")
        tables.append((tmp_path / run / "results" / "metrics" / "per_perturbation.csv").read_bytes())
    assert tables[0] == tables[1]
