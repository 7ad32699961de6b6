"""The GI scores of one build (helpers.scoring): the truth and every model-seed, cached, and
where chapter 22 writes its tables."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from helpers import gi, pipeline, roots, scoring


def _build(rng, noise_free: bool):
    """Condition means of two test pairs and one pair Norman fitted (singles and control
    beside them), as a prepared data set with (or without) the simulator's noise-free means."""
    genes = [f"g{i}" for i in range(60)]
    singles = {gene: rng.normal(0, 1, len(genes)) for gene in "ABCDEF"}
    rows = {"ctrl": np.zeros(len(genes)), **{f"{g}+ctrl": d for g, d in singles.items()},
            "A+B": singles["A"] + singles["B"], "C+D": 1.5 * (singles["C"] + singles["D"]),
            "E+F": 0.5 * (singles["E"] + singles["F"])}
    means = 5 + pd.DataFrame(rows, index=genes).T
    split = SimpleNamespace(subgroup_of={"A+B": "combo_seen2", "C+D": "combo_seen1"}.get)
    truth = SimpleNamespace(to_df=lambda: means) if noise_free else None
    prepared = SimpleNamespace(fingerprint="data", truth=truth, split=split)
    scorer = scoring.Scoring(genes, ["A+B", "C+D"], ["A+B", "C+D", "E+F"])
    return scorer, prepared, means


@pytest.mark.parametrize("noise_free", [False, True])
def test_score_all_scores_the_truths_on_every_pair_and_the_build_on_the_test_pairs(noise_free):
    scorer, prepared, means = _build(np.random.default_rng(0), noise_free)
    stored = pd.DataFrame({"model": [], "seed": []})
    scored = scorer.score_all(prepared, stored, means)
    assert list(scored.truths) == ["cells"]
    scored = scorer.with_noise_free_truth(scored, prepared)
    assert list(scored.truths) == (["cells", "noise-free"] if noise_free else ["cells"])
    assert scored.truths["cells"].perturbation.tolist() == ["A+B", "C+D", "E+F"]
    assert scored.truth.perturbation.tolist() == ["A+B", "C+D"] and scored.predicted.empty
    assert scored.truth.subgroup.tolist() == ["combo_seen2", "combo_seen1"]
    magnitude = scored.magnitude.set_index("perturbation").magnitude
    assert magnitude.tolist() == pytest.approx([np.sqrt(2), 1.5 * np.sqrt(2)], abs=1e-6)
    assert list(scored.magnitude.columns) == ["model", "seed", "perturbation", "subgroup",
                                              *gi.SCORE_COLUMNS]
    assert list(scored.tables()) == ["magnitude.csv"]
    if noise_free:  # the same means here, so the same scores
        pd.testing.assert_frame_equal(scored.truths["noise-free"].drop(columns="model"),
                                      scored.truths["cells"].drop(columns="model"))


def test_write_tables_writes_into_the_gi_folder_and_lists_them_as_run_json_does():
    table = pd.DataFrame({"model": ["gears"], "r": [0.5]})
    written = scoring.write_tables({"magnitude_correlation.csv": table, "precision.csv": table})
    assert written == ["magnitude_correlation.csv", "precision.csv"]  # the gi tables are in its own folder
    for name in written:
        path = roots.step_dir(scoring.STEP) / name
        pd.testing.assert_frame_equal(pd.read_csv(path), table)
        assert path.resolve().parent == pipeline.folder("gi").resolve()
