# %% [markdown]
# # One combination up close
#
# In this notebook we look at a single test combination the way the seed study did: for its
# top-20 DE genes, the change over control of every true cell next to what each model predicts.
# Summary metrics average this picture away; here one sees whether a model gets the direction,
# the size and the spread of a combination's effect.
#
# The default, ETS2+CEBPE, is a pair whose genes were both seen alone in training
# (`combo_seen2`); any test combination can be asked for (`combination` parameter, either gene
# order).

# %% tags=["parameters"]
# 'quick', 'default', 'norman_cpu' or 'full' (the profile the models were trained
# with)
profile = "default"
combination = "ETS2+CEBPE"  # a test combination, genes in either order
n_genes = 20  # top DE genes shown
force = False  # make the table again even if nothing it reads has changed

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from helpers import data, evaluation, files, pipeline, plots, predictions, profiles
from helpers import roots, runs
from helpers.conditions import resolve_combination

STEP = pipeline.INSPECT_COMBINATION
profiles.get_profile(profile)
prepared = data.load_prepared()
adata = prepared.adata
split = prepared.split
condition = resolve_combination(combination, split.test)
stored = predictions.for_evaluation(prepared)
if stored.empty:
    raise FileNotFoundError(
        "no predictions under results/predictions; run the training chapters first"
    )
out = roots.step_dir(f"{STEP}/{condition}")
print(
    f"{condition}: test subgroup {split.subgroup_of(condition)}, "
    f"{int((adata.obs['condition'] == condition).sum())} cells"
)

# %% tags=["remove-input"]
# which data this page shows, and the budget
display(Markdown(runs.data_statement(profile)))

# %% [markdown]
# ## 1. True cells and predictions as changes over control

# %%
record = {"profile": profile, "combination": condition, "n_genes": n_genes}
view = evaluation.inspect_combination(
    prepared, stored, condition, n_genes, record, force)
true_delta, predicted, table = view.true_delta, view.predicted, view.table

# %% [markdown]
# ## 2. The picture
#
# Purple boxes: the true cells (median, quartiles, whiskers to 1.5 × IQR). Markers: each model's
# predicted mean change, averaged over seeds, with the range over seeds as a bar.

# %%
fig = plots.combination_boxplot(
    true_delta,
    predicted,
    title=f"{condition} ({split.subgroup_of(condition)}): top-{n_genes} DE genes",
)
files.atomic_savefig(fig, out / "boxplot.png")
plt.show()

# %% [markdown]
# ## 3. How close is each model on these genes?
#
# Squared error of the seed-mean prediction against the true mean change, and the share of genes
# whose predicted change has the right sign.

# %%
closeness = (
    table.groupby(["model", "gene"], as_index=False)
    .agg(delta=("delta", "mean"), true_mean_delta=("true_mean_delta", "first"))
    .assign(
        squared_error=lambda t: (t.delta - t.true_mean_delta) ** 2,
        right_sign=lambda t: (t.delta > 0) == (t.true_mean_delta > 0),
    )
    .groupby("model")[["squared_error", "right_sign"]]
    .mean()
    .rename(
        columns={"squared_error": "mse_top_de", "right_sign": "direction_accuracy"}
    )
)
display(closeness.sort_values("mse_top_de").round(3))

# %% [markdown]
# ## What we found

# %%
ranked = closeness.sort_values("mse_top_de")
best, worst = ranked.index[0], ranked.index[-1]
inside = (
    table.assign(inside=lambda t: t.delta.between(t.true_q25, t.true_q75))
    .groupby("model")
    .inside.mean()
)
truth = table.drop_duplicates("gene")  # per gene: its true mean and quartiles
iqr = (truth.true_q75 - truth.true_q25).median()
shift = truth.true_mean_delta.abs().median()
display(
    Markdown(
        f"- On {condition}, **{best}** comes closest on its top-{n_genes} DE genes "
        f"(MSE {ranked.at[best, 'mse_top_de']:.3f}, right sign on "
        f"{ranked.at[best, 'direction_accuracy']:.0%} of them) and **{worst}** is "
        f"furthest (MSE {ranked.at[worst, 'mse_top_de']:.3f}).\n"
        f"- The true cells spread widely around their mean: the median gene's "
        f"interquartile range is {iqr:.2f}, against a median mean change of "
        f"{shift:.2f}. Predicted mean changes fall inside that range for "
        + ", ".join(f"{m} {v:.0%}" for m, v in inside.sort_values().items())
        + " of the genes (seeds pooled).\n"
        "- This ranks the models on one combination only; the evaluation chapter "
        "says whether the ranking holds across the test set."
    )
)
