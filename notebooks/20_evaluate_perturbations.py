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
# models to export for cell-eval, e.g. gears (into this chapter's cell_eval/)
cell_eval_models = []
force = False  # score again even if nothing it reads has changed

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from helpers import convergence, data, evaluation, files, lenses, metrics, pipeline
from helpers import plots, predictions, profiles, roots, runs
from helpers.summary import lens_findings

STEP = pipeline.EVALUATE_PERTURBATIONS
profiles.get_profile(profile)
prepared = data.load_prepared()
split, own = prepared.split, roots.step_dir(STEP)
stored = predictions.for_evaluation(prepared)
if stored.empty:
    raise FileNotFoundError(
        "no predictions under results/predictions; run the training chapters first")
display(stored.groupby("model").seed.apply(list).rename("seeds").to_frame())

# %% tags=["remove-input"]
# which data this page shows, and the budget
display(Markdown(runs.data_statement(profile)))

# %% [markdown]
# ## 1. Score every model, seed and test perturbation

# %%
record = {"profile": profile, "n_bootstrap": n_bootstrap,
          "ceiling_seed": ceiling_seed, "calibration_baseline": calibration_baseline}
results = evaluation.evaluate(prepared, stored, n_bootstrap, ceiling_seed,
                              calibration_baseline, record, force)
per_perturbation, summary = results.per_perturbation, results.summary
print(f"{len(per_perturbation):,} scores: "
      f"{per_perturbation.model.nunique()} models, "
      f"{len(split.test)} test perturbations, "
      f"{per_perturbation.metric.nunique()} metrics")

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
    files.atomic_savefig(fig, own / f"{metric}_by_subgroup.png")
    plt.show()

# %%
display(results.interval_table())

# %% [markdown]
# Were the GEARS models compared here trained to their plateau? Each training chapter recorded
# its runs' convergence (`convergence.csv`); the pairs whose genes were both seen alone in
# training (`combo_seen2`) are where additive knows the answer and GEARS should too (data
# without pairs: its easiest subgroup, `unseen_single`).

# %%
tables = ["gears_runs", "prior_runs"]
curves = [pipeline.folder(t) / "convergence.csv" for t in tables]
curves = [pd.read_csv(p) for p in curves if p.is_file()]
trained = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
easiest = summary.query("metric == @metrics.HEADLINE and subgroup == @split.easiest")
easiest = easiest.set_index("model")["mean"]
models = [*plots.ordered_models(easiest.index), "noise_ceiling"]
findings = [
    f"On `{split.easiest}` the top-20-DE MSE (`{metrics.HEADLINE}`) is "
    + ", ".join(f"{m} {easiest[m]:.3f}" for m in models if m in easiest.index) + "."
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
    ylabel="share of top-20 DE genes")
files.atomic_savefig(fig, own / "frac_in_range.png")
plt.show()

# %% [markdown]
# ## 4. Spread over seeds

# %%
spread = results.spread
chosen = spread.metric.isin([metrics.HEADLINE, "pearson_delta"])
chosen &= spread.subgroup == "all"
display(spread[chosen].round(4).set_index(["metric", "model"]))

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
    summary, ["rank_all", "pds_de", "pearson_delta", "pearson_delta_centroid"],
    ylabels=["normalised rank (0 best, 0.5 chance)",
             "PDS, top-20 DE genes (1 best, 0.5 chance)",
             "Pearson r of Δ over control",
             "Pearson r of Δ over the perturbed centroid"])
files.atomic_savefig(fig, own / "lenses_by_subgroup.png")
plt.show()

# %%
fig = plots.metric_bars(
    summary[summary.subgroup == "all"],
    [f"de_{kind}_{n}" for kind in ("overlap", "precision") for n in lenses.DE_SIZES],
    ylabel="share of genes")
files.atomic_savefig(fig, own / "de_overlap.png")
plt.show()

# %%
display(results.lens_table().round(3))

# %% [markdown]
# **Calibrated scores.** Each metric's mean per subgroup is also put on one scale,
# (u − b) / (r − b): b is the mean-response baseline (`calibration_baseline`) and r the
# split-half replicate (the noise ceiling), each over the same perturbations. 1 is as good as
# a replicate of the experiment, 0 no better than the mean response, below 0 worse; nothing
# is clipped (`calibrated.csv`; chapter 30 lays them side by side). The replicate
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
for folder in evaluation.export_for_cell_eval(prepared, stored, cell_eval_models):
    print("written:", folder.relative_to(roots.results_root()))

# %% [markdown]
# ## What we found
#
# Every line below is computed from this build's tables; read them with the noise ceiling in
# mind (on a few dozen cells per perturbation even a perfect model scores at the ceiling, not
# at zero error) and with the seed spread (section 4): a difference inside it is no evidence.

# %%
findings = lens_findings(summary, per_perturbation, results.systematic)
display(Markdown("\n".join(f"- {line}" for line in findings)))
