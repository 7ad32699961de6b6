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
from IPython.display import Markdown, display

from helpers import conditions, data, files, gi, pipeline, plots, predictions
from helpers import profiles, roots, runs, scoring, summary
from helpers.models import registry

STEP = pipeline.ANALYSE_INTERACTIONS
profiles.get_profile(profile)
prepared = data.load_prepared()
true_means = conditions.condition_means(prepared.adata)
scorer = scoring.Scoring.build(prepared.split.test, true_means, gi_genes, engine,
                               max_subpopulation, random_state, n_jobs)
stored = predictions.for_evaluation(prepared)
stored = stored[stored.model.map(registry.scores_interactions)]
out = roots.step_dir(STEP)  # the figures (tables: scorer.analyse)
print(f"{len(scorer.pairs)} test pairs scored on {len(scorer.genes):,} genes; "
      f"{len(stored)} model-seeds; engine {engine}")

# %% tags=["remove-input"]
# which data this page shows, and the budget
display(Markdown(runs.data_statement(profile)))

# %% [markdown]
# ## 1. Score the truth and every model
#
# Scores are cached per model and seed on the content of its predictions.

# %%
scored = scorer.score_all(prepared, stored, true_means, force)
display(Markdown(summary.true_magnitudes_sentence(scored.truth)))

# %% [markdown]
# ### Can the truth carry the analysis? The truth beside Norman's fits
#
# The truth above is scored from the cells, as a real analysis must: each condition's mean over
# its cells, at the screen's cell counts and depth. Over every pair Norman fitted, we compare the
# magnitudes it gives with Norman's sqrt(c1² + c2²). Norman did not fit on GEARS' scale: he
# z-scored each gene against the control cells and kept the genes above 0.5 UMI per cell. Noise
# in the singles' changes biases a Theil–Sen fit towards zero (errors in the predictors), far
# more on GEARS' scale, where the many weakly expressed genes are mostly counting noise. So
# where each cell's UMI total is known the cells are also measured on his scale: that view,
# not GEARS', is the one to hold against his estimates. On simulated data the simulator also
# saved each condition's *noise-free* expected mean, whose pairs were set on GEARS' scale so
# that the cells, measured as Norman measured his, give magnitudes that distribute as his: the
# noise-free truth lies further out than his estimates, by the shrinkage his own noise caused.
# A model is compared with the cells' truth (as on real data) and, below, with the noise-free one.

# %%
scored = scorer.with_noise_free_truth(scored, prepared, force)  # simulated data only
scored = scorer.with_normans_scale(scored, prepared, force)  # UMI totals known
# every table of this chapter, computed or read back (a run keyed on its inputs)
analysis = scorer.analyse(scored, prepared, stored, top_k, {"profile": profile},
                          force)
fidelity = analysis.fidelity
fig = plots.magnitudes_vs_norman(fidelity.magnitudes, fidelity.table)
files.atomic_savefig(fig, out / "truth_fidelity.png")
plt.show()
display(fidelity.table.round(3))
display(Markdown(summary.truth_fidelity_sentence(fidelity.table)))

# %% [markdown]
# ## 2. Predicted vs true magnitude
#
# Each point is a test pair (seeds averaged); r and p in each title are Pearson's, on the
# seed-averaged magnitudes. The table below gives r per seed.

# %%
correlations = analysis.correlations
fig = plots.magnitude_scatters(scored.magnitude, correlations.pooled)
files.atomic_savefig(fig, out / "magnitude_scatter.png")
plt.show()
display(correlations.overview().round(3))

# %% [markdown]
# ## 3. Top synergistic and suppressive pairs
#
# precision@k: the share of a model's k most synergistic (or suppressive) test pairs that Norman
# verified as such, or that are among the truth's own top 20. Only the test pairs are ranked, so
# a verified pair outside the test set can never be found.

# %%
top = analysis.top
display(top.precision_overview().round(2))  # means over seeds

# %%
tops = top.first_seed_tops()
tops = {model: tops[model] for model in plots.ordered_models(tops)}
fig = plots.gi_venns(tops, top.verified, top.true_top, top.scored)
files.atomic_savefig(fig, out / "top_pairs_venn.png")
plt.show()
print(summary.verified_base_rate_sentence(top.scored, top.verified,
                                           top.base_rate))

# %% [markdown]
# ## 4. Interaction types by GEARS' thresholds
#
# synergy: magnitude > 1.15; suppressor: magnitude < 1.0; redundant: dcor > 0.85; neomorphic:
# corr_fit < 0.88; epistasis: equality of contribution < 0.28. Precision is the share of the
# pairs called a type that Norman verified as that type (`truth` shows what the thresholds
# recover from the true cells).

# %%
types = analysis.types
display(types.groupby(["model", "type"])[["n_called", "precision"]].mean()
        .unstack("type").round(2))
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
detection = analysis.detection
for source in scored.truths:
    fig = plots.detection_curves(*detection.of(source),
                                 title=f"GI detection against the {source} truth")
    files.atomic_savefig(fig, out / f"detection_{gi.source_slug(source)}.png")
    plt.show()
display(detection.overview().round(2))

# %% [markdown]
# ## What we found
#
# The correlations of section 2 are the study's GI headline: a model that only adds single
# effects has nothing to say about which pairs interact, so a positive r must come from what a
# model learnt about how genes combine. Every line below is computed from this build's tables.

# %%
display(Markdown(summary.gi_findings(
    correlations.labelled(), len(top.scored), fidelity.row("cells"), top.precision,
    top.base_rate, detection.summary)))
