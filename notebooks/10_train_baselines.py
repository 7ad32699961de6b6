# %% [markdown]
# # Training the baselines
#
# In this notebook we fit the simple baselines that any perturbation model has to beat
# (Ahlmann-Eltze, Huber & Anders 2025 found that deep models do not beat them on Norman;
# Systema and PerturBench added the last three) and store their predictions in the format every
# model shares.
#
# - `no_change`: every perturbation looks like the mean control cell.
# - `train_mean`: control plus the mean change of all training perturbations (each
#   perturbation weighted alike: Systema's *perturbed centroid*).
# - `non_control_mean` (Systema): the mean of all perturbed training cells (each cell weighted
#   alike).
# - `matching_mean` (Systema): the average of the perturbed genes' profiles measured alone in
#   training; a gene never seen alone stands in with the non-control mean.
# - `additive`: control plus the changes of the two genes measured alone in training (a gene
#   never seen alone contributes nothing): the natural model of a pair with no interaction.
# - `latent_additive` (PerturBench's strongest baseline on Norman): the additive rule applied
#   to codes in the top principal components of the training condition means, decoded back; a
#   linear encoder where PerturBench learns one.
# - `linear`: Ahlmann-Eltze et al.'s linear model, $Y \approx G W P^\top + b$, with gene
#   embeddings $G$ from a PCA of the training data, perturbation embeddings $P$ taken from the
#   rows of $G$ of the perturbed genes, and $W$ the closed-form ridge solution.

# %% tags=["parameters"]
# 'quick', 'default', 'norman_cpu' or 'full' (same data as the data chapter)
profile = "default"
n_components = 10  # PCA dimensions of the linear model
ridge = 0.1  # ridge penalty of the linear model
latent_components = 20  # principal components of the latent additive model
force = False  # refit even if predictions for these parameters exist

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from helpers import conditions, data, files, pipeline, plots, predictions, profiles
from helpers import roots, runs, splits
from helpers.conditions import CONTROL
from helpers.models import registry
from helpers.models.baselines import BaselineInputs

STEP = pipeline.TRAIN_BASELINES
SEED = 0  # the baselines are deterministic; they are stored under one seed
profiles.get_profile(profile)
prepared = data.load_prepared()
adata = prepared.adata
split = prepared.split
parameters = {
    "data_run": prepared.fingerprint,
    "n_components": n_components,
    "ridge": ridge,
    "latent_components": latent_components,
    # a change to the registry or to a baseline's code refits
    "code": runs.code_digest(
        "helpers.models.registry", *registry.baseline_modules()
    ),
}

# %% tags=["remove-input"]
# which data this page shows, and the budget
display(Markdown(runs.data_statement(profile)))

# %% [markdown]
# ## 1. Training data
#
# Baselines see only the mean expression of the training conditions (control included); every
# non-control condition of the split gets a prediction, so later chapters can also use
# predicted singles (for the genetic-interaction analysis).

# %%
means = conditions.condition_means(adata)
train = [c for c in split.train if c in means.index]
targets = [c for c in split.train + split.val + split.test if c != CONTROL]
inputs = BaselineInputs(
    means,
    train,
    targets,
    adata.var["gene_name"].astype(str).tolist(),
    adata.obs["condition"].astype(str).value_counts(),
)
baselines = [model.name for model in registry.registered("baseline")]
settings = {
    "linear": {"n_components": n_components, "ridge": ridge},
    "latent_additive": {"n_components": latent_components},
}
print(
    f"{len(train)} training conditions (control included), "
    f"predicting {len(targets)} conditions"
)

# %% [markdown]
# ## 2. Fit and predict

# %%
def fit(pending):
    """Fit every baseline; the stored prediction files are the run's results."""
    written = [
        predictions.write_predictions(
            name, SEED, registry.predict_baseline(name, inputs, settings.get(name)),
            prepared.fingerprint, {"profile": profile})
        for name in baselines
    ]
    paths = [str(p.relative_to(roots.results_root())) for p in written]
    stored = pd.DataFrame({"model": baselines, "seed": SEED, "file": paths})
    yield {"predictions.csv": stored}


# a deleted prediction file is fitted again
missing = any(not predictions.prediction_path(n, SEED).is_file() for n in baselines)
job = runs.CachedRun(STEP, parameters)
runs.reuse_or_compute(
    [job], ["predictions.csv"], fit, force or missing, "baseline fits")

# %% [markdown]
# ## 3. A first look: predicted vs true change for one perturbation
#
# For a test pair whose genes were both seen alone in training, the additive model's prediction
# is the sum of the two single changes; the scatter shows how far that is from the measured
# change, gene by gene. (Data without pairs shows the linear model on an unseen single gene:
# additive has nothing to add up there.)

# %%
example, shown = split.example(), "additive" if prepared.dataset.pairs else "linear"
control = means.loc[CONTROL]
predicted = {
    name: predictions.read_predictions(name, SEED)
    for name in ("additive", "latent_additive", "linear")
}
table = pd.DataFrame(
    {"true": means.loc[example] - control}
    | {name: p.loc[example] - control for name, p in predicted.items()}
)
fig = plots.true_vs_observed_scatter(
    table, "true", shown, title=f"{example}: {shown} baseline",
    xlabel="true change over control", ylabel="predicted change")
files.atomic_savefig(fig, roots.step_dir(STEP) / "additive_example.png")
plt.show()
display(table.corr().round(2))

# %% [markdown]
# ## What we found

# %%
easiest = [c for c in split.test_subgroup[split.easiest] if c in means.index]
shown_delta, true_delta = predicted[shown] - control, means - control
r_easiest = pd.Series(
    {c: np.corrcoef(shown_delta.loc[c], true_delta.loc[c])[0, 1] for c in easiest}
)
r_example = table.corr().loc["true"]
display(
    Markdown(
        f"- The {len(baselines)} baselines predict all {len(targets)} "
        "conditions of the split; they are the yardstick for GEARS and "
        "GEARS + prior in the evaluation chapter.\n"
        f"- On {example}, the {shown} prediction's change over control correlates "
        f"with the measured change at r = {r_example[shown]:.2f} across genes "
        f"(latent additive: r = {r_example['latent_additive']:.2f}, linear model: "
        f"r = {r_example['linear']:.2f}); over the {len(easiest)} "
        f"`{split.easiest}` {splits.SUBGROUP_MEMBERS[split.easiest]}, the median "
        f"r is {r_easiest.median():.2f} "
        f"(range {r_easiest.min():.2f}–{r_easiest.max():.2f})."
        + (" What additive misses there is the genetic interaction (and noise), "
           "which is what a learned model has to add to be worth its cost."
           if prepared.dataset.pairs else "")
    )
)
