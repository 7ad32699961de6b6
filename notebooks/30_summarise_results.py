# %% [markdown]
# # Results at a glance
#
# In this notebook we put every model side by side on every headline metric of the book, each
# as its mean over seeds ± the standard deviation over seeds, with the noise ceiling beside
# them, and say in plain words which differences from GEARS are larger than the seed spread.
# Then we put every model under every lens of the evaluation chapter on one calibrated scale.
#
# Only tables written by earlier chapters are read: `results/metrics/per_perturbation.csv` and
# `calibrated.csv` (evaluation) and `results/gi/` (genetic interactions).

# %% tags=["parameters"]
# 'quick', 'default', 'norman_cpu' or 'full' (the profile the results were made with)
profile = "default"
reference_model = "gears"  # the model every other is compared with
n_sd = 2.0  # a difference counts when larger than this many seed standard deviations

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from helpers import data, lenses, pipeline, plots, runs, summary
from helpers.splits import SUBGROUPS_BY_DIFFICULTY

STEP = pipeline.SUMMARISE_RESULTS
runs.get_profile(profile)
runs.forget_run(STEP)  # recorded again once every output is written
per_perturbation = pd.read_csv(pipeline.folder("metrics") / "per_perturbation.csv")
gi_dir = pipeline.folder("gi")
magnitude_correlation = (
    pd.read_csv(gi_dir / "magnitude_correlation.csv")
    if (gi_dir / "magnitude_correlation.csv").is_file()
    else None
)
precision = (
    pd.read_csv(gi_dir / "precision.csv")
    if (gi_dir / "precision.csv").is_file()
    else None
)
if reference_model not in set(per_perturbation.model):
    raise ValueError(
        f"reference_model {reference_model!r} has no results; choose one of "
        f"{sorted(set(per_perturbation.model))}"
    )

# %% tags=["remove-input"]
# which data this page shows, and the budget
display(Markdown(runs.data_statement(profile)))

# %% [markdown]
# ## 1. Every model, every metric

# %%
values = summary.seed_values(per_perturbation, magnitude_correlation, precision)
table = summary.glance(values)
runs.atomic_write_csv(table, runs.step_dir(STEP) / "glance.csv")
labels = {c.name: c.label for c in summary.COLUMNS}
shown = (
    table.assign(
        value=lambda t: (
            t["mean"].map(lambda v: "–" if pd.isna(v) else f"{v:.3f}")
            + t.sd.map(lambda sd: "" if pd.isna(sd) else f" ± {sd:.3f}")
        )
    )
    .pivot(index="model", columns="column", values="value")
    .reindex(
        columns=[c.name for c in summary.COLUMNS if c.name in set(table.column)]
    )
    .reindex(index=[*plots.ordered_models(table.model), "noise_ceiling"])
    .dropna(how="all")
    .fillna("–")
    .rename(columns=labels)
)
display(shown.T)

# %%
fig = plots.glance_heatmap(table, summary.COLUMNS)
runs.atomic_savefig(fig, runs.step_dir(STEP) / "glance.png")
plt.show()

# %% [markdown]
# ## 2. Which differences from the reference are larger than the seed spread?

# %%
comparison = summary.compare_with(table, reference_model, n_sd=n_sd)
runs.atomic_write_csv(comparison, runs.step_dir(STEP) / "comparison.csv")
display(
    Markdown(
        "\n".join(
            f"- {sentence}"
            for sentence in summary.plain_words(comparison, reference_model, n_sd)
        )
    )
)

# %% [markdown]
# ## 3. Every model under every lens, calibrated
#
# Each metric's mean per subgroup as (u − b) / (r − b), between the mean-response baseline b
# and the split-half replicate r (chapter 20, `metrics/calibrated.csv`): 1 is as good as
# repeating the experiment, 0 no better than predicting the mean response, below 0 worse than
# it. Scores are not clipped, so a model worse than the mean shows as negative. Means over
# seeds ± their standard deviation.

# %%
calibrated = pd.read_csv(pipeline.folder("metrics") / "calibrated.csv")
lens_metrics = [
    m
    for m in ("mse_de", "mse", "pearson_delta", "pearson_delta_de", *lenses.LENSES)
    if m in set(calibrated.metric)
]
calibrated_table = (
    calibrated[calibrated.metric.isin(lens_metrics)]
    .groupby(["metric", "model", "subgroup"])
    .value.agg(mean="mean", sd="std", n_seeds="size")
    .reset_index()
)
runs.atomic_write_csv(calibrated_table, runs.step_dir(STEP) / "calibrated.csv")
runs.write_run_json(
    STEP,
    {"profile": profile, "reference_model": reference_model, "n_sd": n_sd},
    ["glance.csv", "comparison.csv", "calibrated.csv"],
)
subgroups = [
    s
    for s in (*SUBGROUPS_BY_DIFFICULTY, "all")
    if s in set(calibrated_table.subgroup)
]
shown_calibrated = (
    calibrated_table.assign(
        value=lambda t: t["mean"].map("{:.2f}".format)
        + t.sd.map(lambda sd: "" if pd.isna(sd) else f" ± {sd:.2f}")
    )
    .pivot(index=["metric", "model"], columns="subgroup", values="value")
    .reindex(columns=subgroups)
    .fillna("–")
)
with pd.option_context("display.max_rows", len(shown_calibrated) + 1):
    display(shown_calibrated)

# %%
fig = plots.calibrated_heatmap(calibrated, lens_metrics)
runs.atomic_savefig(fig, runs.step_dir(STEP) / "calibrated_lenses.png")
plt.show()
best = (
    calibrated_table[calibrated_table.subgroup == "all"]
    .dropna(subset=["mean"])
    .sort_values(["metric", "mean", "model"], ascending=[True, False, True])
    .groupby("metric", sort=False)
    .head(1)
    .set_index("metric")
    .reindex(lens_metrics)
    .dropna(subset=["model"])
)
wins = best.model.value_counts()
below = calibrated_table[
    (calibrated_table.subgroup == "all")
    & (calibrated_table.model == reference_model)
    & (calibrated_table["mean"] < 0)
].metric.tolist()
display(
    Markdown(
        "- Best model per lens, calibrated, over all test perturbations: "
        + "; ".join(f"`{m}` {r.model} {r['mean']:.2f}" for m, r in best.iterrows())
        + ".\n- Lenses won: "
        + ", ".join(f"{m} {n} of {len(best)}" for m, n in wins.items())
        + f".\n- {reference_model} scores below the mean-response baseline (< 0) on "
        + (
            f"{len(below)} of {len(lens_metrics)} lenses: "
            + ", ".join(f"`{m}`" for m in below)
            if below
            else f"none of the {len(lens_metrics)} lenses"
        )
        + "."
    )
)

# %% [markdown]
# ## 4. What this data can show
#
# The verdicts above are only as general as the data behind them. On simulated data, the
# simulator's settings decide which kind of gene prior has signal, and the GI truth is as good as
# the cells make it; both are stated here from this build's files.

# %%
_, simulation = data.read_prepared(pipeline.folder("prepared_data"), truth_only=True)
fidelity = (
    pd.read_csv(gi_dir / "truth_fidelity.csv")
    if (gi_dir / "truth_fidelity.csv").is_file()
    else None
)
caveats = summary.data_caveats(
    None if simulation is None else simulation.uns["config"],
    fidelity,
    data.PRIOR_SIGNAL_KNOBS,
)
display(Markdown("\n".join(f"- {sentence}" for sentence in caveats)))

# %% [markdown]
# ## What we found
#
# The sentences above are generated from this build's numbers, so they stay true when the book
# is rebuilt with other data, seeds or profiles. Read them with two cautions: a model trained
# once (the baselines are deterministic) is judged against the reference's seed spread only, and
# a difference inside the spread is not evidence that the models differ.
