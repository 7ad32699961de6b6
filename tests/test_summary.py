"""Results at a glance: seed spread and plain-words verdicts."""

import numpy as np
import pandas as pd
import pytest

from helpers import simulator, summary


def _per_perturbation():
    rows = []
    # gears: three seeds, MSE 1.0 ± 0.01; model "worse": 1.5 on three seeds; "close": 1.005
    for model, base in (("gears", 1.0), ("worse", 1.5), ("close", 1.005)):
        for seed, jitter in zip((1, 2, 3), (-0.01, 0.0, 0.01)):
            for p, subgroup in (("A+B", "combo_seen2"), ("C+D", "combo_seen0")):
                rows.append((model, seed, p, subgroup, "mse_de", base + jitter))
    rows.append(("additive", 0, "A+B", "combo_seen2", "mse_de", 0.5))
    rows.append(("additive", 0, "C+D", "combo_seen0", "mse_de", 0.5))
    return pd.DataFrame(rows, columns=["model", "seed", "perturbation", "subgroup", "metric", "value"])


def test_glance_values_and_verdicts():
    values = summary.seed_values(_per_perturbation(),
                                 pd.DataFrame({"model": ["gears"] * 3, "seed": [1, 2, 3], "r": [0.1, 0.2, 0.3],
                                               "p": 0.5, "n": 71}))
    table = summary.glance(values).set_index(["model", "column"])
    assert table.loc[("gears", "mse_de:combo_seen0"), "mean"] == 1.0
    assert np.isclose(table.loc[("gears", "mse_de:all"), "sd"], 0.01)
    assert np.isclose(table.loc[("gears", "magnitude_r"), "mean"], 0.2)
    assert table.loc[("additive", "mse_de:all"), "n_seeds"] == 1
    comparison = summary.compare_with(table.reset_index(), "gears").set_index(["model", "column"])
    assert comparison.loc[("worse", "mse_de:all"), "verdict"] == "worse"
    assert comparison.loc[("close", "mse_de:all"), "verdict"] == "within spread"
    # a deterministic baseline is judged against GEARS' own seed spread: lower MSE is better
    assert comparison.loc[("additive", "mse_de:combo_seen2"), "verdict"] == "better"
    words = summary.plain_words(comparison.reset_index(), "gears")
    assert any(w.startswith("worse: worse on mse_de (top-20 DE), combo_seen2 1.5 vs 1") for w in words)
    assert any(w.startswith("close: within 2 seed SDs of gears on") for w in words)


def test_data_caveats_are_built_from_the_settings_and_the_fidelity():

    config = {"go_weight": 1.0, "go_neighbours": 10, "cluster_weight": 1.0, "private_weight": 0.7,
              "shared_axis_share": 0.7, "manifold_weight": 1.0, "shuffle_manifold": True,
              "coexpression_strength": 0.6}
    fidelity = pd.DataFrame({"source": ["cells", "noise-free"], "r": [0.62, 1.0], "slope": [0.33, 1.0],
                             "n": [125, 125], "agreement": [0.68, 1.0]})
    simulated = summary.data_caveats(config, fidelity, simulator.PRIOR_SIGNAL_KNOBS)
    assert "go_weight = 1.0" in simulated[0] and "against 0.7" in simulated[0]
    assert "shared_axis_share = 0.7" in simulated[0] and "shuffle_manifold = True" in simulated[0]
    assert "r = 0.62" in simulated[1] and "125 pairs" in simulated[1] and "r = 1.00" in simulated[2]
    real = summary.data_caveats(None, fidelity.iloc[:1], simulator.PRIOR_SIGNAL_KNOBS)
    assert real[0].startswith("The data are a real screen") and len(real) == 2
    on_his = pd.concat([fidelity.iloc[:1], fidelity.iloc[:1].assign(source="cells, Norman's scale", r=0.92,
                                                                     slope=0.93)])
    with_his = summary.data_caveats(config, on_his, simulator.PRIOR_SIGNAL_KNOBS)
    assert len(with_his) == 3 and "r = 0.92 (slope 0.93)" in with_his[2]


def test_best_per_lens_knows_which_way_is_better():
    table = pd.DataFrame({"model": ["a", "b", "noise_ceiling"] * 2, "subgroup": "all",
                          "metric": ["mse_de"] * 3 + ["pds_all"] * 3,
                          "mean": [0.5, 0.2, 0.01, 0.6, 0.9, 0.99]})
    best = summary.best_per_lens(table, ["mse_de", "pds_all"]).set_index("metric")
    assert best.loc["mse_de", "best"] == "b" and best.loc["mse_de", "second"] == "a"  # lower is better
    assert best.loc["pds_all", "best"] == "b" and best.loc["pds_all", "ceiling_mean"] == 0.99


def test_share_ranked_first_averages_seeds():
    rows = pd.DataFrame({"model": "gears", "subgroup": "combo_seen2", "metric": "rank_all",
                         "seed": [0, 0, 1, 1], "perturbation": ["p", "q", "p", "q"],
                         "value": [0.0, 0.2, 0.0, 0.0]})
    share = summary.share_ranked_first(rows).iloc[0]
    assert share.share == pytest.approx(0.75) and share.n == 2


def _sweep_metrics():
    """Hand-made per-perturbation scores: GEARS and GEARS + GO-SVD on two seeds."""
    rows = [
        # mse_de (lower is better), unseen_single: gains (GEARS − prior) 1.0 on P1, 0.5 on P2
        ("gears", 1, "P1", "unseen_single", "mse_de", 1.0), ("gears", 2, "P1", "unseen_single", "mse_de", 2.0),
        ("gears+go_svd", 1, "P1", "unseen_single", "mse_de", 0.5),
        ("gears+go_svd", 2, "P1", "unseen_single", "mse_de", 0.5),
        ("gears", 1, "P2", "unseen_single", "mse_de", 3.0), ("gears", 2, "P2", "unseen_single", "mse_de", 3.0),
        ("gears+go_svd", 1, "P2", "unseen_single", "mse_de", 2.0),
        ("gears+go_svd", 2, "P2", "unseen_single", "mse_de", 3.0),
        # a perturbation the prior model has no score for is left out
        ("gears", 1, "P3", "unseen_single", "mse_de", 9.0),
        # pearson_delta_de (higher is better): prior 0.5 vs GEARS 0.3 on P1; P2's prior is NaN
        ("gears", 1, "P1", "unseen_single", "pearson_delta_de", 0.2),
        ("gears", 2, "P1", "unseen_single", "pearson_delta_de", 0.4),
        ("gears+go_svd", 1, "P1", "unseen_single", "pearson_delta_de", 0.5),
        ("gears+go_svd", 2, "P1", "unseen_single", "pearson_delta_de", 0.5),
        ("gears", 1, "P2", "unseen_single", "pearson_delta_de", 0.6),
        ("gears+go_svd", 1, "P2", "unseen_single", "pearson_delta_de", np.nan),
        # combo_seen0: the prior is worse by 0.25 on the one pair
        ("gears", 1, "A+B", "combo_seen0", "mse_de", 1.0), ("gears+go_svd", 1, "A+B", "combo_seen0", "mse_de", 1.25),
        # neither another model nor another metric enters
        ("additive", 0, "P1", "unseen_single", "mse_de", 0.0), ("gears", 1, "P1", "unseen_single", "mse", 5.0),
        ("gears+go_svd", 1, "P1", "unseen_single", "mse", 0.0),
    ]
    return pd.DataFrame(rows, columns=["model", "seed", "perturbation", "subgroup", "metric", "value"])


def test_prior_gains_are_seed_means_signed_so_that_positive_is_better():
    gains = summary.prior_gains(_sweep_metrics(), ["gears+go_svd", "gears+genemamba"],
                                metrics=["mse_de", "pearson_delta_de"])
    table = gains.set_index(["model", "subgroup", "metric"])
    assert sorted(table.index) == [("gears+go_svd", "combo_seen0", "mse_de"),
                                   ("gears+go_svd", "unseen_single", "mse_de"),
                                   ("gears+go_svd", "unseen_single", "pearson_delta_de")]
    mse = table.loc[("gears+go_svd", "unseen_single", "mse_de")]
    # GEARS 1.5 and 3.0, the prior 0.5 and 2.5: gains 1.0 and 0.5, mean 0.75; resampling two
    # perturbations gives 0.5, 0.75 or 1.0 (the ends each with probability 1/4)
    assert mse.gain == pytest.approx(0.75) and mse.n_perturbations == 2
    assert (mse.low, mse.high) == (pytest.approx(0.5), pytest.approx(1.0))
    # higher is better: the prior's 0.5 against GEARS' 0.3 is a gain of +0.2, P2 (NaN) dropped
    pearson = table.loc[("gears+go_svd", "unseen_single", "pearson_delta_de")]
    assert pearson.gain == pytest.approx(0.2) and pearson.n_perturbations == 1
    assert table.loc[("gears+go_svd", "combo_seen0", "mse_de"), "gain"] == pytest.approx(-0.25)
    only = summary.prior_gains(_sweep_metrics(), ["gears+go_svd"], subgroups=["combo_seen0"])
    assert list(only.subgroup) == ["combo_seen0"] and list(only.metric) == ["mse_de"]


def _sweep_table():
    rows = []
    gains = {  # (setting, model, subgroup): gain, low, high
        ("none", "gears+go_svd", "unseen_single"): (-0.01, -0.05, 0.03),
        ("default", "gears+go_svd", "unseen_single"): (0.04, 0.01, 0.07),
        ("strong", "gears+go_svd", "unseen_single"): (0.12, 0.08, 0.16),
        ("none", "gears+go_svd", "combo_seen0"): (0.05, -0.1, 0.2),
        ("default", "gears+go_svd", "combo_seen0"): (-0.02, -0.1, 0.06),
        ("strong", "gears+go_svd", "combo_seen0"): (0.3, 0.1, 0.5),
        ("none", "gears+genemamba", "unseen_single"): (0.0, -0.2, 0.2),
        ("default", "gears+genemamba", "unseen_single"): (0.1, -0.1, 0.3),
    }
    overrides = {"none": '{"go_weight": 0.0}', "default": "{}", "strong": '{"go_weight": 3.0}'}
    for (setting, model, subgroup), (gain, low, high) in gains.items():
        for metric, shift in (("mse_de", 0.0), ("pearson_delta_de", 9.0)):
            rows.append({"setting": setting, "overrides": overrides[setting], "model": model,
                         "subgroup": subgroup, "metric": metric, "gain": gain + shift,
                         "low": low + shift, "high": high + shift, "n_perturbations": 7})
    return pd.DataFrame(rows)


def test_prior_sweep_findings_reads_the_intervals_and_places_the_default():
    text = summary.prior_sweep_findings(_sweep_table())
    assert "`none` (go_weight = 0); `default` (simulator defaults); `strong` (go_weight = 3)" in text
    assert "the value of `gears` minus that of the prior model" in text and "9." not in text  # mse_de rows only
    go_single, go_combo, mamba = [line for line in text.splitlines() if line.startswith("- ")]
    assert go_single.startswith("- **gears+go_svd**, `unseen_single` (7 perturbations): `none` -0.010 "
                                "[-0.050, +0.030], `default` +0.040 [+0.010, +0.070], `strong` +0.120")
    assert "excludes zero at `default` (better), `strong` (better) only" in go_single
    assert "The default's gain (+0.040) is within the range of the other settings' (-0.010 to +0.120)" in go_single
    assert "excludes zero at `strong` (better) only" in go_combo
    assert "The default's gain (-0.020) is below every other setting's (+0.050 to +0.300)" in go_combo
    assert "Every interval includes zero" in mamba and "to +0.000" not in mamba
    assert "above every other setting's (+0.000)" in mamba  # one other setting: no range
    assert "simulated data" in text.splitlines()[-1] and "go_weight" in text.splitlines()[-1]
    # a worse prior is called worse; a sweep without the default says so
    table = _sweep_table()
    worse = table.assign(gain=-table.gain, low=-table.high, high=-table.low)
    assert "`strong` (worse)" in summary.prior_sweep_findings(worse[worse.setting != "default"])
    # each setting's measured GO signal, when the sweep recorded it, beside its settings
    signal = table.assign(spearman_go_jaccard=table.setting.map({"none": 0.02, "default": 0.31, "strong": 0.6}))
    assert ("`none` (go_weight = 0; singles' Spearman with GO Jaccard 0.02); `default` (simulator defaults; "
            "singles' Spearman with GO Jaccard 0.31)") in summary.prior_sweep_findings(signal)
    placed = summary.prior_sweep_findings(signal, norman_go_spearman=0.325).splitlines()[-1]
    assert "Spearman 0.31, Norman's with 0.33: the default is close to his screen" in placed
    far = summary.prior_sweep_findings(signal.assign(spearman_go_jaccard=0.1), norman_go_spearman=0.325)
    assert "is not close to his screen" in far and "which is not his screen's" in far
    assert "about as far as they do in his screen" in placed and "not close" not in summary.prior_sweep_findings(signal)
    assert "`default` was not run" in summary.prior_sweep_findings(worse[worse.setting != "default"])
    # small gains keep two significant digits; the run's profile is stated when recorded
    tiny = table.assign(gain=table.gain / 100, low=table.low / 100, high=table.high / 100,
                        profile="quick", seeds="1 2", prior_target="both")
    text = summary.prior_sweep_findings(tiny)
    assert "`strong` +0.0012 [+0.0008, +0.0016]" in text
    assert "Profile `quick`, seeds 1 2, every prior entering GEARS' `both` embedding." in text
    assert "Simulated on" not in text and "plateau" not in text  # neither recorded


def test_prior_sweep_findings_name_the_panel_the_runs_at_plateau_and_judge_the_builds_own_data():
    table = _sweep_table().assign(
        spearman_go_jaccard=lambda t: t.setting.map({"none": 0.0, "default": 0.19, "strong": 0.4}),
        n_high_mean_genes=1000, runs_converged=True)
    first, *_, last = summary.prior_sweep_findings(table, norman_go_spearman=0.325).split("\n\n")
    assert first.endswith("Simulated on 1,000 high-mean genes besides the perturbed ones. "
                          "Every run behind these gains reached its plateau.")
    assert "the default is not close to his screen" in last  # the sweep's own default: 0.19
    # the build's own data (the full panel) sit at Norman's: that is what the reader is told
    ours = summary.prior_sweep_findings(table, norman_go_spearman=0.325, build_go_spearman=0.33)
    assert ("This build's singles follow their genes' GO similarity with Spearman 0.33 (the sweep's "
            "`default` data: 0.19, on 1,000 high-mean genes besides the perturbed ones, where each "
            "pair's correlation is noisier), Norman's with 0.33: the default is close to his screen") in ours
    near = summary.prior_sweep_findings(table, norman_go_spearman=0.325, build_go_spearman=0.2)
    assert "Spearman 0.20, Norman's" in near and "not close" in near  # within 0.05 of the sweep's: no aside
    lagging = table.assign(runs_converged=table.model.eq("gears+genemamba") | table.setting.ne("strong"),
                           n_high_mean_genes=np.nan)
    first = summary.prior_sweep_findings(lagging).split("\n\n")[0]
    assert first.endswith("Simulated on the full gene panel. Not every run behind these gains reached "
                          "its plateau (`strong` gears+go_svd): those gains are provisional.")


def test_similarity_statistic_reads_one_source_or_none(tmp_path):
    path = tmp_path / "similarity_statistics.csv"
    assert summary.similarity_statistic(path, "spearman_go_jaccard", "Norman's screen") is None
    pd.DataFrame({"statistic": ["spearman_go_jaccard", "spearman_go_jaccard", "median_corr_singles"],
                  "source": ["simulated cells", "Norman's screen", "Norman's screen"],
                  "value": [0.33, 0.325, 0.404]}).to_csv(path, index=False)
    assert summary.similarity_statistic(path, "spearman_go_jaccard", "Norman's screen") == 0.325
    assert summary.similarity_statistic(path, "spearman_go_jaccard", "simulated cells") == 0.33
    assert summary.similarity_statistic(path, "median_same_label", "Norman's screen") is None
    path.write_text("statistic,source,value\n")  # data without Norman's pairs
    assert summary.similarity_statistic(path, "spearman_go_jaccard", "Norman's screen") is None


def test_gi_findings_say_what_is_significant_undefined_above_chance_and_detectable():
    per_seed = pd.DataFrame({"model": ["gears", "gears", "additive"], "seed": [1, 2, 0],
                             "r": [0.40, 0.30, np.nan]})
    precision = pd.DataFrame({"k": 10, "reference": "norman_verified", "kind": ["synergy", "synergy", "suppressor"],
                              "model": ["gears", "truth", "gears"], "precision": [0.5, 0.9, 0.1]})
    detection = pd.DataFrame({"truth": ["cells", "cells", "noise-free"], "kind": ["synergy", "synergy", "synergy"],
                              "model": ["gears", "additive", "gears"], "average_precision": [0.6, 0.3, np.nan],
                              "n_positive": [20, 20, 0], "n": [71, 71, 71], "base_rate": [0.28, 0.28, 0.0]})
    text = summary.gi_findings({"truth from cells": per_seed}, 71, pd.Series({"r": 0.81, "slope": 0.53}),
                               precision, {"synergy": 0.3, "suppressor": 0.2}, detection)
    lines = text.splitlines()
    assert lines[0] == "- With 71 test pairs, |r| below 0.23 is not significant at p = 0.05."
    assert lines[1] == ("- Against the truth from cells: additive r undefined (the same magnitude for every pair); "
                        "gears r = 0.35 ± 0.07 over 2 seeds. Significant on every seed: gears.")
    assert "r = 0.81 and slope 0.53" in lines[2]
    assert lines[3] == ("- Synergy precision@10 against Norman's verified pairs, where a random list scores 0.30: "
                        "gears 0.50 (above chance: gears).")
    assert lines[4].endswith("gears 0.10 (none above chance).")
    assert lines[5] == ("- Detection of synergy pairs against the cells truth (20 of 71 pairs; a random ranking "
                        "reaches AP 0.28): best gears AP 0.60; additive 0.30, gears 0.60; above the random "
                        "ranking: 2 of 2.")
    assert lines[6] == ("- Detection of synergy pairs against the noise-free truth: the truth calls none of the "
                        "71 test pairs synergy, so there is nothing to detect.")


def test_embedding_findings_one_line_per_prior_and_the_caveats():
    structure = pd.DataFrame({"prior": ["go_svd"], "pc1_expression_rho": [0.123],
                              "go_neighbours_same_process": [0.5], "go_chance": [0.1],
                              "cluster_neighbours_same": [0.25], "cluster_chance": [0.2]})
    coverage = pd.DataFrame({"prior": ["go_svd"] * 4 + ["other"], "gene": ["A", "B", "C", "D", "A"],
                             "found": [True, False, True, False, False],
                             "perturbed": [True, True, False, False, True]})
    lines = summary.embedding_findings(structure, coverage, simulated=False).splitlines()
    assert lines == [
        "- **go_svd** covers 2 of 4 genes (1 of 2 perturbed genes; missing B). Its PC1 follows mean "
        "expression with |ρ| = 0.12; a gene's nearest neighbours share its GO process 50% of the time "
        "(random: 10%), and a perturbed gene's share its Norman cluster 25% of the time (random: 20%).",
        "- GO-SVD is built from the annotations GEARS' perturbation graph already uses: any gain from "
        "it measures what a second route for the same knowledge buys, not new knowledge."]
    every = summary.embedding_findings(structure, coverage.assign(found=True), simulated=True)
    assert "(2 of 2 perturbed genes)." in every and "missing" not in every
    assert every.splitlines()[1].startswith("- The data are simulated:")
    # genes Norman did not perturb have no GI-manifold cluster: the clause is left out
    other_screen = summary.embedding_findings(structure.assign(cluster_neighbours_same=np.nan,
                                                               cluster_chance=np.nan), coverage, False)
    assert "GO process 50% of the time (random: 10%)." in other_screen and "Norman cluster" not in other_screen


def test_prior_sweep_markdown_says_how_to_run_a_missing_sweep(tmp_path):
    sweep = tmp_path / "benchmarks" / "prior_sensitivity.csv"
    missing = summary.prior_sweep_markdown(sweep, tmp_path / "none.csv", tmp_path)
    assert missing == ("The GO-signal sweep has not been run (no `benchmarks/prior_sensitivity.csv`); "
                       "`python benchmarks/prior_sensitivity.py` runs it (about 1.5 hours at 1,000 genes "
                       "on 2 cores).")
    sweep.parent.mkdir()
    _sweep_table().to_csv(sweep, index=False)
    assert summary.prior_sweep_markdown(sweep, tmp_path / "none.csv", tmp_path) == \
        summary.prior_sweep_findings(_sweep_table())
    statistics = tmp_path / "similarity_statistics.csv"
    pd.DataFrame({"statistic": ["spearman_go_jaccard"], "source": ["Norman's screen"],
                  "value": [0.325]}).to_csv(statistics, index=False)
    assert summary.prior_sweep_markdown(sweep, statistics, tmp_path) == \
        summary.prior_sweep_findings(_sweep_table(), norman_go_spearman=0.325)
    for source in ("simulated cells", "this file's cells"):  # the build's own data, either kind
        pd.DataFrame({"statistic": ["spearman_go_jaccard"] * 2, "source": ["Norman's screen", source],
                      "value": [0.325, 0.31]}).to_csv(statistics, index=False)
        assert summary.prior_sweep_markdown(sweep, statistics, tmp_path) == \
            summary.prior_sweep_findings(_sweep_table(), norman_go_spearman=0.325, build_go_spearman=0.31)


def test_chapter_22_sentences_on_the_truth_and_the_verified_pairs():
    truth = pd.DataFrame({"magnitude": [0.8, 1.2, 1.0, 1.5, 0.95]})
    assert summary.true_magnitudes_sentence(truth) == (
        "True magnitudes (from the cells): median 1.00, range 0.80–1.50; 2 of 5 test pairs above "
        "GEARS' synergy threshold 1.15, 2 below the suppressor threshold 1.0.")
    fidelity = pd.DataFrame({"source": ["cells", "cells, Norman's scale", "noise-free"],
                             "r": [0.812, 0.92, 0.97], "slope": [0.534, 0.93, 1.2], "n": [120] * 3,
                             "agreement": [0.8, 0.94, 0.78], "median": [0.8, 1.08, 1.17],
                             "above": [0.1, 0.34, 0.54], "norman_median": [1.02] * 3,
                             "norman_above": [0.32] * 3})
    sentence = summary.truth_fidelity_sentence(fidelity)
    assert sentence == (
        "From the cells, true magnitudes track Norman's with r = 0.81 and slope 0.53 over 120 "
        "pairs, median 0.80 with 10% above GEARS' synergy threshold 1.15 (Norman's own: median "
        "1.02, 32%); the threshold makes Norman's call on 80% of them. Measured as Norman measured "
        "his (z-scores over the genes above 0.5 UMI per cell), the cells give r = 0.92, slope 0.93, "
        "median 1.08, 34% above 1.15, agreement 94%. The noise-free truth gives r = 0.97, slope "
        "1.20, median 1.17, 54% above 1.15, agreement 78%.")
    assert summary.truth_fidelity_sentence(fidelity.iloc[:1]) == sentence.split(" Measured as")[0]
    verified = {"synergy": {"A+B", "C+D", "X+Y"}, "suppressor": {"E+F"}}
    assert summary.verified_base_rate_sentence({"A+B", "C+D", "E+F", "G+H"}, verified,
                                               {"synergy": 0.5, "suppressor": 0.25}) == (
        "Norman-verified among the 4 scored test pairs: 2 synergistic, 1 suppressive; a random "
        "top-k list would score precision 0.50 and 0.25")


def test_calibrated_lenses_summarise_seeds_and_name_the_best_per_lens():
    rows = [("gears", 1, "all", "mse_de", 0.5), ("gears", 2, "all", "mse_de", 0.7),
            ("additive", 0, "all", "mse_de", 0.9), ("gears", 1, "all", "rank_all", -0.2),
            ("gears", 2, "all", "rank_all", -0.4), ("additive", 0, "all", "rank_all", 0.1),
            ("gears", 1, "unseen_single", "mse_de", 0.3), ("gears", 2, "unseen_single", "mse_de", 0.5),
            ("gears", 1, "all", "not_a_lens", 9.0)]
    calibrated = pd.DataFrame(rows, columns=["model", "seed", "subgroup", "metric", "value"])
    lenses = summary.CalibratedLenses.from_scores(calibrated)
    assert lenses.metrics == ["mse_de", "rank_all"]  # the book's order; unknown metrics left out
    gears = lenses.table.set_index(["metric", "model", "subgroup"]).loc[("mse_de", "gears", "all")]
    assert gears["mean"] == pytest.approx(0.6) and gears.sd == pytest.approx(0.1414, abs=1e-4)
    assert gears.n_seeds == 2
    shown = lenses.display()
    assert list(shown.columns) == ["unseen_single", "all"]  # easiest first, then all
    assert shown.loc[("mse_de", "gears"), "all"] == "0.60 ± 0.14"
    assert shown.loc[("mse_de", "additive"), "unseen_single"] == "–"
    best, wins, below = lenses.findings("gears")
    assert best == "Best model per lens, calibrated, over all test perturbations: `mse_de` additive 0.90; `rank_all` additive 0.10."
    assert wins == "Lenses won: additive 2 of 2."
    assert below == "gears scores below the mean-response baseline (< 0) on 1 of 2 lenses: `rank_all`."


def test_the_glance_shows_mean_and_seed_sd_per_model(tmp_path):
    table = pd.DataFrame({"model": ["gears", "additive", "noise_ceiling"], "column": ["mse_de:all"] * 3,
                          "mean": [0.5, 0.8, 0.1], "sd": [0.02, np.nan, np.nan]})
    shown = summary.glance_display(table)
    label = next(c.label for c in summary.COLUMNS if c.name == "mse_de:all")
    assert list(shown.columns) == ["additive", "gears", "noise_ceiling"]  # the registry's order
    assert shown.loc[label].tolist() == ["0.800", "0.500 ± 0.020", "0.100"]
    assert summary.read_optional(tmp_path / "absent.csv") is None


def test_prior_target_findings_name_the_pick_each_seeds_own_and_whether_the_seeds_decide_it():
    """Three seeds where `perturbation` has the lowest mean but one seed prefers `both`, as in
    the default data's benchmark: the pick, every mean ± SD, the per-seed winners and the paired
    differences (mean ± SD) are computed, and "no candidate is ahead" only when each paired
    difference is within its SD."""
    values = {"gene": [0.70, 0.69, 0.71], "perturbation": [0.65, 0.70, 0.69], "both": [0.69, 0.68, 0.72]}
    table = pd.DataFrame([{"prior": "genemamba", "target": t, "seed": s, "val_mse_top20_de": v[i],
                           "chosen": False, "converged": not (t == "gene" and s == 2)}
                          for t, v in values.items() for i, s in enumerate([1, 2, 3])])
    about = {"profile": "default", "commit": "b36b61d0123"}
    text = summary.prior_target_findings(table, about)
    assert text.startswith("Every prior enters GEARS' **perturbation** embedding")
    assert "over 3 seeds of the default profile's data, with genemamba's prior" in text
    assert "commit `b36b61d`" in text
    assert "`perturbation` 0.680 ± 0.026; `both` 0.697 ± 0.021; `gene` 0.700 ± 0.010" in text
    assert "Seed by seed the lowest was `perturbation` on 2, `both` on 1." in text
    assert "`both` − `perturbation` = +0.017 ± 0.032; `gene` − `perturbation` = +0.020 ± 0.030" in text
    assert "no candidate is ahead of another by more than the seed-to-seed spread" in text
    assert "8 of 9 candidate runs reached their plateau. The benchmark ran on simulated data;" in text
    one_seed = summary.prior_target_findings(table[table.seed == 1], about)
    assert "`perturbation` 0.650 ± nan" not in one_seed and "over 1 seeds" not in one_seed
    assert "one seed gives no spread to judge these differences by" in one_seed
    clear = table.assign(val_mse_top20_de=table.val_mse_top20_de + (table.target == "gene") * 0.2)
    assert "the difference from `gene` exceeds its seed spread" in summary.prior_target_findings(clear, about)
    # evidence from other data is flagged, the same data is not
    about["data_run"] = "bcc1f0d47cb8723b"
    assert summary.prior_target_findings(table, about, "bcc1f0d47cb8723b") == text
    stale = summary.prior_target_findings(table, about, "0123456789abcdef")
    assert stale.startswith(text) and "data step `0123456789abcdef`, the benchmark's `bcc1f0d47cb8723b`" in stale
    assert "may not be the data the benchmark ran on" in stale
    # where the benchmark recorded its data's signature, the data decide, not the data step's code
    about["data_content"] = {"layout": "5f3a9c0e1d2b4a68", "sums": [2.5e7, 4.1e7, 1.2e7, 1.3e7]}
    same = {"layout": "5f3a9c0e1d2b4a68", "sums": [2.5e7 * (1 + 3e-7), 4.1e7, 1.2e7, 1.3e7 * (1 - 2e-7)]}
    assert summary.prior_target_findings(table, about, "0123456789abcdef", same) == text
    moved = {"layout": "5f3a9c0e1d2b4a68", "sums": [2.5e7 * (1 + 3e-6), 4.1e7, 1.2e7, 1.3e7]}
    other = summary.prior_target_findings(table, about, "bcc1f0d47cb8723b", moved)
    assert other.startswith(text) and "are not the data the benchmark ran on" in other
    assert "sums (2.500008e+07, 4.1e+07, 1.2e+07, 1.3e+07) against (2.5e+07, 4.1e+07" in other
    relaid = {"layout": "77aa00bb11cc22dd", "sums": about["data_content"]["sums"]}
    assert "layout `77aa00bb11cc22dd`, the benchmark's `5f3a9c0e1d2b4a68`" in summary.prior_target_findings(
        table, about, "bcc1f0d47cb8723b", relaid)


def test_benchmarked_targets_are_read_checked_and_their_absence_says_what_to_run(tmp_path):
    from helpers.models import priors

    table, about = priors.benchmarked_targets()  # the shipped benchmark
    assert sorted(set(table.target)) == sorted(priors.PRIOR_TARGETS) and table.seed.nunique() >= 2
    assert about["profile"] == "default" and table.groupby("seed").chosen.sum().eq(1).all()
    with pytest.raises(FileNotFoundError, match="run `python benchmarks/prior_target.py`, or give "
                                                "chapter 14 prior_targets"):
        priors.benchmarked_targets(tmp_path / "prior_target_selection.csv")
    table.drop(columns="converged").to_csv(tmp_path / "broken.csv", index=False)
    with pytest.raises(ValueError, match=r"broken.csv: missing column\(s\) \['converged'\]"):
        priors.benchmarked_targets(tmp_path / "broken.csv")
