"""Baselines on constructed condition means with known answers (the Systema and PerturBench
baselines included)."""

import numpy as np
import pandas as pd
import pytest

from helpers.models import baselines
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


def test_unknown_baseline_is_rejected(means):
    with pytest.raises(ValueError, match="unknown baseline 'mean'"):
        baselines.predict_baseline("mean", means, ["ctrl"], ["A+B"], list(means.columns))


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


def test_predict_baseline_knows_every_baseline_and_asks_for_cell_counts(means):
    train, n_cells = ["ctrl", "A+ctrl", "ctrl+B"], pd.Series({"A+ctrl": 3, "ctrl+B": 1})
    for name in baselines.BASELINES:
        predicted = baselines.predict_baseline(name, means, train, ["A+B"], list(means.columns), n_cells)
        assert predicted.shape == (1, 4) and np.isfinite(predicted.to_numpy()).all()
    with pytest.raises(ValueError, match="pass n_cells"):
        baselines.predict_baseline("matching_mean", means, train, ["A+B"], list(means.columns))
