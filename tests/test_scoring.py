"""The GI scores of one build (helpers.scoring): the truth and every model-seed, cached, and
where chapter 22 writes its tables."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from helpers import gi, pipeline, predictions, reference, roots, scoring


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


def test_the_cells_go_on_normans_scale_only_where_their_umi_totals_are_known():
    import anndata as ad

    scorer, prepared, means = _build(np.random.default_rng(0), noise_free=True)
    rng = np.random.default_rng(1)
    conditions = [c for c in means.index for _ in range(30)]
    # UMIs linear in the means (Norman's scale is linear): 30 a gene, each change 6 UMIs per unit
    counts = rng.poisson(np.maximum(30 + 6 * (means.loc[conditions].to_numpy() - 5), 1))
    totals = counts.sum(axis=1)
    cells = pd.DataFrame({"condition": conditions, "total_counts": totals})
    adata = ad.AnnData(np.log1p(counts / totals[:, None] * 1e4), obs=cells,
                       var=pd.DataFrame(index=means.columns))
    scored = scorer.with_noise_free_truth(scorer.score_all(prepared, pd.DataFrame({"model": [], "seed": []}),
                                                           means), prepared)
    without_totals = SimpleNamespace(**vars(prepared), adata=ad.AnnData(adata.X, obs=cells[["condition"]]))
    assert scorer.with_normans_scale(scored, without_totals) is scored
    on_his = scorer.with_normans_scale(scored, SimpleNamespace(**vars(prepared), adata=adata))
    assert list(on_his.truths) == ["cells", "noise-free"]  # models are never scored against it
    assert list(on_his.fidelity_truths) == ["cells", gi.NORMAN_SCALE_SOURCE, "noise-free"]
    table = on_his.normans_scale.set_index("perturbation")
    assert table.index.tolist() == ["A+B", "C+D", "E+F"]
    # z-scores are a per-gene rescaling of the changes: the pairs' magnitudes come through
    assert table.magnitude.tolist() == pytest.approx([np.sqrt(2), 1.5 * np.sqrt(2), 0.5 * np.sqrt(2)], rel=0.25)
    shallow = ad.AnnData(np.log1p(counts[:, :15] / totals[:, None] * 1e4), obs=cells,
                         var=pd.DataFrame(index=means.columns[:15]))
    shallow_data = SimpleNamespace(**{**vars(prepared), "fingerprint": "shallow"}, adata=shallow)
    for _ in range(2):  # computed, then read back: the same answer
        with pytest.warns(UserWarning, match="fewer than 20 genes are above 0.5 UMI"):
            assert scorer.with_normans_scale(scored, shallow_data) is scored


def test_normans_scale_is_computed_only_when_its_scores_are_not_cached(monkeypatch):
    import anndata as ad

    scorer, prepared, means = _build(np.random.default_rng(0), noise_free=False)
    conditions = [c for c in means.index for _ in range(30)]
    counts = np.random.default_rng(1).poisson(np.maximum(30 + 6 * (means.loc[conditions].to_numpy() - 5), 1))
    totals = counts.sum(axis=1)
    adata = ad.AnnData(np.log1p(counts / totals[:, None] * 1e4),
                       obs=pd.DataFrame({"condition": conditions, "total_counts": totals}),
                       var=pd.DataFrame(index=means.columns))
    calls = []
    real = gi.norman_scale_means
    monkeypatch.setattr(gi, "norman_scale_means", lambda data: calls.append(1) or real(data))
    scored = scorer.score_all(prepared, pd.DataFrame({"model": [], "seed": []}), means)
    first = scorer.with_normans_scale(scored, SimpleNamespace(**vars(prepared), adata=adata))
    again = scorer.with_normans_scale(scored, SimpleNamespace(**vars(prepared), adata=adata))
    assert len(calls) == 1  # the second call reads the scores back without the ~10 s of means
    pd.testing.assert_frame_equal(again.normans_scale, first.normans_scale, check_dtype=False)
    other = SimpleNamespace(**{**vars(prepared), "fingerprint": "other data"}, adata=adata)
    scorer.with_normans_scale(scored, other)
    assert len(calls) == 2  # other data: scored anew


def _norman_build(rng):
    """Four pairs Norman fitted, each the sum of its singles weighted by his own coefficients
    (so their true magnitudes are his); the first two are the test pairs."""
    fits = reference.gi_fits().head(4)
    genes = [f"g{i}" for i in range(60)]
    singles = {g: rng.normal(0, 1, len(genes)) for g in set(fits.gene_a) | set(fits.gene_b)}
    rows = {"ctrl": np.zeros(len(genes)), **{f"{g}+ctrl": d for g, d in singles.items()}}
    for fit in fits.itertuples():
        rows[fit.condition] = fit.c_a * singles[fit.gene_a] + fit.c_b * singles[fit.gene_b]
    means = 5 + pd.DataFrame(rows, index=genes).T
    pairs = fits.condition.tolist()
    split = SimpleNamespace(subgroup_of=lambda c: "combo_seen2")
    prepared = SimpleNamespace(fingerprint="data", truth=SimpleNamespace(to_df=lambda: means), split=split)
    additive = means.copy()  # a model that adds the singles: magnitude sqrt(2) on every pair
    for fit in fits.itertuples():
        additive.loc[fit.condition] = rows[f"{fit.gene_a}+ctrl"] + rows[f"{fit.gene_b}+ctrl"] + 5
    return scoring.Scoring(genes, pairs[:2], pairs), prepared, means, additive, fits


def _analyse(scorer, prepared, means, top_k=2):
    stored = pd.DataFrame({"model": ["additive"], "seed": [0]})
    scored = scorer.with_noise_free_truth(scorer.score_all(prepared, stored, means), prepared)
    return scorer.analyse(scored, prepared, stored, top_k, {"profile": "quick"})


def test_analyse_writes_every_table_into_the_chapters_folder_and_reads_them_back_unchanged(capsys):
    scorer, prepared, means, additive, fits = _norman_build(np.random.default_rng(0))
    predictions.write_predictions("additive", 0, additive, "data")
    computed = _analyse(scorer, prepared, means)
    assert "GI tables: 0 of 1 reused" in capsys.readouterr().out
    files = scoring.InteractionAnalysis.files(["cells", "noise-free"], 2)
    record = json.loads((roots.step_dir(scoring.STEP) / "run.json").read_text())
    assert sorted(files) == record["outputs"]
    for name in files:  # the chapter's tables, in its own folder
        assert (pipeline.folder("gi") / name).is_file()
    # the truth's magnitudes are Norman's: fidelity r 1, slope 1, on all four pairs
    fidelity = computed.fidelity.row("cells")
    assert fidelity.n == 4 and fidelity.r == pytest.approx(1, abs=1e-4)
    assert fidelity.slope == pytest.approx(1, abs=1e-3)
    assert len(computed.fidelity.magnitudes) == 8  # two truths × four pairs
    magnitude = computed.scored.predicted.magnitude
    assert magnitude.tolist() == pytest.approx([np.sqrt(2)] * 2, abs=1e-6)
    assert computed.correlations.pooled.set_index("model").loc["additive", "n"] == 2
    assert set(computed.correlations.per_seed) == {"cells", "noise-free"}

    reused = _analyse(scorer, prepared, means)
    assert "GI tables: 1 of 1 reused" in capsys.readouterr().out
    # what is read back is what the gi functions compute from the scores
    scored, verified = reused.scored, gi.verified_pairs(reference.gi_types())
    direct = {"types": (gi.type_precision_table(scored.scores, verified), reused.types),
              "fidelity": (gi.fidelity_to_norman(scored.truths, fits).table, reused.fidelity.table),
              "detection": (gi.detection(scored.truths, scored.predicted, scorer.pairs).summary,
                            reused.detection.summary),
              "top": (gi.top_pair_lists(scored.scores, scored.truth, verified, 2).top, reused.top.top)}
    for source, table in gi.magnitude_correlations(scored.truths, scored.predicted).per_seed.items():
        direct[source] = (table, reused.correlations.per_seed[source])
    for name, (expected, read_back) in direct.items():
        pd.testing.assert_frame_equal(read_back, expected.reset_index(drop=True), check_dtype=False, obj=name)
    assert reused.top.base_rate == computed.top.base_rate and reused.top.true_top == computed.top.true_top

    predictions.write_predictions("additive", 0, additive * 1.01, "data")  # a replaced file
    _analyse(scorer, prepared, means)
    assert "GI tables: 0 of 1 reused" in capsys.readouterr().out
    _analyse(scorer, prepared, means, top_k=1)  # another parameter
    assert "GI tables: 0 of 1 reused" in capsys.readouterr().out
    assert (pipeline.folder("gi") / "top1.csv").is_file()
