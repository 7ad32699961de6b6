# %% [markdown]
# # Results at a glance
#
# In this notebook we put every model side by side on every headline metric of the book, each
# as its mean over seeds ± the standard deviation over seeds, with the noise ceiling beside
# them, and say in plain words which differences from GEARS are larger than the seed spread.
# Then we put every model under every lens of the evaluation chapter on one calibrated scale.
#
# Only tables written by earlier chapters are read: `per_perturbation.csv` and `calibrated.csv`
# (evaluation) and the genetic-interaction tables.

# %% tags=["parameters"]
# 'quick', 'default', 'norman_cpu' or 'full' (the profile the results were made with)
profile = "default"
reference_model = "gears"  # the model every other is compared with
n_sd = 2.0  # a difference counts when larger than this many seed standard deviations
force = False  # summarise again even if nothing it reads has changed

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from helpers import data, files, pipeline, plots, profiles, roots, runs, simulator
from helpers import summary

STEP = pipeline.SUMMARISE_RESULTS
profiles.get_profile(profile)
own = roots.step_dir(STEP)
record = {"profile": profile, "reference_model": reference_model, "n_sd": n_sd}
results = summary.summarise_results(reference_model, n_sd, record, force)

# %% tags=["remove-input"]
# which data this page shows, and the budget
display(Markdown(runs.data_statement(profile)))

# %% [markdown]
# ## 1. Every model, every metric

# %%
table = results.glance
display(summary.glance_display(table))

# %%
fig = plots.glance_heatmap(table, summary.COLUMNS)
files.atomic_savefig(fig, own / "glance.png")
plt.show()

# %% [markdown]
# ## 2. Which differences from the reference are larger than the seed spread?

# %%
sentences = summary.plain_words(results.comparison, reference_model, n_sd)
display(Markdown("\n".join(f"- {sentence}" for sentence in sentences)))

# %% [markdown]
# ## 3. Every model under every lens, calibrated
#
# Each metric's mean per subgroup as (u − b) / (r − b), between the mean-response baseline b
# and the split-half replicate r (chapter 20, `calibrated.csv`): 1 is as good as
# repeating the experiment, 0 no better than predicting the mean response, below 0 worse than
# it. Scores are not clipped, so a model worse than the mean shows as negative. Means over
# seeds ± their standard deviation.

# %%
lenses = results.lenses
shown = lenses.display()
with pd.option_context("display.max_rows", len(shown) + 1):
    display(shown)

# %%
calibrated = pd.read_csv(pipeline.folder("metrics") / "calibrated.csv")
fig = plots.calibrated_heatmap(calibrated, lenses.metrics)
files.atomic_savefig(fig, own / "calibrated_lenses.png")
plt.show()
findings = lenses.findings(reference_model)
display(Markdown("\n".join(f"- {sentence}" for sentence in findings)))

# %% [markdown]
# ## 4. What this data can show
#
# The verdicts above are only as general as the data behind them. On simulated data, the
# simulator's settings decide which kind of gene prior has signal, and the GI truth is as good as
# the cells make it; both are stated here from this build's files.

# %%
prepared = pipeline.folder("prepared_data")
_, simulation = data.read_prepared(prepared, truth_only=True)
fidelity = summary.read_optional(pipeline.folder("gi") / "truth_fidelity.csv")
caveats = summary.data_caveats(
    None if simulation is None else simulation.uns["config"],
    fidelity, simulator.PRIOR_SIGNAL_KNOBS)
display(Markdown("\n".join(f"- {sentence}" for sentence in caveats)))

# %% [markdown]
# ## What we found
#
# The sentences above are generated from this build's numbers, so they stay true when the book
# is rebuilt with other data, seeds or profiles. Read them with two cautions: a model trained
# once (the baselines are deterministic) is judged against the reference's seed spread only, and
# a difference inside the spread is not evidence that the models differ.
