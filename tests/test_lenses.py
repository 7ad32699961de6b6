"""The field's lenses (helpers.lenses), GI detection and the evaluation step:
exact values on cases worked out by hand, and the plausible bug each check would catch."""

import numpy as np
import pandas as pd
import pytest

from helpers import gi, lenses


def make_truth(means, conditions, genes, control_mean=None, centroid=None, de=None, significant=None):
    means = np.asarray(means, float)
    P, G = means.shape
    control_mean = np.zeros(G) if control_mean is None else np.asarray(control_mean, float)
    return lenses.Truth(
        conditions=list(conditions), genes=pd.Index(genes), means=means, control_mean=control_mean,
        centroid=means.mean(axis=0) if centroid is None else np.asarray(centroid, float),
        targets=lenses.target_mask(conditions, genes),
        de=np.tile(np.arange(min(20, G)), (P, 1)) if de is None else np.asarray(de),
        top_expressed=np.argsort(-control_mean, kind="stable")[:1000],
        significant=np.zeros((P, G), bool) if significant is None else np.asarray(significant))


# --- discrimination --------------------------------------------------------------------------

def test_a_perfect_prediction_ranks_first_and_scores_pds_one():
    true = np.eye(4) * 3.0
    mask = np.ones_like(true, bool)
    assert lenses.normalised_rank(true, true, mask).tolist() == [0.0] * 4
    assert lenses.discrimination_score(true, true, mask).tolist() == [1.0] * 4


def test_a_prediction_collapsed_to_the_mean_is_at_chance():
    true = np.eye(3) * 3.0
    collapsed = np.tile(true.mean(axis=0), (3, 1))  # (1, 1, 1): equidistant from every true profile
    mask = np.ones_like(true, bool)
    np.testing.assert_allclose(lenses.normalised_rank(collapsed, true, mask), 0.5)
    # cell-eval's 1 − closer/N with the two ties counted half: 1 − 1/3
    np.testing.assert_allclose(lenses.discrimination_score(collapsed, true, mask), 2 / 3)


def test_swapped_predictions_rank_last():
    true = np.array([[0.0, 0.0], [5.0, 5.0], [1.0, 0.0]])
    pred = true[[1, 0, 2]]  # the first two swapped
    rank = lenses.normalised_rank(pred, true, np.ones_like(true, bool))
    assert rank[0] == 1.0  # both other profiles closer than its own
    assert rank[1] == 1.0
    assert rank[2] == 0.0
    assert lenses.discrimination_score(pred, true, np.ones_like(true, bool))[0] == pytest.approx(1 / 3)  # 1/N


def test_the_target_gene_is_left_out_of_discrimination():
    genes = ["A", "B", "x", "y"]
    conditions = ["A+ctrl", "B+ctrl"]
    # A rises by 10, B by 0.5; the response is x for A and y for B
    true = np.array([[10.0, 0.0, 1.0, 0.0], [0.0, 0.5, 0.0, 1.0]])
    # the prediction for A gets its target right and its response wrong (y, not x)
    pred = np.array([[10.0, 0.0, 0.0, 1.0], [0.0, 0.5, 0.0, 1.0]])
    keep = ~lenses.target_mask(conditions, genes)
    assert lenses.normalised_rank(pred, true, np.ones_like(keep))[0] == 0.0  # the target decides
    assert lenses.normalised_rank(pred, true, keep)[0] == 1.0  # without it: closer to B's profile


# --- per-perturbation lenses ------------------------------------------------------------------

def test_perturbation_lenses_of_a_perfect_prediction():
    rng = np.random.default_rng(0)
    genes = [f"g{i}" for i in range(200)]
    conditions = ["g0+ctrl", "g1+g2", "g3+ctrl"]
    control = rng.uniform(0.5, 2.0, 200)
    means = control + rng.normal(0, 0.5, (3, 200))
    significant = np.zeros((3, 200), bool)
    significant[:, :150] = True
    truth = make_truth(means, conditions, genes, control, significant=significant)
    scores = lenses.perturbation_lenses(means[1], truth, 1)
    assert scores["mae"] == 0.0 and scores["l2_top1000"] == 0.0
    for name in ("pearson_delta_centroid", "pearson_delta_centroid_de", "cosine_delta", "spearman_delta",
                 "de_overlap_20", "de_overlap_50", "de_overlap_100"):
        assert scores[name] == pytest.approx(1.0), name
    # precision@N: the share of the predicted top N that are significant: genes 150..199 are not
    top100 = lenses.top_changed(means[1] - control, ~truth.targets[1], 100)
    assert scores["de_precision_100"] == pytest.approx(np.mean(top100 < 150))
    assert scores["de_precision_100"] < 1.0


def test_perturbation_lenses_known_values_and_a_wrong_sign():
    genes = ["A", "b", "c", "d"]
    control = np.array([1.0, 1.0, 1.0, 1.0])
    true = np.array([[5.0, 2.0, 0.0, 1.0], [1.0, 1.0, 1.0, 3.0]])
    truth = make_truth(true, ["A+ctrl", "d+ctrl"], genes, control, centroid=[3.0, 1.5, 0.5, 2.0],
                       de=[[1, 2, 3], [0, 1, 2]])
    pred = np.array([5.0, 0.0, 2.0, 1.0])  # the changes in b and c have the wrong sign
    scores = lenses.perturbation_lenses(pred, truth, 0)
    assert scores["mae"] == pytest.approx((0 + 2 + 2 + 0) / 4)
    assert scores["l2_top1000"] == pytest.approx(np.sqrt(8))
    # Δ = (4, -1, 1, 0) vs (4, 1, -1, 0): cosine (16 - 1 - 1) / 18
    assert scores["cosine_delta"] == pytest.approx(14 / 18)
    # shift from the centroid: true (2, .5, -.5, -1), pred (2, -1.5, 1.5, -1)
    assert scores["pearson_delta_centroid"] == pytest.approx(
        np.corrcoef([2, .5, -.5, -1], [2, -1.5, 1.5, -1])[0, 1])
    assert scores["pearson_delta_centroid_de"] == pytest.approx(
        np.corrcoef([.5, -.5, -1], [-1.5, 1.5, -1])[0, 1])


def test_the_centroid_prediction_has_no_correlation_with_the_centroid_delta():
    """Systema's point: predicting the perturbed centroid scores well against control and is
    undefined (no signal) against the centroid."""
    rng = np.random.default_rng(1)
    genes = [f"g{i}" for i in range(100)]
    shared = rng.normal(0, 1, 100)
    means = shared + rng.normal(0, 0.3, (5, 100))  # every perturbation mostly shares a shift
    truth = make_truth(means, [f"g{i}+ctrl" for i in range(5)], genes)
    scores = lenses.perturbation_lenses(truth.centroid, truth, 0)
    assert np.isnan(scores["pearson_delta_centroid"])
    assert scores["cosine_delta"] > 0.9  # yet nearly perfect against control


def test_a_no_change_prediction_has_no_de_genes():
    genes = ["a", "b", "c"]
    truth = make_truth([[2.0, 1.0, 0.0]], ["a+ctrl"], genes, [1.0, 1.0, 1.0])
    scores = lenses.perturbation_lenses(np.array([1.0, 1.0, 1.0]), truth, 0)
    assert np.isnan(scores["de_overlap_20"]) and np.isnan(scores["cosine_delta"])


def test_significant_genes_finds_a_shift_and_not_noise():
    rng = np.random.default_rng(2)
    control = rng.normal(1.0, 0.2, (300, 50))
    cells = rng.normal(1.0, 0.2, (100, 50))
    cells[:, :5] += 1.0
    cells[:, 49] = control[:, 49] = 0.0  # constant in both: never significant
    found = lenses.significant_genes(cells, control)
    assert found[:5].all()
    assert found[5:].sum() <= 2  # BH at 5%: few, if any, false calls


def test_benjamini_hochberg_matches_the_definition():
    p = np.array([0.01, 0.04, 0.03, 0.5])
    # sorted .01 .03 .04 .5 → ×4/rank: .04 .06 .0533 .5 → running min from the top: .04 .0533 .0533 .5
    np.testing.assert_allclose(lenses.benjamini_hochberg(p), [0.04, 0.05333333, 0.05333333, 0.5])


def test_score_lenses_gives_every_lens_for_every_perturbation():
    rng = np.random.default_rng(3)
    genes = [f"g{i}" for i in range(60)]
    conditions = [f"g{i}+ctrl" for i in range(6)]
    means = rng.normal(0, 1, (6, 60))
    truth = make_truth(means, conditions, genes, significant=np.ones((6, 60), bool))
    table = lenses.score_lenses(means, truth)
    assert len(table) == 6 * len(lenses.LENSES)
    wide = table.pivot(index="perturbation", columns="metric", values="value")
    assert (wide.rank_all == 0).all() and (wide.pds_de == 1).all()
    with pytest.raises(ValueError, match="do not match"):
        lenses.score_lenses(means[:, :10], truth)


# --- calibrated scores ------------------------------------------------------------------------

def per_perturbation(values):
    rows = [(model, 0, p, "combo_seen2", "mse_de", v)
            for model, by_pert in values.items() for p, v in by_pert.items()]
    return pd.DataFrame(rows, columns=["model", "seed", "perturbation", "subgroup", "metric", "value"])


def test_calibrated_score_is_one_at_the_replicate_zero_at_the_baseline_and_not_clipped():
    table = per_perturbation({
        "noise_ceiling": {"p1": 0.1, "p2": 0.3},
        "non_control_mean": {"p1": 1.0, "p2": 1.4},
        "perfect": {"p1": 0.1, "p2": 0.3},
        "worse": {"p1": 2.0, "p2": 2.4},
        "halfway": {"p1": 0.55, "p2": 0.85},
    })
    scores = lenses.calibrate(table, "non_control_mean").set_index(["model", "subgroup"]).value
    assert scores[("perfect", "combo_seen2")] == pytest.approx(1.0)
    assert scores[("non_control_mean", "combo_seen2")] == pytest.approx(0.0)
    assert scores[("halfway", "combo_seen2")] == pytest.approx(0.5)
    assert scores[("worse", "combo_seen2")] == pytest.approx(-1.0)  # (2.2 − 1.2)/(0.2 − 1.2)
    assert scores[("perfect", "all")] == pytest.approx(1.0)


def test_calibration_uses_only_perturbations_every_side_scores():
    table = per_perturbation({"noise_ceiling": {"p1": 0.0, "p2": 0.0}, "base": {"p1": 1.0, "p2": 1.0},
                              "model": {"p1": 0.5, "p2": np.nan}})
    row = lenses.calibrate(table, "base").query("model == 'model' and subgroup == 'all'").iloc[0]
    assert row.value == pytest.approx(0.5) and row.n == 1
    # a replicate no better than the baseline gives no scale to read a score on
    worse_replicate = per_perturbation({"noise_ceiling": {"p1": 2.0}, "base": {"p1": 1.0}, "model": {"p1": 0.5}})
    assert lenses.calibrate(worse_replicate, "base").value.isna().all()  # mse_de: lower is better
    with pytest.raises(ValueError, match="calibration needs 'missing'"):
        lenses.calibrate(table, "missing")


# --- systematic variation ---------------------------------------------------------------------

def test_systematic_variation_of_shared_and_of_private_shifts():
    genes = ["a", "b", "c"]
    shared = pd.DataFrame([[0, 0, 0], [1, 1, 0], [2, 2, 0]], index=["ctrl", "p1", "p2"], columns=genes, dtype=float)
    table = lenses.systematic_variation(shared, ["p1", "p2"], "ctrl")
    np.testing.assert_allclose(table.cosine_to_average_shift, 1.0)
    private = pd.DataFrame([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], index=["ctrl", "p1", "p2", "p3"],
                           columns=genes, dtype=float)
    table = lenses.systematic_variation(private, ["p1", "p2", "p3"], "ctrl")
    np.testing.assert_allclose(table.cosine_to_average_shift, 1 / np.sqrt(3))


# --- GI detection -----------------------------------------------------------------------------

def test_detection_curve_known_case():
    score = pd.Series({"p1": 0.9, "p2": 0.8, "p3": 0.7, "p4": 0.1})
    positive = pd.Series({"p1": True, "p2": False, "p3": True, "p4": False})
    curve = gi.detection_curve(score, positive)
    assert curve.called.tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(curve.tpr, [0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(curve.fdp, [0.0, 0.5, 1 / 3, 0.5])
    assert gi.average_precision(curve) == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)
    reversed_curve = gi.detection_curve(-score, positive)
    assert gi.average_precision(reversed_curve) < gi.average_precision(curve)


def test_a_constant_score_detects_at_the_base_rate():
    score = pd.Series(1.0, index=["p1", "p2", "p3", "p4"])
    positive = pd.Series([True, False, False, False], index=score.index)
    curve = gi.detection_curve(score, positive)
    assert len(curve) == 1 and gi.average_precision(curve) == pytest.approx(0.25)


def test_gi_detection_ranks_synergy_high_and_suppression_low():
    truth = pd.DataFrame({"perturbation": ["a", "b", "c", "d"], "magnitude": [1.5, 1.1, 0.9, 0.5]})
    _, summary = gi.gi_detection(truth, truth)  # the truth's own magnitudes: a perfect ranking
    summary = summary.set_index("kind")
    assert summary.loc["synergy", "average_precision"] == 1.0  # only a > 1.15
    assert summary.loc["suppressor", "average_precision"] == 1.0  # c and d < 1.0
    assert summary.loc["suppressor", "base_rate"] == 0.5
    flipped = truth.assign(magnitude=-truth.magnitude)
    _, worst = gi.gi_detection(truth, flipped)
    assert worst.set_index("kind").loc["synergy", "average_precision"] == 0.25


# --- the evaluation step ----------------------------------------------------------------------

def test_evaluation_scores_every_metric_and_keeps_the_ceiling_it_always_had():
    from helpers import metrics
    from helpers.evaluation import Evaluation

    rng = np.random.default_rng(5)
    genes = pd.Index([f"G{i}" for i in range(40)])
    test = ["G1+ctrl", "G2+G3", "G4+G5", "G6+ctrl"]
    train = ["ctrl", "G7+ctrl", "G8+ctrl"]
    cells = {"ctrl": rng.normal(1, 0.3, (80, 40))}
    for i, c in enumerate(test + train[1:]):
        shift = np.zeros(40)
        shift[3 * i: 3 * i + 6] = 1.5
        cells[c] = rng.normal(1, 0.3, (30, 40)) + shift
    de = {c: np.argsort(-np.abs(cells[c].mean(0) - cells["ctrl"].mean(0)))[:20] for c in cells}
    subgroup = dict(zip(test, ["unseen_single", "combo_seen0", "combo_seen0", "unseen_single"]))
    evaluation = Evaluation.build(cells, genes, test, train, subgroup, de, de, ceiling_seed=0)
    # the ceiling's GEARS metrics are those the chapter always drew: halves in test order
    draw = np.random.default_rng(0)
    expected = metrics.split_half_metrics(cells[test[0]], metrics.mean_expression(cells["ctrl"]),
                                          de[test[0]], de[test[0]], draw)
    ceiling = evaluation.score_replicate()
    first = ceiling[ceiling.perturbation == test[0]].set_index("metric").value
    assert first["mse_de"] == pytest.approx(expected["mse_de"])
    assert set(ceiling.metric) == set(metrics.METRICS) | set(lenses.LENSES)
    # a perfect prediction: zero error, its own profile first
    truth = pd.DataFrame(np.vstack([metrics.mean_expression(cells[c]) for c in test]), index=test, columns=genes)
    table = evaluation.score("oracle", 0, truth).set_index(["perturbation", "metric"]).value
    assert all(table[(c, "mse")] == pytest.approx(0, abs=1e-12) for c in test)
    assert all(table[(c, "rank_all")] == 0 and table[(c, "pds_de")] == 1 for c in test)
    with pytest.raises(ValueError, match="no prediction for 1 test"):
        evaluation.score("partial", 0, truth.drop(index="G6+ctrl"))


def test_a_prediction_that_moves_the_wrong_genes_fails_the_de_lenses():
    genes = [f"g{i}" for i in range(200)]
    control = np.ones(200)
    true = control.copy()
    true[:40] += np.linspace(2, 1, 40)  # genes 0-39 respond, 0 the most
    significant = np.zeros((1, 200), bool)
    significant[0, :40] = True
    truth = make_truth(true[None], ["g199+ctrl"], genes, control, significant=significant)
    wrong = control.copy()
    wrong[100:140] += np.linspace(2, 1, 40)  # the right sizes on the wrong genes
    scores = lenses.perturbation_lenses(wrong, truth, 0)
    assert scores["de_overlap_20"] == 0.0 and scores["de_precision_20"] == 0.0
    assert scores["cosine_delta"] == pytest.approx(0.0)
    assert scores["spearman_delta"] < 0  # the true responders sit below the others in its ranking
    assert scores["l2_top1000"] == pytest.approx(np.linalg.norm(true - wrong))
