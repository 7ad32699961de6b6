# %% [markdown]
# # Genetic interactions: magnitude scores and synergy/suppressor calls
#
# In this notebook we ask whether the models predict how two perturbations *combine*, not only
# what each pair does. Following Norman et al. (2019) and GEARS, each test pair A+B is scored by
# regressing its change over control on the changes of its two singles, across genes, with the
# Theil–Sen estimator and no intercept:
#
# $$\Delta_{AB} \approx c_1\,\Delta_A + c_2\,\Delta_B,\qquad \text{magnitude} = \sqrt{c_1^2 + c_2^2}.$$
#
# A magnitude above ~1 means the pair does more than its singles (synergy), below less
# (suppression). The truth comes from the true cell means; a model's score from its own predicted
# singles and pair. We then
#
# 1. correlate predicted with true magnitudes per model (the seed study's headline scatter),
# 2. take each model's 20 most synergistic and 20 most suppressive test pairs and check them
#    against Norman's verified interactions (GEARS' labels) and against the truth's own top 20,
# 3. apply GEARS' paper thresholds for five interaction types and report their precision,
# 4. read interaction prediction as detection (Ahlmann-Eltze et al. 2025): rank the test pairs
#    by each model's own magnitude and draw how many of the truth's synergistic (and
#    suppressive) pairs it finds against how many false discoveries it makes.
#
# `no_change` predicts no change for every perturbation, so it has no interactions to score and
# is left out. `additive` predicts $c_1 = c_2 = 1$ for every pair whose singles it saw: a constant
# magnitude, against which a correlation is undefined.

# %% tags=["parameters"]
# 'quick', 'default', 'norman_cpu' or 'full' (the profile the models were trained
# with)
profile = "default"
# None: GEARS' 2,967 high-mean genes that are in the data; or a list of genes
gi_genes = None
top_k = 20  # size of the synergy and suppressor lists
# Theil–Sen engine: 'fast' (vectorised) or 'sklearn' (GEARS' call, ~20× slower)
engine = "fast"
max_subpopulation = 100000  # Theil–Sen subsets (GEARS: 1e5)
random_state = 1000  # Theil–Sen subset draw (GEARS: 1000)
n_jobs = 2  # threads scoring pairs in parallel (results do not depend on it)
force = False  # rescore even if scores for these parameters exist

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from helpers import data, gi, pipeline, plots, predictions, reference, runs
from helpers.models import registry
from helpers.scoring import Scoring
from helpers.summary import gi_findings

STEP = pipeline.ANALYSE_INTERACTIONS
runs.get_profile(profile)
runs.forget_run(STEP)  # recorded again once every output is written
prepared = data.load_prepared()
adata, simulation = prepared.adata, prepared.truth
split = prepared.split
true_means = data.condition_means(adata)
scoring = Scoring.build(
    split.test, true_means, gi_genes, engine, max_subpopulation, random_state, n_jobs
)
genes, pairs = scoring.genes, scoring.pairs
stored = predictions.for_evaluation(prepared)
stored = stored[stored.model.map(registry.scores_interactions)]
verified = gi.verified_pairs(reference.gi_types())
gi_dir = pipeline.folder("gi")
print(
    f"{len(pairs)} test pairs scored on {len(genes):,} genes; "
    f"{len(stored)} model-seeds; engine {engine}"
)

# %% tags=["remove-input"]
# which data this page shows, and the budget
display(Markdown(runs.data_statement(profile)))

# %% [markdown]
# ## 1. Score the truth and every model
#
# Scores are cached per model and seed on the content of its predictions.

# %%
jobs = [scoring.truth_run(true_means, prepared.fingerprint)] + [
    scoring.model_run(model, seed, true_means)
    for model, seed in stored.itertuples(index=False)
]
results = scoring.scores(jobs, force)
truth_scores = results[0]  # on the test pairs and every pair Norman fitted
scores = pd.concat(
    [truth_scores[truth_scores.perturbation.isin(pairs)], *results[1:]],
    ignore_index=True,
)
scores["subgroup"] = scores.perturbation.map(split.subgroup_of)
magnitude = scores[["model", "seed", "perturbation", "subgroup", *gi.SCORE_COLUMNS]]
runs.atomic_write_csv(magnitude, gi_dir / "magnitude.csv")
truth = scores[scores.model == "truth"]
display(
    Markdown(
        f"True magnitudes (from the cells): median {truth.magnitude.median():.2f}, "
        f"range {truth.magnitude.min():.2f}–{truth.magnitude.max():.2f}; "
        f"{int((truth.magnitude > 1.15).sum())} of {len(truth)} test pairs above "
        f"GEARS' synergy threshold 1.15, {int((truth.magnitude < 1.0).sum())} below "
        "the suppressor threshold 1.0."
    )
)

# %% [markdown]
# ### Can the truth carry the analysis? Two truths beside Norman's fits
#
# The truth above is scored from the cells, as a real analysis must: each condition's mean over
# its cells, at the screen's cell counts and depth. On simulated data the simulator also saved
# each condition's *noise-free* expected mean, whose pairs were set on this scored scale from
# Norman's own coefficients and fit quality. Over every pair Norman fitted, we compare the
# magnitudes each truth gives with Norman's sqrt(c1² + c2²): the noise-free truth shows what the
# simulator was given, the cells what survives sampling noise. Noise in the singles' changes
# biases a Theil–Sen fit towards zero (errors in the predictors), so the cells' magnitudes are
# shrunk; a model is compared with the cells' truth (as on real data) and, below, with both.

# %%
truth_sources = {"cells": truth_scores}
if simulation is not None:
    noise_free = scoring.truth_run(
        simulation.to_df(), prepared.fingerprint, "truth_noise_free"
    )
    truth_sources["noise-free"] = scoring.scores(
        [noise_free], force, "noise-free truth"
    )[0]
truth_magnitudes = pd.concat(
    [table.assign(source=source) for source, table in truth_sources.items()],
    ignore_index=True,
)
fits = reference.gi_fits()
fidelity = gi.truth_fidelity(truth_magnitudes, fits)
runs.atomic_write_csv(fidelity, gi_dir / "truth_fidelity.csv")
truth_magnitudes["norman"] = truth_magnitudes.perturbation.map(gi.pair_key).map(
    gi.norman_magnitudes(fits)
)
fig = plots.magnitudes_vs_norman(
    truth_magnitudes.dropna(subset=["norman"]), fidelity
)
runs.atomic_savefig(fig, runs.step_dir(STEP) / "truth_fidelity.png")
plt.show()
display(fidelity.round(3))
cells_row = fidelity.set_index("source").loc["cells"]
display(
    Markdown(
        f"From the cells, true magnitudes track Norman's with r = {cells_row.r:.2f} "
        f"and slope {cells_row.slope:.2f} over {int(cells_row.n)} pairs; GEARS' "
        "synergy threshold makes Norman's call on "
        f"{cells_row.agreement:.0%} of them."
        + (
            ""
            if "noise-free" not in truth_sources
            else " The noise-free truth gives r = {r:.2f}, slope {slope:.2f}, "
            "agreement {agreement:.0%}.".format(
                **fidelity.set_index("source").loc["noise-free"]
            )
        )
    )
)

# %% [markdown]
# ## 2. Predicted vs true magnitude
#
# Each point is a test pair (seeds averaged); r and p in each title are Pearson's, on the
# seed-averaged magnitudes. The table below gives r per seed.

# %%
per_seed = pd.DataFrame(
    [
        {"model": model, "seed": seed, **gi.magnitude_correlation(truth, group)}
        for (model, seed), group in scores[scores.model != "truth"].groupby(
            ["model", "seed"]
        )
    ]
)
runs.atomic_write_csv(per_seed, gi_dir / "magnitude_correlation.csv")
if (
    "noise-free" in truth_sources
):  # the same correlations against the noise-free truth
    noise_free = truth_sources["noise-free"]
    per_seed_noise_free = pd.DataFrame(
        [
            {
                "model": model,
                "seed": seed,
                **gi.magnitude_correlation(noise_free, group),
            }
            for (model, seed), group in scores[scores.model != "truth"].groupby(
                ["model", "seed"]
            )
        ]
    )
    runs.atomic_write_csv(
        per_seed_noise_free, gi_dir / "magnitude_correlation_noise_free.csv"
    )
seed_mean = (
    scores[scores.model != "truth"]
    .groupby(["model", "perturbation"], as_index=False)
    .magnitude.mean()
)
pooled = pd.DataFrame(
    [
        {"model": model, **gi.magnitude_correlation(truth, group)}
        for model, group in seed_mean.groupby("model")
    ]
)
fig = plots.magnitude_scatters(magnitude, pooled)
runs.atomic_savefig(fig, runs.step_dir(STEP) / "magnitude_scatter.png")
plt.show()
by_model = {"truth from cells": per_seed}
if "noise-free" in truth_sources:
    by_model["noise-free truth"] = per_seed_noise_free
display(
    pd.concat(
        {
            name: table.groupby("model").agg(
                r_mean=("r", "mean"), r_sd=("r", "std"), seeds=("r", "size")
            )
            for name, table in by_model.items()
        },
        axis=1,
    ).round(3)
)

# %% [markdown]
# ## 3. Top synergistic and suppressive pairs
#
# precision@k: the share of a model's k most synergistic (or suppressive) test pairs that Norman
# verified as such, or that are among the truth's own top 20. Only the test pairs are ranked, so
# a verified pair outside the test set can never be found.

# %%
tops = []
for (model, seed), group in scores.groupby(["model", "seed"]):
    tops.append(
        gi.top_pair_table(group, truth, verified, top_k).assign(
            model=model, seed=seed
        )
    )
top = pd.concat(tops, ignore_index=True).rename(
    columns={"in_true_top": f"in_true_top{top_k}"}
)
runs.atomic_write_csv(
    top[
        [
            "model",
            "seed",
            "kind",
            "rank",
            "perturbation",
            "verified",
            f"in_true_top{top_k}",
        ]
    ],
    gi_dir / f"top{top_k}.csv",
)
precision = pd.concat(
    [
        gi.precision_table(
            group.rename(columns={f"in_true_top{top_k}": "in_true_top"}),
            ks=(10, top_k),
        ).assign(model=model, seed=seed)
        for (model, seed), group in top.groupby(["model", "seed"])
    ],
    ignore_index=True,
)
precision = precision[["model", "seed", "kind", "reference", "k", "precision"]]
runs.atomic_write_csv(precision, gi_dir / "precision.csv")
display(
    precision.groupby(["model", "kind", "reference", "k"])
    .precision.mean()
    .unstack(["kind", "reference", "k"])
    .round(2)
)  # means over seeds

# %%
scored_keys = set(map(gi.pair_key, truth.perturbation))
true_top = {
    kind: set(group.perturbation.map(gi.pair_key))
    for kind, group in gi.top_pairs(truth, top_k).groupby("kind")
}
first_seed = {model: group.seed.min() for model, group in top.groupby("model")}
venn_tops = {
    model: top[(top.model == model) & (top.seed == first_seed[model])].assign(
        key=lambda t: t.perturbation.map(gi.pair_key)
    )
    for model in plots.ordered_models(first_seed)
    if model != "truth"
}
fig = plots.gi_venns(venn_tops, verified, true_top, scored_keys)
runs.atomic_savefig(fig, runs.step_dir(STEP) / "top_pairs_venn.png")
plt.show()
base_rate = {
    kind: len(verified[kind] & scored_keys) / len(scored_keys)
    for kind in ("synergy", "suppressor")
}
print(
    f"Norman-verified among the {len(scored_keys)} scored test pairs: "
    f"{len(verified['synergy'] & scored_keys)} synergistic, "
    f"{len(verified['suppressor'] & scored_keys)} suppressive; a random top-k list "
    f"would score precision {base_rate['synergy']:.2f} and "
    f"{base_rate['suppressor']:.2f}"
)

# %% [markdown]
# ## 4. Interaction types by GEARS' thresholds
#
# synergy: magnitude > 1.15; suppressor: magnitude < 1.0; redundant: dcor > 0.85; neomorphic:
# corr_fit < 0.88; epistasis: equality of contribution < 0.28. Precision is the share of the
# pairs called a type that Norman verified as that type (`truth` shows what the thresholds
# recover from the true cells).

# %%
types = pd.concat(
    [
        gi.type_precision(group, verified).assign(model=model, seed=seed)
        for (model, seed), group in scores.groupby(["model", "seed"])
    ],
    ignore_index=True,
)
types = types[
    [
        "model",
        "seed",
        "type",
        "n_called",
        "n_called_verified",
        "n_verified",
        "precision",
    ]
]
runs.atomic_write_csv(types, gi_dir / "gi_types.csv")
display(
    types.groupby(["model", "type"])[["n_called", "precision"]]
    .mean()
    .unstack("type")
    .round(2)
)
# %% [markdown]
# ## 5. Detection: does a model's ranking find the interacting pairs?
#
# Ahlmann-Eltze et al. (2025) read GI prediction as detection: a model is useful if the pairs
# it ranks as most interacting are the ones that do interact. A pair's magnitude summarises how
# its observed change departs from the sum of its singles' (observed minus additive); here the
# truth calls a pair synergistic above GEARS' 1.15 and suppressive below 1.0, and each model
# ranks the test pairs by its own predicted magnitude (high first for synergy, low first for
# suppression). Curves: true-positive rate against the false-discovery proportion, and
# precision against recall, with the average precision (AP) beside the base rate a random
# ranking would reach. Against the cells' truth and, on simulated data, the noise-free one.
# (Ahlmann-Eltze et al. call interactions per gene against a noise null; a pair-level call
# keeps the book's one definition of a GI.)

# %%
curves, detection = [], []
for source, table in truth_sources.items():
    truth_pairs = table[table.perturbation.isin(pairs)]
    for (model, seed), group in scores[scores.model != "truth"].groupby(
        ["model", "seed"]
    ):
        curve, found = gi.gi_detection(truth_pairs, group)
        curves.append(curve.assign(truth=source, model=model, seed=seed))
        detection.append(found.assign(truth=source, model=model, seed=seed))
curves = pd.concat(curves, ignore_index=True)
detection = pd.concat(detection, ignore_index=True)
runs.atomic_write_csv(curves, gi_dir / "detection_curves.csv")
runs.atomic_write_csv(
    detection[
        ["truth", "model", "seed", "kind", "average_precision", "base_rate"]
        + ["n_positive", "n"]
    ],
    gi_dir / "detection.csv",
)
for source in truth_sources:
    fig = plots.detection_curves(
        curves[curves.truth == source],
        detection[detection.truth == source],
        title=f"GI detection against the {source} truth",
    )
    name = source.replace(" ", "_").replace("-", "_")
    runs.atomic_savefig(fig, runs.step_dir(STEP) / f"detection_{name}.png")
    plt.show()
display(
    detection.groupby(["truth", "kind", "model"])
    .agg(
        average_precision=("average_precision", "mean"),
        base_rate=("base_rate", "first"),
        positives=("n_positive", "first"),
    )
    .unstack("model")
    .round(2)
)

# %%
runs.write_run_json(
    STEP,
    {
        **scoring.settings(),
        "pairs": pairs,
        "profile": profile,
        "top_k": top_k,
        "predictions": stored.to_dict("records"),
    },
    [
        "../gi/magnitude.csv",
        "../gi/magnitude_correlation.csv",
        "../gi/truth_fidelity.csv",
        f"../gi/top{top_k}.csv",
        "../gi/precision.csv",
        "../gi/gi_types.csv",
        "../gi/detection.csv",
        "../gi/detection_curves.csv",
    ],
)
# %% [markdown]
# ## What we found
#
# The correlations of section 2 are the study's GI headline: a model that only adds single
# effects has nothing to say about which pairs interact, so a positive r must come from what a
# model learnt about how genes combine. Every line below is computed from this build's tables.

# %%
display(
    Markdown(
        gi_findings(
            by_model, len(scored_keys), cells_row, precision, base_rate, detection
        )
    )
)
