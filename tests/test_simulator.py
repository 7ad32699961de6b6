"""The Norman-scaffold simulator: format, determinism, and that it carries what it was given."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from helpers import conditions, data, reference, simulator
from helpers.conditions import condition_genes, genes_of


@pytest.fixture(scope="module")
def quick_screen():
    scaffold = simulator.norman_scaffold(n_high_mean_genes=150)
    adata, truth = simulator.simulate_perturb_seq(scaffold, max_cells_per_condition=8,
                                                  max_control_cells=200, progress=False)
    return scaffold, adata, truth


def two_gene_scaffold(c_a: float, c_b: float, n_cells: int) -> simulator.Scaffold:
    norman = simulator.norman_scaffold(n_high_mean_genes=400)
    conditions = pd.DataFrame({"condition": ["ctrl", "CEBPE+ctrl", "KLF1+ctrl", "CEBPE+KLF1"],
                               "n_cells": [3 * n_cells, n_cells, n_cells, n_cells]})
    return simulator.Scaffold(conditions=conditions, genes=norman.genes,
                              combo_coefficients={"CEBPE+KLF1": (c_a, c_b)},
                              clusters=norman.clusters, gene2go=norman.gene2go)


def test_output_is_gears_format_on_the_real_scaffold(quick_screen):
    scaffold, adata, truth = quick_screen
    assert data.validate_gears_adata(adata, "simulated") == []
    real = reference.norman_conditions().set_index("condition").n_cells
    counts = adata.obs.condition.value_counts()
    assert set(counts.index) == set(real.index) and len(real) == 284
    expected = np.minimum(real, 8)
    expected["ctrl"] = 200
    assert (counts[real.index] == expected[real.index]).all()
    assert set(genes_of(real.index)) <= set(adata.var.gene_name)
    assert adata.n_vars == len(scaffold.genes) == len(set(scaffold.genes))
    # log1p of counts normalised to 10,000 per cell
    np.testing.assert_allclose(np.expm1(adata.X[:50].toarray()).sum(axis=1), 1e4, rtol=1e-3)
    assert truth.shape == (284, adata.n_vars)


def test_same_seed_same_data_and_new_seed_new_data():
    scaffold = simulator.norman_scaffold(n_high_mean_genes=50)
    kwargs = dict(max_cells_per_condition=3, max_control_cells=20, progress=False)
    a1, t1 = simulator.simulate_perturb_seq(scaffold, simulator.SimulatorConfig(seed=4), **kwargs)
    a2, t2 = simulator.simulate_perturb_seq(scaffold, simulator.SimulatorConfig(seed=4), **kwargs)
    a3, _ = simulator.simulate_perturb_seq(scaffold, simulator.SimulatorConfig(seed=5), **kwargs)
    assert (a1.X != a2.X).nnz == 0 and np.array_equal(t1.X, t2.X)
    assert (a1.obs.condition.astype(str) == a2.obs.condition.astype(str)).all()
    assert (a1.X != a3.X).nnz > 0


def test_truth_carries_norman_fits_and_gears_labels(quick_screen):
    _, _, truth = quick_screen
    fits = reference.gi_fits().set_index("condition")
    # Norman's direction, his magnitude spread as the default sets it (κ·M − o)
    config = simulator.SimulatorConfig()
    c_a, c_b = fits.loc["AHR+FEV", "c_a"], fits.loc["AHR+FEV", "c_b"]
    spread = config.interaction_scale * np.hypot(c_a, c_b) - config.interaction_offset
    assert truth.obs.loc["AHR+FEV", "c_a"] == pytest.approx(c_a * spread / np.hypot(c_a, c_b))
    assert truth.obs.loc["AHR+FEV", "c_b"] == pytest.approx(c_b * spread / np.hypot(c_a, c_b))
    no_fit = "BAK1+KLF1" if "BAK1+KLF1" in truth.obs.index else "KLF1+BAK1"
    assert (truth.obs.loc[no_fit, "c_a"], truth.obs.loc[no_fit, "c_b"]) == (1.0, 1.0)
    assert truth.obs.neomorphic.sum() == 13  # GEARS labels 13 pairs neomorphic
    assert truth.obs.loc["CEBPE+KLF1", "neomorphic"]


def test_crispra_raises_its_target(quick_screen):
    """In expectation every target rises well above the typical downstream change of its
    perturbation, and nearly all rise by more than 0.5 on the log1p scale (a regulator drawn far
    below the typical baseline rises less: 55-fold of almost nothing is still little). Its 8
    cells see it noisily, but they see it rise."""
    _, adata, truth = quick_screen
    expected, means = truth.to_df(), conditions.condition_means(adata)
    singles = {genes_of([c])[0]: c for c in expected.index if len(condition_genes(c)) == 1}
    assert len(singles) == 105
    rise = pd.Series({g: expected.at[c, g] - expected.at["ctrl", g] for g, c in singles.items()})
    typical = pd.Series({g: (expected.loc[c] - expected.loc["ctrl"]).drop(g).abs().median()
                         for g, c in singles.items()})
    seen = pd.Series({g: means.at[c, g] > means.at["ctrl", g] for g, c in singles.items()})
    assert (rise > 2 * typical).all(), (rise / typical).nsmallest(3)
    assert (rise > 0.5).mean() > 0.9 and rise.median() > 1.0, rise.describe()
    assert seen.mean() > 0.95, seen[~seen]


def test_known_coefficients_are_recovered_from_cells():
    """A pair is set on the scored scale: a fit of its cells' change on its singles' finds the
    coefficients it was given, not a log1p-shrunk version of them. The pair is given no
    departure from additivity (corr_fit 1): a departure is orthogonal to the fitted sum, not to
    each single, so with singles as alike as Norman's it moves the fit's coefficients."""
    c_a, c_b = 1.6, 0.5
    scaffold = dataclasses.replace(two_gene_scaffold(c_a, c_b, n_cells=1500),
                                   combo_corr_fit={"CEBPE+KLF1": 1.0})
    config = simulator.SimulatorConfig(seed=2, effect_strength_log_sd=0.0,
                                       effect_strength_log_mean=float(np.log(2.0)))
    adata, truth = simulator.simulate_perturb_seq(scaffold, config, progress=False)
    given = truth.obs.loc["CEBPE+KLF1", ["c_a", "c_b"]].to_numpy(float)  # (1.94, 0.61): spread
    assert given == pytest.approx(simulator.true_coefficients(scaffold, config, "CEBPE+KLF1"))
    means = conditions.condition_means(adata)
    delta = means - means.loc["ctrl"]
    X = np.c_[delta.loc["CEBPE+ctrl"], delta.loc["KLF1+ctrl"]]
    fitted, *_ = np.linalg.lstsq(X, delta.loc["CEBPE+KLF1"].to_numpy(), rcond=None)
    assert fitted == pytest.approx(given, abs=0.1)


def test_cells_average_to_the_noise_free_truth():
    """The saved expectation is what the cells' means converge to: with many cells, the
    difference is within sampling error for nearly every gene of every condition."""
    scaffold = two_gene_scaffold(1.2, 0.7, n_cells=1000)
    adata, truth = simulator.simulate_perturb_seq(scaffold, simulator.SimulatorConfig(seed=5), progress=False)
    conditions = adata.obs.condition.astype(str).to_numpy()
    for condition in truth.obs_names:
        cells = adata.X[conditions == condition].toarray()
        error = cells.mean(axis=0) - truth[condition].X.ravel()
        standard_error = cells.std(axis=0) / np.sqrt(len(cells)) + 1e-3
        z = np.abs(error) / standard_error
        assert np.mean(z < 4) > 0.98, (condition, np.sort(z)[-5:])
        assert np.abs(error).max() < 0.15, condition


def test_depth_follows_norman():
    """Control cells carry Norman's median depth (UMIs per cell), not a made-up one."""
    scaffold = simulator.norman_scaffold()
    config = simulator.SimulatorConfig(seed=1)
    adata, _ = simulator.simulate_perturb_seq(dataclasses.replace(
        scaffold, conditions=scaffold.conditions[scaffold.conditions.condition == "ctrl"]), config,
        max_control_cells=1000, progress=False)
    median = float(np.median(adata.obs.total_counts))
    assert median == pytest.approx(config.depth_umis, rel=0.1)
    counts_detected = adata.obs.n_genes_by_counts / adata.n_vars
    assert 0.1 < counts_detected.median() < 0.4  # Norman: 8% of 5,045 genes, most of the rest low-mean


def test_single_perturbations_keep_the_screens_depth():
    """A perturbation moves mRNA between genes, not its amount: every single's mean UMIs per
    cell stays near control's (Norman's conditions: 0.5–1.6× of the median), strong effects
    included; without the offset that holds libraries, strong singles reached 4.8× at the
    default strength. (A pair's library follows from its target on the scored scale.)"""
    scaffold = simulator.norman_scaffold(n_high_mean_genes=600)
    adata, _ = simulator.simulate_perturb_seq(scaffold, simulator.SimulatorConfig(seed=4),
                                              max_cells_per_condition=60, max_control_cells=1000,
                                              progress=False)
    per_condition = adata.obs.groupby("condition", observed=True).total_counts.mean()
    singles = [c for c in per_condition.index if "ctrl" in c and c != "ctrl"]
    ratio = per_condition[singles] / per_condition["ctrl"]
    assert ratio.between(0.8, 1.25).all(), ratio.sort_values().iloc[[0, 1, -2, -1]]
    assert ratio.median() == pytest.approx(1.0, abs=0.05)
    # and no gene takes over a cell's library
    assert adata.obs.total_counts.max() < 20 * np.median(adata.obs.total_counts)


def test_noise_free_pairs_carry_norman_fits(quick_screen):
    """GI scores of the noise-free truth: the coefficients it was given and Norman's fit quality,
    pair by pair."""
    from helpers import gi

    _, _, truth = quick_screen
    fits = reference.gi_fits()
    pairs = [c for c in fits.condition if c in truth.obs_names]
    scores = gi.interaction_scores(truth.to_df(), pairs, list(truth.var_names)).set_index("perturbation")
    norman = fits.set_index("condition").loc[scores.index]
    # the truth's coefficients are Norman's with their magnitude spread out (his are pulled
    # together by his noise), their direction kept
    given = truth.obs.loc[scores.index]
    config = simulator.SimulatorConfig()
    norman_magnitude = np.hypot(norman.c_a, norman.c_b)
    spread = np.maximum(config.interaction_scale * norman_magnitude - config.interaction_offset, 0)
    assert np.allclose(np.hypot(given.c_a, given.c_b), spread, atol=1e-6)
    assert np.allclose(given.c_a * norman.c_b, given.c_b * norman.c_a, atol=1e-6)
    magnitude_error = np.abs(scores.magnitude - np.hypot(given.c_a, given.c_b))
    assert len(scores) > 100 and np.mean(magnitude_error < 0.05) > 0.9, magnitude_error.describe()
    # fit quality pair by pair (a truth without departures from additivity, corr_fit ≈ 1, is off
    # by a median 0.14); on this 255-gene panel strong effects floor some genes at zero, the
    # default panel tracks Norman's corr_fit with r 0.83 (tests/test_gi.py)
    assert np.median(np.abs(scores.corr_fit - norman.corr_fit)) < 0.05


def test_similar_genes_have_similar_true_effects(quick_screen):
    scaffold, _, truth = quick_screen
    singles = {c.split("+")[0]: c for c in truth.obs_names if c.endswith("+ctrl")}
    lfc = truth.to_df("log_rate_shift")
    clusters = {g: c for g, c in scaffold.clusters.items() if c >= 0 and g in singles}
    within, between = [], []
    genes = sorted(clusters)
    for i, a in enumerate(genes):
        for b in genes[i + 1:]:
            r = np.corrcoef(lfc.loc[singles[a]].drop([a, b]), lfc.loc[singles[b]].drop([a, b]))[0, 1]
            (within if clusters[a] == clusters[b] else between).append(r)
    assert np.mean(within) > np.mean(between) + 0.2


@pytest.mark.slow
def test_singles_resemble_each_other_as_normans_do():
    """The default data's singles, measured from their cells over Norman's 125 fitted pairs, are
    as alike as his (issue 23's windows), and the same pairs are alike. Measured here: median
    0.382, GO Spearman 0.329, label medians 0.450 and 0.281, pair-by-pair r 0.51, KS 0.080.
    Without the shared axes (shared_axis_share 0): 0.053, 0.284, 0.072, 0.027, r 0.27, KS 0.54,
    failing all but the GO Spearman (GO smoothing alone orders pairs, it does not make them
    alike). With the map's places dealt out at random (shuffle_manifold): 0.208, 0.121, 0.213,
    0.191, r −0.05, KS 0.28, failing all but the cross-label median."""
    from scipy.stats import ks_2samp

    from helpers import gi
    from helpers.conditions import condition_genes

    scaffold = simulator.norman_scaffold()
    singles_only = scaffold.conditions.condition.map(lambda c: len(condition_genes(c)) <= 1)
    scaffold = dataclasses.replace(scaffold, conditions=scaffold.conditions[singles_only.to_numpy()])
    adata, _ = simulator.simulate_perturb_seq(scaffold, simulator.SimulatorConfig(seed=0), progress=False)
    fits = reference.gi_fits()
    genes = [g for g in reference.high_mean_genes() if g in adata.var_names]
    corr = gi.singles_correlations(conditions.condition_means(adata), fits.condition.tolist(), genes)
    clusters = dict(zip(*reference.single_clusters()[["gene", "cluster"]].values.T))
    stats = gi.similarity_statistics(gi.singles_similarity(corr, reference.gene2go(), clusters))
    assert stats["n_pairs"] == 125
    assert stats["median_corr_singles"] == pytest.approx(0.404, abs=0.05), stats
    assert stats["spearman_go_jaccard"] == pytest.approx(0.325, abs=0.1), stats
    assert stats["median_same_label"] == pytest.approx(0.517, abs=0.1), stats
    assert stats["median_different_label"] == pytest.approx(0.220, abs=0.1), stats
    # the same pairs are alike: pair by pair, as Norman's (his GI map sets the shared directions)
    norman = fits.set_index("condition").corr_singles.loc[corr.index]
    assert corr.corr(norman) > 0.35, corr.corr(norman)
    assert ks_2samp(corr, norman).statistic < 0.15
