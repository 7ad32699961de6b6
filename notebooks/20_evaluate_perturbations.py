# %% [markdown]
# # Evaluating every model, perturbation by perturbation
#
# In this notebook we score every stored prediction (every model and seed) on every test
# perturbation with GEARS' metrics and with the lenses the field has added since (section 5),
# summarise them per test subgroup with bootstrap confidence intervals, compare them with a
# noise ceiling, and calibrate each between a mean baseline and that ceiling.
#
# The metrics compare a model's **mean** predicted expression with the true cells of the
# perturbation, and are named as cell-gears names them. Its headline, `mse_de`, is over the
# perturbation's top-20 DE genes by the t-test ranking (`rank_genes_groups_cov_all`, drop-outs
# included); its deeper analysis uses the top 20 that are not drop-outs (`*_non_dropout`):
#
# | metric | meaning |
# |---|---|
# | **`mse_de`** | mean squared error over the top-20 DE genes (GEARS' headline) |
# | `pearson_de`, `pearson_delta_de` | Pearson r over those genes, of mean expression and of change over control |
# | `mse`, `pearson`, `pearson_delta` | the same over all genes |
# | `mse_top20_de_non_dropout`, `pearson_delta_top20_de_non_dropout` | over the top-20 DE genes that are not drop-outs |
# | `frac_correct_direction_top20_non_dropout` | share of those genes whose change has the right sign |
# | `frac_in_range_45_55_non_dropout` (`40_60`, `25_75`) | share of those genes whose mean prediction falls between those quantiles of the true per-cell values (genes with only zeros left out) |
#
# A Pearson r needs variation on both sides. The "no change" baseline predicts a zero change for
# every gene (and additive does for a pair of genes never seen alone), so their correlations of
# changes are undefined: a side whose spread is below 10⁻⁶ (float rounding) counts as constant,
# and its r is recorded as missing (NaN) and left out of every mean (the summary's `n` says how
# many perturbations were scored), rather than scored as 0, which would read as "uncorrelated".
#
# The **noise ceiling** scores the mean of a random half of each test perturbation's cells
# against the other half: how well one could do by knowing the answer up to sampling noise. It
# is a pessimistic ceiling for the error metrics: each half has half the cells, so its MSE is
# about four times what a perfect prediction would score against the mean of all the cells; its
# direction and correlation metrics are flattered because the DE genes were chosen on all cells.

# %% tags=["parameters"]
# 'quick', 'default', 'norman_cpu' or 'full' (the profile the models were trained
# with)
profile = "default"
n_bootstrap = 2000  # bootstrap resamples for the confidence intervals
ceiling_seed = 0  # seed of the random halves of the noise ceiling
# the mean-response baseline b of the calibrated scores (u - b) / (r - b)
calibration_baseline = "non_control_mean"
# models to export for cell-eval, e.g. gears (written under results/cell_eval/)
cell_eval_models = []

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from helpers import convergence, data, lenses, metrics, plots, predictions, runs
from helpers import pipeline, splits
from helpers.conditions import CONTROL
from helpers.evaluation import Evaluation
from helpers.summary import lens_findings

STEP = pipeline.EVALUATE_PERTURBATIONS
runs.get_profile(profile)
runs.forget_run(STEP)  # recorded again once every output is written
prepared = data.load_prepared()
adata = prepared.adata
split = prepared.split
stored = predictions.for_evaluation(prepared)
if stored.empty:
    raise FileNotFoundError(
        "no predictions under results/predictions; run the training chapters first"
    )
display(stored.groupby("model").seed.apply(list).rename("seeds").to_frame())

# %% tags=["remove-input"]
# which data this page shows, and the budget
display(Markdown(runs.data_statement(profile)))

# %% [markdown]
# ## 1. Score every model, seed and test perturbation

# %%
cells = data.cells_by_condition(adata)
evaluation = Evaluation.build(
    cells,
    adata.var_names,
    list(split.test),
    list(split.train),
    {c: split.subgroup_of(c) for c in split.test},
    data.rank_de_positions(adata),  # GEARS' mse_de genes
    data.top_de_positions(adata),  # its non-drop-out DE genes
    ceiling_seed,
)
scored = [
    evaluation.score(model, seed, predictions.read_predictions(model, seed))
    for model, seed in runs.progress_bar(
        list(stored.itertuples(index=False)), desc="scoring", unit="model-seed"
    )
]
per_perturbation = pd.concat(
    [*scored, evaluation.score_replicate()], ignore_index=True
)
summary = metrics.summarise(per_perturbation, n_boot=n_bootstrap)
spread = metrics.seed_spread(per_perturbation)
calibrated = lenses.calibrate(per_perturbation, calibration_baseline)
condition_means = data.condition_means(adata)
systematic = lenses.systematic_variation(
    condition_means, [c for c in condition_means.index if c != CONTROL], CONTROL
)
runs.atomic_write_csv(
    systematic, runs.step_dir(STEP) / "systematic_variation.csv"
)
metrics_dir = pipeline.folder("metrics")
runs.atomic_write_csv(per_perturbation, metrics_dir / "per_perturbation.csv")
runs.atomic_write_csv(summary, metrics_dir / "summary.csv")
runs.atomic_write_csv(spread, metrics_dir / "seed_spread.csv")
runs.atomic_write_csv(calibrated, metrics_dir / "calibrated.csv")
runs.write_run_json(
    STEP,
    {
        "profile": profile,
        "n_bootstrap": n_bootstrap,
        "ceiling_seed": ceiling_seed,
        "calibration_baseline": calibration_baseline,
        "predictions": stored.to_dict("records"),
    },
    [
        "../metrics/per_perturbation.csv",
        "../metrics/summary.csv",
        "../metrics/calibrated.csv",
        "systematic_variation.csv",
    ],
)
print(
    f"{len(per_perturbation):,} scores: {per_perturbation.model.nunique()} models, "
    f"{len(split.test)} test perturbations, "
    f"{per_perturbation.metric.nunique()} metrics"
)

# %% [markdown]
# ## 2. Error on the top-20 DE genes (both definitions) and on all genes, per subgroup
#
# Subgroups run from easiest to hardest: pairs whose genes were both seen alone in training
# (`combo_seen2`), one seen (`combo_seen1`), none seen (`combo_seen0`), and single genes never
# seen (`unseen_single`). Points are means over perturbations (seeds averaged first), bars 95%
# bootstrap intervals; the grey band is the noise ceiling.

# %%
for metric in (metrics.HEADLINE, "mse_top20_de_non_dropout", "mse"):
    fig = plots.metric_by_subgroup(summary, metric)
    runs.atomic_savefig(fig, runs.step_dir(STEP) / f"{metric}_by_subgroup.png")
    plt.show()

# %%
table = (
    summary[
        summary.metric.isin(
            [
                metrics.HEADLINE,
                "mse_top20_de_non_dropout",
                "mse",
                "pearson_delta",
                "frac_correct_direction_top20_non_dropout",
            ]
        )
    ]
    .assign(
        value=lambda d: (
            d["mean"].map("{:.3f}".format)
            + " ["
            + d.ci_low.map("{:.3f}".format)
            + ", "
            + d.ci_high.map("{:.3f}".format)
            + "]"
        )
    )
    .pivot(index=["metric", "model"], columns="subgroup", values="value")
)
display(
    table[
        [s for s in (*splits.SUBGROUPS_BY_DIFFICULTY, "all") if s in table.columns]
    ]
)

# %% [markdown]
# Were the GEARS models compared here trained to their plateau? Each training chapter recorded
# its runs' convergence (`convergence.csv`); the pairs whose genes were both seen alone in
# training (`combo_seen2`) are where additive knows the answer and GEARS should too (data
# without pairs: its easiest subgroup, `unseen_single`).

# %%
trained = pd.concat(
    [
        pd.read_csv(pipeline.folder(table) / "convergence.csv")
        for table in ("gears_runs", "prior_runs")
        if (pipeline.folder(table) / "convergence.csv").is_file()
    ],
    ignore_index=True,
)
seen2 = summary.query(
    "metric == @metrics.HEADLINE and subgroup == @split.easiest"
).set_index("model")["mean"]
findings = [
    f"On `{split.easiest}` the top-20-DE MSE (`{metrics.HEADLINE}`) is "
    + ", ".join(
        f"{model} {seen2[model]:.3f}"
        for model in [*plots.ordered_models(seen2.index), "noise_ceiling"]
        if model in seen2.index
    )
    + "."
]
if len(trained):
    findings.append(convergence.describe(trained, "GEARS and GEARS + prior"))
display(Markdown("\n\n".join(findings)))

# %% [markdown]
# ## 3. Is the mean prediction inside the spread of the true cells?

# %%
fig = plots.metric_bars(
    summary[summary.subgroup == "all"],
    [f"frac_in_range_{k}_non_dropout" for k in metrics.QUANTILE_RANGES],
    ylabel="share of top-20 DE genes",
)
runs.atomic_savefig(fig, runs.step_dir(STEP) / "frac_in_range.png")
plt.show()

# %% [markdown]
# ## 4. Spread over seeds

# %%
display(
    spread[
        (spread.subgroup == "all")
        & spread.metric.isin([metrics.HEADLINE, "pearson_delta"])
    ]
    .round(4)
    .set_index(["metric", "model"])
)

# %% [markdown]
# ## 5. The field's lenses on the same predictions
#
# Since GEARS, benchmarks have asked other questions of a predicted profile
# (`helpers.lenses`). Each reads the same predictions as above; where a lens compares the genes
# that respond (discrimination, DE genes), the perturbed gene(s) are left out, as cell-eval
# does, so that a CRISPRa target's own rise does not decide the answer.
#
# | metric | meaning | source |
# |---|---|---|
# | `rank_all`, `rank_de` | share of the other test perturbations whose true profile lies closer (Euclidean) to the prediction than its own; 0 = always the right one, 0.5 = chance; over all genes or the perturbation's top-20 DE genes | PerturBench's rank metric (Wu et al. 2025) |
# | `pds_all`, `pds_de` | perturbation discrimination score, 1 − (profiles closer than its own) / N with Manhattan distance, N the number of test perturbations: 1 perfect, ~0.5 chance | Virtual Cell Challenge / cell-eval 0.8 (Arc Institute) |
# | `pearson_delta_centroid` (`_de`) | Pearson r of changes measured from the *perturbed centroid* (mean of the training perturbations' profiles) instead of control: what a model knows beyond the shift every perturbation shares | Systema (Viñas Torné et al. 2025) |
# | `mae` | mean absolute error of the mean profile, all genes | cell-eval |
# | `l2_top1000` | Euclidean distance on the 1,000 genes most expressed in control | Ahlmann-Eltze et al. (2025) |
# | `cosine_delta`, `spearman_delta` | cosine and Spearman correlation of the change over control (log fold change on log-normalised data), all genes | PerturBench |
# | `de_overlap_N` | share of the predicted top-N changed genes (by \|change\|) among the true top N, N = 20, 50, 100 | cell-eval's overlap at N |
# | `de_precision_N` | share of the predicted top-N changed genes that truly change (Welch t-test against control, Benjamini–Hochberg 5%) | cell-eval's precision at N |
#
# **Systematic variation.** Systema showed that much of a perturbation's change over control is
# shared by all perturbations (stress, cell-cycle or, in Norman's screen, differentiation), so
# Pearson delta against control rewards predicting that shared shift. Its measure: the cosine
# between each perturbation's shift over control and the average shift.

# %%
fig = plots.lens_panels(
    summary,
    ["rank_all", "pds_de", "pearson_delta", "pearson_delta_centroid"],
    ylabels=[
        "normalised rank (0 best, 0.5 chance)",
        "PDS, top-20 DE genes (1 best, 0.5 chance)",
        "Pearson r of Δ over control",
        "Pearson r of Δ over the perturbed centroid",
    ],
)
runs.atomic_savefig(fig, runs.step_dir(STEP) / "lenses_by_subgroup.png")
plt.show()

# %%
fig = plots.metric_bars(
    summary[summary.subgroup == "all"],
    [f"de_overlap_{n}" for n in lenses.DE_SIZES]
    + [f"de_precision_{n}" for n in lenses.DE_SIZES],
    ylabel="share of genes",
)
runs.atomic_savefig(fig, runs.step_dir(STEP) / "de_overlap.png")
plt.show()

# %%
lens_table = (
    summary[summary.subgroup == "all"]
    .pivot(index="model", columns="metric", values="mean")
    .reindex(columns=list(lenses.LENSES))
    .reindex(
        index=[*plots.ordered_models(summary.model), "noise_ceiling"]
    )
)
display(lens_table.T.round(3))

# %% [markdown]
# **Calibrated scores.** Each metric's mean per subgroup is also put on one scale,
# (u − b) / (r − b): b is the mean-response baseline (`calibration_baseline`) and r the
# split-half replicate (the noise ceiling), each over the same perturbations. 1 is as good as
# a replicate of the experiment, 0 no better than the mean response, below 0 worse; nothing
# is clipped (`metrics/calibrated.csv`; chapter 30 lays them side by side). The replicate
# ranks among the other halves' profiles and is pessimistic on errors (it has half the cells),
# so a model can score above 1 on an error metric.

# %% [markdown]
# ## 6. Export for cell-eval
#
# The predictions of the models named in `cell_eval_models` are written as cells in the layout
# of Arc Institute's cell-eval (`MetricsEvaluator(adata_pred, adata_real, control_pert="ctrl",
# pert_col="condition")`), so they can be scored with that evaluator too: each predicted cell
# is a real control cell shifted by the predicted change (`helpers.predictions.cell_eval_anndata`).

# %%
unknown = sorted(set(cell_eval_models) - set(stored.model))
if unknown:
    raise ValueError(
        f"cell_eval_models {unknown} have no predictions; "
        f"stored: {sorted(set(stored.model))}"
    )
for model, seed in stored[stored.model.isin(cell_eval_models)].itertuples(
    index=False
):
    predicted_cells, real_cells = predictions.cell_eval_anndata(
        predictions.read_predictions(model, seed), adata, list(split.test), seed=seed
    )
    export = pipeline.folder("cell_eval") / model / f"seed={seed}"
    export.mkdir(parents=True, exist_ok=True)
    data.write_h5ad(predicted_cells, export / "adata_pred.h5ad")
    data.write_h5ad(real_cells, export / "adata_real.h5ad")
    shown = export.relative_to(runs.results_root())
    print(
        f"{model} seed {seed}: {predicted_cells.n_obs:,} predicted and "
        f"{real_cells.n_obs:,} real cells → {shown}"
    )

# %% [markdown]
# ## What we found
#
# Every line below is computed from this build's tables; read them with the noise ceiling in
# mind (on a few dozen cells per perturbation even a perfect model scores at the ceiling, not
# at zero error) and with the seed spread (section 4): a difference inside it is no evidence.

# %%
findings = lens_findings(summary, per_perturbation, systematic)
display(Markdown("\n".join(f"- {line}" for line in findings)))
