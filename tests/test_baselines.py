"""Baselines on constructed condition means with known answers (the Systema and PerturBench
baselines included)."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.models import baselines, registry
from helpers.models.baselines import BaselineInputs
from helpers.predictions import available_predictions, read_predictions, write_predictions


@pytest.fixture
def means():
    genes = ["A", "B", "C", "D"]
    rows = {"ctrl": [1.0, 1.0, 1.0, 1.0], "A+ctrl": [3.0, 1.0, 2.0, 1.0], "ctrl+B": [1.0, 0.0, 1.0, 2.0],
            "A+B": [4.0, 0.0, 1.0, 1.0], "C+ctrl": [1.0, 1.0, 5.0, 1.0]}
    return pd.DataFrame.from_dict(rows, orient="index", columns=genes)


def test_no_change_and_train_mean(means):
    train = ["ctrl", "A+ctrl", "ctrl+B"]
    assert baselines.no_change(means, ["A+B"]).loc["A+B"].tolist() == [1.0, 1.0, 1.0, 1.0]
    expected = 1.0 + np.array([(2 + 0) / 2, (0 - 1) / 2, (1 + 0) / 2, (0 + 1) / 2])
    np.testing.assert_allclose(baselines.train_mean(means, train, ["A+B"]).loc["A+B"], expected)


def test_additive_sums_single_changes_and_ignores_unseen_genes(means):
    predicted = baselines.additive(means, ["ctrl", "A+ctrl", "ctrl+B"], ["A+B", "A+C", "C+ctrl"])
    np.testing.assert_allclose(predicted.loc["A+B"], [3.0, 0.0, 2.0, 2.0])
    np.testing.assert_allclose(predicted.loc["A+C"], [3.0, 1.0, 2.0, 1.0])  # C never seen alone
    np.testing.assert_allclose(predicted.loc["C+ctrl"], [1.0, 1.0, 1.0, 1.0])


def test_linear_model_recovers_a_low_rank_truth():
    rng = np.random.default_rng(0)
    n_genes, rank = 60, 3
    genes = [f"g{i}" for i in range(n_genes)]
    basis = rng.normal(size=(n_genes, rank))
    W = rng.normal(size=(rank, rank))
    perturbed = genes[:20]

    def effect(gs):
        return sum(basis @ W @ basis[genes.index(g)] for g in gs)

    conditions = ["ctrl"] + [f"{g}+ctrl" for g in perturbed]
    table = {"ctrl": np.zeros(n_genes), **{f"{g}+ctrl": effect([g]) for g in perturbed}}
    means = pd.DataFrame.from_dict(table, orient="index", columns=genes)
    train, held_out = conditions[:16], conditions[16:]
    predicted = baselines.linear(means, train, held_out, genes, n_components=rank, ridge=1e-6)
    truth = means.loc[held_out]
    r = np.corrcoef(predicted.to_numpy().ravel(), truth.to_numpy().ravel())[0, 1]
    assert r > 0.95  # an unseen gene's effect is predicted from its own expression loadings


def test_unknown_baseline_or_setting_is_rejected(means):
    inputs = BaselineInputs(means, ["ctrl"], ["A+B"], list(means.columns), pd.Series(dtype=int))
    with pytest.raises(ValueError, match="unknown baseline 'mean'"):
        registry.predict_baseline("mean", inputs)
    with pytest.raises(ValueError, match="unknown baseline 'gears'"):  # registered, not a baseline
        registry.predict_baseline("gears", inputs)
    with pytest.raises(ValueError, match=r"'linear' has no setting \['n_pcs'\]"):
        registry.predict_baseline("linear", inputs, {"n_pcs": 3})


def test_predictions_round_trip(means, isolated_results):
    path = write_predictions("additive", 0, means, "data-1", {"profile": "quick"})
    assert path == isolated_results / "predictions" / "additive" / "seed=0" / "predictions.h5ad"
    pd.testing.assert_frame_equal(read_predictions("additive", 0), means.astype(np.float32), check_dtype=False)
    assert available_predictions().to_dict("records") == [{"model": "additive", "seed": 0}]
    assert available_predictions("data-1").to_dict("records") == [{"model": "additive", "seed": 0}]
    with pytest.warns(UserWarning, match="made from other data: additive seed 0"):
        assert available_predictions("data-2").empty
    # the same predictions again leave the file alone; other ones replace it
    stamp = path.stat().st_mtime_ns
    write_predictions("additive", 0, means, "data-1", {"profile": "quick"})
    assert path.stat().st_mtime_ns == stamp
    write_predictions("additive", 0, means + 1.0, "data-1", {"profile": "quick"})
    assert read_predictions("additive", 0).iloc[0, 0] == np.float32(means.iloc[0, 0] + 1)
    with pytest.raises(ValueError, match="NaN"):
        write_predictions("broken", 1, means.replace(4.0, np.nan), "data-1")
    assert not (isolated_results / "predictions" / "broken" / "seed=1" / "predictions.h5ad").exists()


def _external(means: pd.DataFrame, path: Path) -> Path:
    """A prediction file as a tool outside the book writes it: the shared format, no fingerprint."""
    import anndata as ad

    path.parent.mkdir(parents=True, exist_ok=True)
    ad.AnnData(X=means.to_numpy(np.float32), obs=pd.DataFrame(index=means.index),
               var=pd.DataFrame(index=means.columns)).write_h5ad(path)
    return path


def test_a_model_trained_elsewhere_is_found_checked_and_named_in_errors(means, isolated_results):
    """A file dropped into predictions/ without the book's fingerprint is picked up beside the
    book's own models when it covers the test conditions (singles of a test pair in either
    spelling) and the genes; otherwise the error names the file and what is missing."""
    from helpers.predictions import required_conditions

    write_predictions("additive", 0, means, "data-1")
    folder = isolated_results / "predictions" / "elsewhere"
    good = _external(means.rename(index={"A+ctrl": "ctrl+A"}), folder / "seed=3" / "predictions.h5ad")
    test, genes = ["A+B", "C+ctrl"], list(means.columns)
    assert required_conditions(test) == ["A+B", "C+ctrl", "A+ctrl", "B+ctrl"]
    found = available_predictions("data-1", required_conditions(test), genes)
    assert found.to_dict("records") == [{"model": "additive", "seed": 0}, {"model": "elsewhere", "seed": 3}]
    pd.testing.assert_frame_equal(read_predictions("elsewhere", 3),
                                  means.rename(index={"A+ctrl": "ctrl+A"}).astype(np.float32), check_dtype=False)
    good.unlink()
    bad = _external(means.drop(index="ctrl+B"), folder / "seed=3" / "predictions.h5ad")
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))}: no prediction for 1 condition.*'B\+ctrl'"):
        available_predictions("data-1", required_conditions(test), genes)
    _external(means.rename(columns={"C": "ENSG0001"}), bad)
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))}: 1 of the prepared data's 4 genes.*\['C'\]"):
        available_predictions("data-1", required_conditions(test), genes)
    _external(means.replace(4.0, np.nan), bad)
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))}: the predictions hold NaN"):
        available_predictions("data-1", required_conditions(test), genes)
    bad.write_text("not an h5ad file")
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))}: not a readable h5ad"):
        available_predictions("data-1", required_conditions(test), genes)


def test_cell_eval_export_reads_back_in_its_layout(tmp_path):
    import anndata as ad

    from helpers import predictions
    from tests.conftest import make_gears_adata

    real = make_gears_adata({"ctrl": 40, "A+B": 7, "C+ctrl": 5, "D+E": 3}, n_genes=12)
    means = pd.DataFrame(np.vstack([real[real.obs.condition == c].X.toarray().mean(0) + 0.5
                                    for c in ("A+B", "C+ctrl")]), index=["A+B", "C+ctrl"], columns=real.var_names)
    predicted, observed = predictions.cell_eval_anndata(means, real, ["A+B", "C+ctrl"], seed=1)
    predicted.write_h5ad(tmp_path / "pred.h5ad")
    observed.write_h5ad(tmp_path / "real.h5ad")
    predicted, observed = ad.read_h5ad(tmp_path / "pred.h5ad"), ad.read_h5ad(tmp_path / "real.h5ad")
    assert list(predicted.var_names) == list(observed.var_names) == list(real.var_names)
    assert predicted.obs.condition.value_counts().to_dict() == {"ctrl": 40, "A+B": 7, "C+ctrl": 5}
    assert observed.obs.condition.value_counts().to_dict() == {"ctrl": 40, "A+B": 7, "C+ctrl": 5}
    assert (predicted.X >= 0).all()
    # the shift is the predicted change over control: on average, it lands on the predicted mean
    control = real[real.obs.condition == "ctrl"].X.toarray()
    candidates = np.maximum(control + (means.loc["A+B"].to_numpy() - control.mean(0)), 0)
    for cell in predicted[predicted.obs.condition == "A+B"].X:  # each is a shifted control cell
        assert np.isclose(candidates, cell, atol=1e-5).all(axis=1).any()
    with pytest.raises(ValueError, match="no prediction.*D\\+E"):
        predictions.cell_eval_anndata(means, real, ["A+B", "D+E"])


def test_cell_eval_export_of_means_reads_back_the_prediction_floored_at_zero():
    from helpers import predictions
    from tests.conftest import make_gears_adata

    real = make_gears_adata({"ctrl": 20, "A+B": 6, "C+ctrl": 4}, n_genes=8)
    means = pd.DataFrame(np.linspace(-1, 2, 16).reshape(2, 8), index=["A+B", "C+ctrl"], columns=real.var_names)
    predicted, _ = predictions.cell_eval_anndata(means, real, ["A+B", "C+ctrl"], cells="mean")
    for condition in ("A+B", "C+ctrl"):
        cells = predicted[predicted.obs.condition == condition].X
        np.testing.assert_allclose(cells.mean(axis=0), np.maximum(means.loc[condition], 0), atol=1e-7)
    control = predicted[predicted.obs.condition == "ctrl"].X
    np.testing.assert_allclose(control, real[real.obs.condition == "ctrl"].X.toarray())
    with pytest.raises(ValueError, match="cells must be"):
        predictions.cell_eval_anndata(means, real, ["A+B"], cells="median")


# --- baselines --------------------------------------------------------------------------------

def test_non_control_mean_weights_cells(means):
    n_cells = pd.Series({"ctrl": 100, "A+ctrl": 30, "ctrl+B": 10})
    predicted = baselines.non_control_mean(means, n_cells, ["ctrl", "A+ctrl", "ctrl+B"], ["A+B", "C+ctrl"])
    expected = (30 * means.loc["A+ctrl"] + 10 * means.loc["ctrl+B"]) / 40
    np.testing.assert_allclose(predicted.loc["A+B"], expected)
    np.testing.assert_allclose(predicted.loc["C+ctrl"], expected)
    # not the perturbation-weighted train_mean
    assert not np.allclose(predicted.loc["A+B"], baselines.train_mean(means, ["ctrl", "A+ctrl", "ctrl+B"], ["A+B"]).loc["A+B"])


def test_matching_mean_averages_singles_and_falls_back_to_the_non_control_mean(means):
    n_cells = pd.Series({"A+ctrl": 30, "ctrl+B": 10})
    train = ["ctrl", "A+ctrl", "ctrl+B"]
    predicted = baselines.matching_mean(means, n_cells, train, ["A+B", "A+C", "C+ctrl"])
    np.testing.assert_allclose(predicted.loc["A+B"], (means.loc["A+ctrl"] + means.loc["ctrl+B"]) / 2)
    fallback = (30 * means.loc["A+ctrl"] + 10 * means.loc["ctrl+B"]) / 40
    np.testing.assert_allclose(predicted.loc["A+C"], (means.loc["A+ctrl"] + fallback) / 2)
    np.testing.assert_allclose(predicted.loc["C+ctrl"], fallback)


def test_latent_additive_is_additive_with_every_component_and_a_projection_with_fewer():
    rng = np.random.default_rng(4)
    genes = [f"g{i}" for i in range(30)]
    names = ["ctrl", *[f"g{i}+ctrl" for i in range(8)], "g0+g1"]
    means = pd.DataFrame(rng.normal(0, 1, (len(names), 30)), index=names, columns=genes)
    train = names[:-1]
    full = baselines.latent_additive(means, train, ["g0+g1", "g9+ctrl"], n_components=50)
    np.testing.assert_allclose(full, baselines.additive(means, train, ["g0+g1", "g9+ctrl"]), atol=1e-10)
    one = baselines.latent_additive(means, train, ["g0+g1"], n_components=1).loc["g0+g1"].to_numpy()
    X = means.loc[train].to_numpy()
    centre = X.mean(axis=0)
    direction = np.linalg.svd(X - centre)[2][0]
    residual = one - centre
    np.testing.assert_allclose(residual, (residual @ direction) * direction, atol=1e-10)  # on the first PC
    assert not np.allclose(one, full.loc["g0+g1"])


def test_the_registry_predicts_every_baseline_with_its_own_inputs_and_settings(means):
    """Each registered baseline's entry point hands its function the right inputs (cell counts
    to the Systema means, gene symbols to the linear model) and its default settings, which a
    chapter's settings override."""
    train, n_cells, genes = ["ctrl", "A+ctrl", "ctrl+B"], pd.Series({"A+ctrl": 3, "ctrl+B": 1}), list(means.columns)
    targets = ["A+B", "A+C", "C+ctrl"]
    inputs = BaselineInputs(means, train, targets, genes, n_cells)
    expected = {
        "no_change": baselines.no_change(means, targets),
        "train_mean": baselines.train_mean(means, train, targets),
        "non_control_mean": baselines.non_control_mean(means, n_cells, train, targets),
        "matching_mean": baselines.matching_mean(means, n_cells, train, targets),
        "additive": baselines.additive(means, train, targets),
        "latent_additive": baselines.latent_additive(means, train, targets, n_components=20),
        "linear": baselines.linear(means, train, targets, genes, n_components=10, ridge=0.1),
    }
    assert [m.name for m in registry.registered("baseline")] == list(expected)
    for name, table in expected.items():
        pd.testing.assert_frame_equal(registry.predict_baseline(name, inputs), table)
    stronger = baselines.linear(means, train, targets, genes, n_components=10, ridge=50.0)
    pd.testing.assert_frame_equal(registry.predict_baseline("linear", inputs, {"ridge": 50.0}), stronger)
    assert not np.allclose(stronger, expected["linear"])  # the setting reached the model
    without_counts = BaselineInputs(means, train, targets, genes, pd.Series({"A+ctrl": 3}))
    with pytest.raises(ValueError, match="number of cells of every training perturbation"):
        registry.predict_baseline("matching_mean", without_counts)


def test_models_are_named_coloured_and_ordered_once():
    """Prior models are spelled by the registry; every registered model has its own colour;
    stored models the registry does not know (trained elsewhere) come last, by name."""
    assert registry.prior_model_name("go_svd") == "gears+go_svd"
    assert registry.model("gears+go_svd").label == "GEARS + GO-SVD"
    assert registry.model("gears+my_embedding").family == "gears_prior"
    assert registry.model("scgpt").family == "external" and registry.model("scgpt").interactions
    colours = [m.colour for m in registry.registered()]
    assert len(set(colours)) == len(colours) and registry.UNREGISTERED_COLOUR not in colours
    assert registry.ordered(["zz_external", "gears+go_svd", "noise_ceiling", "additive", "gears", "aa_external"]) \
        == ["additive", "gears", "gears+go_svd", "aa_external", "zz_external"]
    assert [m.name for m in registry.registered() if not m.interactions] == ["no_change"]
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.Model("additive", "again", "#123456", "baseline", "helpers.models.baselines:predict_additive"))
    with pytest.raises(ValueError, match="a baseline needs predict"):
        registry.Model("toy", "toy", "#123456", "baseline")
