"""Evaluation metrics: exact values on cases worked out by hand."""

import numpy as np
import pandas as pd
import pytest

from helpers import metrics


def test_mse_of_identical_profiles_is_zero_and_known_case():
    x = np.array([0.5, 1.0, 2.0])
    assert metrics.mse(x, x) == 0.0
    assert metrics.mse([1.0, 2.0], [0.0, 0.0]) == pytest.approx(2.5)


def test_pearson_handles_known_and_constant_cases():
    assert metrics.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert metrics.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(metrics.pearson([1, 1, 1], [1, 2, 3]))


def test_direction_accuracy():
    assert metrics.direction_accuracy(np.array([1.0, -2.0, 0.5, -0.1]), np.array([2.0, -1.0, -0.5, 0.3])) == 0.5


def test_quantile_share_on_a_constructed_distribution():
    true_cells = np.tile(np.arange(101.0)[:, None], (1, 3))  # 0..100 in every gene
    true_cells[:, 2] = 0.0  # an all-zero gene is left out
    pred = np.array([50.0, 70.0, 0.0])  # gene 0 inside [45, 55]; gene 1 outside
    assert metrics.fraction_in_quantile_range(pred, true_cells, 0.45, 0.55) == 0.5
    assert metrics.fraction_in_quantile_range(pred, true_cells, 0.25, 0.75) == 1.0
    assert np.isnan(metrics.fraction_in_quantile_range(pred, np.zeros((5, 3)), 0.45, 0.55))


def test_perturbation_metrics_on_a_perfect_and_a_no_change_prediction():
    rng = np.random.default_rng(0)
    control = rng.uniform(1, 2, 50)
    effect = np.zeros(50)
    effect[:20] = rng.choice([-1.0, 1.0], 20)
    cells = control + effect + rng.normal(0, 0.05, (200, 50))
    de, non_dropout = np.arange(20), np.arange(10, 30)  # ten of the DE genes are drop-outs
    perfect = metrics.perturbation_metrics(cells.mean(axis=0), cells, control, de, non_dropout)
    assert perfect["mse"] == 0.0 and perfect["mse_de"] == 0.0 and perfect["mse_top20_de_non_dropout"] == 0.0
    assert perfect["pearson_delta_de"] == pytest.approx(1.0) and perfect["pearson_de"] == pytest.approx(1.0)
    assert perfect["frac_correct_direction_top20_non_dropout"] == 1.0
    assert perfect["frac_in_range_45_55_non_dropout"] == 1.0
    unchanged = metrics.perturbation_metrics(control, cells, control, de, non_dropout)
    assert unchanged["mse_de"] == pytest.approx(1.0, abs=0.02)  # every DE gene off by ±1
    # half of the non-drop-out top 20 changed: the two definitions differ, each by its genes
    assert unchanged["mse_top20_de_non_dropout"] == pytest.approx(0.5, abs=0.02)
    assert np.isnan(unchanged["pearson_delta"]) and np.isnan(unchanged["pearson_delta_de"])  # constant: undefined
    # the same prediction after a float32 round trip (as stored) differs from control by rounding only
    stored = metrics.perturbation_metrics(control.astype(np.float32).astype(float), cells, control, de, non_dropout)
    assert np.isnan(stored["pearson_delta"]) and stored["mse_de"] == pytest.approx(unchanged["mse_de"])
    assert unchanged["pearson_de"] > 0.3  # mean expression still tracks the control profile
    assert unchanged["frac_in_range_45_55_non_dropout"] <= 0.5  # the ten changed genes fall outside
    assert set(unchanged) == set(metrics.METRICS) and metrics.HEADLINE in metrics.METRICS


def test_no_change_has_no_correlation_to_score_at_screen_scale():
    """At Norman's scale (7,353 control cells, log-expression up to ~8) the stored "no change"
    prediction (the control mean in float32) against the control mean of the evaluation
    (``mean_expression``: float64) differs by float32 rounding only, so its Pearson r is
    undefined, whatever the memory layout of the cells."""
    rng = np.random.default_rng(1)
    control_cells = rng.gamma(2.0, 1.5, (7353, 60)).astype(np.float32)
    stored = metrics.mean_expression(control_cells).astype(np.float32)  # as written to disk
    cells = (control_cells[:300] + rng.normal(0, 0.5, (300, 60))).astype(np.float32)
    de, kept = np.arange(20), np.arange(20)
    for layout in (control_cells, np.asfortranarray(control_cells)):  # a float32 mean: r -0.17, nan
        control_mean = metrics.mean_expression(layout)
        scored = metrics.perturbation_metrics(stored.astype(float), cells, control_mean, de, kept)
        assert np.isnan(scored["pearson_delta_de"]) and np.isnan(scored["pearson_delta"])
        # no predicted change has no direction: no gene's sign is right (rounding signs: ~50%)
        assert scored["frac_correct_direction_top20_non_dropout"] == 0.0


def test_split_half_ceiling_is_near_perfect_for_many_clean_cells():
    rng = np.random.default_rng(1)
    control = np.ones(30)
    cells = control + np.r_[np.ones(20), np.zeros(10)] + rng.normal(0, 0.01, (400, 30))
    ceiling = metrics.split_half_metrics(cells, control, np.arange(20), np.arange(20), rng)
    assert ceiling["mse_de"] < 1e-5 and ceiling["frac_correct_direction_top20_non_dropout"] == 1.0


def test_summary_averages_seeds_then_bootstraps_over_perturbations():
    per_pert = pd.DataFrame({
        "model": "m", "metric": "mse", "subgroup": ["a", "a", "a", "a", "b", "b"],
        "perturbation": ["p1", "p1", "p2", "p2", "p3", "p3"], "seed": [1, 2, 1, 2, 1, 2],
        "value": [1.0, 3.0, 4.0, 4.0, 10.0, 10.0]})
    summary = metrics.summarise(per_pert, n_boot=200).set_index("subgroup")
    assert summary.loc["a", "mean"] == pytest.approx(3.0) and summary.loc["a", "n"] == 2
    assert summary.loc["all", "mean"] == pytest.approx((2 + 4 + 10) / 3) and summary.loc["all", "n"] == 3
    # resampling the two perturbations (2 and 4) gives means 2, 3 or 4 with chances ¼, ½, ¼: the
    # 95% interval is exactly [2, 4] (resampling the four seed values would give [1.5, 3.75]-ish)
    assert summary.loc["a", "ci_low"] == 2.0 and summary.loc["a", "ci_high"] == 4.0
    spread = metrics.seed_spread(per_pert).set_index("subgroup")
    assert spread.loc["a", "seed_mean"] == pytest.approx(3.0)
    assert spread.loc["a", "seed_sd"] == pytest.approx(np.std([2.5, 3.5], ddof=1))


def test_perturbation_metrics_exact_values_on_a_hand_worked_case():
    """Every metric's value on four genes worked out by hand: a sign flip in a Pearson delta, a
    swapped quantile band or a metric read off the wrong genes changes one of them."""
    control = np.array([1.0, 1.0, 1.0, 1.0])
    # true cells: genes 0-2 change (+1, -1, +2), gene 3 does not; each gene spreads 0..4 around it
    spread = np.linspace(-2, 2, 101)[:, None]
    true_mean = np.array([2.0, 0.0, 3.0, 1.0])
    cells = true_mean + spread * np.array([[0.5, 0.5, 0.5, 0.5]])
    pred = np.array([2.5, 0.5, 2.0, 1.0])  # Δ = (1.5, -0.5, 1.0, 0.0)
    de, kept = np.array([0, 1, 2]), np.array([1, 2, 3])
    scores = metrics.perturbation_metrics(pred, cells, control, de, kept)
    assert scores["mse_de"] == pytest.approx((0.25 + 0.25 + 1.0) / 3)
    assert scores["mse"] == pytest.approx((0.25 + 0.25 + 1.0 + 0.0) / 4)
    assert scores["mse_top20_de_non_dropout"] == pytest.approx((0.25 + 1.0 + 0.0) / 3)
    true_delta, pred_delta = true_mean - control, pred - control
    assert scores["pearson_delta"] == pytest.approx(np.corrcoef(pred_delta, true_delta)[0, 1])
    assert scores["pearson_delta_de"] == pytest.approx(np.corrcoef(pred_delta[de], true_delta[de])[0, 1])
    assert scores["pearson_delta_top20_de_non_dropout"] == pytest.approx(
        np.corrcoef(pred_delta[kept], true_delta[kept])[0, 1])
    assert scores["pearson_delta"] == pytest.approx(0.8485281)  # 0.6 / sqrt(0.5): a flipped sign reads -0.85
    # directions on genes 1-3: (-, -), (+, +), (0, 0): all right
    assert scores["frac_correct_direction_top20_non_dropout"] == 1.0
    # genes 1-3 spread uniformly ±1 around their true mean: gene 1's prediction is 0.5 above it
    # (the 75th percentile), gene 2's 1.0 below (the minimum), gene 3's on it (the median)
    assert scores["frac_in_range_45_55_non_dropout"] == pytest.approx(1 / 3)
    assert scores["frac_in_range_40_60_non_dropout"] == pytest.approx(1 / 3)
    assert scores["frac_in_range_25_75_non_dropout"] == pytest.approx(2 / 3)


def test_bootstrap_interval_covers_the_mean_and_narrows_with_more_perturbations():
    rng = np.random.default_rng(3)
    few = rng.normal(1.0, 1.0, 10)
    many = rng.normal(1.0, 1.0, 1000)
    mean, low, high = metrics.bootstrap_mean_ci(few, n_boot=2000)
    assert mean == pytest.approx(few.mean()) and low < mean < high
    _, low_many, high_many = metrics.bootstrap_mean_ci(many, n_boot=2000)
    # a 95% interval of a mean spans about 2 × 1.96 standard errors
    for values, width in ((few, high - low), (many, high_many - low_many)):
        assert width == pytest.approx(3.92 * values.std() / np.sqrt(len(values)), rel=0.25)
    assert 0.9 < low_many < high_many < 1.2  # and it sits around the true mean
    assert np.isnan(metrics.bootstrap_mean_ci(np.array([np.nan]))[0])
