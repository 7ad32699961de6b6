"""Results at a glance: seed spread and plain-words verdicts."""

import numpy as np
import pandas as pd
import pytest

from helpers import summary


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
    from helpers import data

    config = {"go_weight": 1.0, "go_neighbours": 10, "cluster_weight": 1.0, "private_weight": 0.7,
              "coexpression_strength": 0.6}
    fidelity = pd.DataFrame({"source": ["cells", "noise-free"], "r": [0.62, 1.0], "slope": [0.33, 1.0],
                             "n": [125, 125], "agreement": [0.68, 1.0]})
    simulated = summary.data_caveats(config, fidelity, data.PRIOR_SIGNAL_KNOBS)
    assert "go_weight = 1.0" in simulated[0] and "against 0.7" in simulated[0]
    assert "r = 0.62" in simulated[1] and "125 pairs" in simulated[1] and "r = 1.00" in simulated[2]
    real = summary.data_caveats(None, fidelity.iloc[:1], data.PRIOR_SIGNAL_KNOBS)
    assert real[0].startswith("The data are a real screen") and len(real) == 2


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
