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


def test_fast_engine_equals_scikit_learn_when_all_gene_pairs_fit():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 300), rng.normal(0, 1, 300)  # 44,850 gene pairs < 10⁵: all enumerated
    pair = 1.3 * a + 0.4 * b + rng.standard_t(2, 300) * 0.3
    fast, reference = (gi.gi_scores(a, b, pair, engine=e) for e in ("fast", "sklearn"))
    assert fast == pytest.approx(reference, rel=1e-9, abs=1e-12)


def test_fast_engine_tracks_scikit_learn_when_subsampling():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, 1500), rng.normal(0, 1, 1500)
    pair = 0.8 * a + 1.6 * b + rng.normal(0, 0.5, 1500)
    fast = gi.gi_scores(a, b, pair, max_subpopulation=20_000)
    reference = gi.gi_scores(a, b, pair, max_subpopulation=20_000, engine="sklearn")
    assert fast["c1"] == pytest.approx(reference["c1"], abs=0.01)
    assert fast["c2"] == pytest.approx(reference["c2"], abs=0.01)


def test_a_single_with_no_change_gets_coefficient_zero_in_both_engines():
    """A model that predicts no change for an unseen single: the system is singular and both
    engines return the minimum-norm solution."""
    rng = np.random.default_rng(5)
    a = rng.normal(0, 1, 200)
    for engine in gi.GI_ENGINES:
        scores = gi.gi_scores(a, np.zeros(200), 2.0 * a, engine=engine)
        assert scores["c1"] == pytest.approx(2.0) and scores["c2"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="engine must be one of"):
        gi.gi_scores(a, a, a, engine="R")
