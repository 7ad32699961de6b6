"""GI scores on constructed pairs with known coefficients."""

import numpy as np
import pytest

from helpers import gi


@pytest.fixture
def singles():
    rng = np.random.default_rng(0)
    return rng.normal(0, 1, 500), rng.normal(0, 1, 500), rng


def test_known_coefficients_are_recovered(singles):
    a, b, rng = singles
    scores = gi.gi_scores(a, b, 1.5 * a + 0.5 * b + rng.normal(0, 0.05, 500), max_subpopulation=2000)
    assert scores["c1"] == pytest.approx(1.5, abs=0.02) and scores["c2"] == pytest.approx(0.5, abs=0.02)
    assert scores["magnitude"] == pytest.approx(np.hypot(1.5, 0.5), abs=0.02)
    assert scores["corr_fit"] > 0.99
    assert scores["dominance"] == pytest.approx(np.log10(3), abs=0.03)
    assert scores["dcor_a"] > scores["dcor_b"] and scores["equality_of_contribution"] < 0.6


def test_theil_sen_ignores_a_few_wild_genes(singles):
    a, b, _ = singles
    pair = a + b
    pair[:20] += 50.0  # a handful of genes respond only to the pair
    scores = gi.gi_scores(a, b, pair, max_subpopulation=2000)
    assert scores["c1"] == pytest.approx(1.0, abs=0.05) and scores["c2"] == pytest.approx(1.0, abs=0.05)
    assert scores["corr_fit"] < 0.5  # the fit explains little of the pair: neomorphic-looking


def test_unrelated_pair_has_low_fit_and_dcor(singles):
    a, b, rng = singles
    scores = gi.gi_scores(a, b, rng.normal(0, 1, 500), max_subpopulation=2000)
    assert scores["corr_fit"] < 0.2 and scores["dcor"] < 0.2


def test_precision_at_k():
    assert gi.precision_at_k(["x", "y", "z", "w"], {"x", "z"}, 2) == 0.5
    assert gi.precision_at_k(["x"], {"x"}, 20) == 1.0
    with pytest.raises(ValueError):
        gi.precision_at_k(["x"], {"x"}, 0)
    with pytest.raises(ValueError, match="same genes"):
        gi.gi_scores([1, 2], [1, 2], [1, 2, 3])
