# %% [markdown]
# # Training GEARS with gene-embedding priors
#
# In this notebook we train GEARS with each fixed gene embedding of the previous chapter plugged
# in, the way scELMo plugged language-model embeddings into GEARS: the fixed vectors pass
# through a trainable linear map to GEARS' hidden size and are added to GEARS' own trainable
# embedding (which thereby becomes a residual); genes without a vector get zeros. Everything
# else (data, split, graphs, training, seeds) is exactly the GEARS chapter's, so any difference
# in the evaluation chapter is the prior's doing.
#
# Where the prior enters is the question of section 2: the gene embedding (`"gene"`: every gene
# of the expression matrix), the perturbation embedding (`"perturbation"`: the GO-graph nodes
# GEARS perturbs) or `"both"`. It was asked once, on several seeds (`benchmarks/prior_target.py`:
# each candidate trained with GeneMamba's prior, compared on validation), and every prior enters
# where that benchmark's seed mean is lowest, so priors are compared entering GEARS at the same
# place and no run is trained that the book does not use; the test set plays no part. Given a
# list of candidates instead, the chapter trains them on the first seed and picks on validation.

# %% tags=["parameters"]
profile = "default"  # 'quick', 'default', 'norman_cpu' or 'full'
prior_names = None  # None: every prior the embeddings chapter built, e.g. ['go_svd']
# None: where benchmarks/prior_target_selection.csv chose; or the candidates
# to train and pick from on validation, e.g. ["gene", "both"]; one fixes it
prior_targets = None
# the prior the candidates are compared with (if built; else the first prior)
selection_prior = "genemamba"
seeds = None  # None: the seeds of the profile
selection_seed = None  # None: the first seed (the seed the candidates train with)
steps = None  # None: the profile's GEARS optimisation steps per run
# None: the profile's (the learning rate halves every this many steps)
lr_halving_steps = None
eval_every = None  # None: the profile's (validation every this many steps)
device = "auto"  # 'auto' means CUDA when present, else CPU
# None: the profile's GEARS settings; or overrides, e.g. {"hidden_size": 128}
gears_config = None
force = False  # retrain even if predictions for these parameters exist

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Image, Markdown, display

from helpers import convergence, files, pipeline, plots, predictions, reference
from helpers import roots, runs
from helpers.models import gears, priors, registry
from helpers.models.gears import GearsRun, GearsSetup
from helpers.summary import prior_sweep_markdown, prior_target_findings

STEP = pipeline.TRAIN_GEARS_PRIORS
# the selection prior need not be among the priors trained here (the workflow trains
# one prior per job, after one job has made the choice)
chosen = priors.load_priors(
    pipeline.folder("embeddings"), prior_names, prior_targets, selection_prior
)
names, selector = chosen.names, chosen.selector
runs.forget_run(STEP)  # recorded again once every prior and seed has finished
setup = GearsSetup.load(
    profile, seeds, steps, lr_halving_steps, eval_every, gears_config
)
settings, budget, config = setup.settings, setup.budget, setup.config
prepared = setup.prepared
adata, split = prepared.adata, prepared.split
gears_data, targets = setup.data, setup.targets
if selection_seed is None:
    selection_seed = settings.seeds[0]
print(f"priors {names}; seeds {settings.seeds}; {budget}")

# %% tags=["remove-input"]
# which data this page shows, and the budget
display(Markdown(runs.data_statement(profile)))

# %% [markdown]
# ## 1. Align each prior to GEARS' genes and GO-graph nodes


# %%
nodes, aliases = gears_data.pert_names, reference.aliases()
coverage = {
    name: priors.prior_coverage(table, gears_data.genes, nodes, aliases)
    for name, table in chosen.tables.items()
}
display(pd.DataFrame(coverage).T)


def train_or_reuse(
    jobs: list[tuple[str, str, int]],
) -> list[dict[str, pd.DataFrame]]:
    """History and predicted means of GEARS + prior ``name`` entering ``target``, per
    ``(name, target, seed)``: reused where these exact parameters ran before, else
    trained side by side."""
    cached_runs = []
    for name, target, seed in jobs:
        model = registry.prior_model_name(name)
        key = {
            "data_run": prepared.fingerprint,
            "prior_sha256": chosen.digests[name],
            "config": config,
            "prior_target": target,
            "budget": budget,
            "seed": seed,
            "code": runs.code_digest("helpers.models.gears"),
        }
        run = GearsRun(seed, chosen.tables[name], target, name, model)
        folder = f"{STEP}/{model}/{target}/seed={seed}"
        cached_runs.append(runs.CachedRun(folder, key, run))
    train = gears.trainer(gears_data, split, config, budget, targets, device)
    return runs.reuse_or_compute(
        cached_runs, gears.RUN_OUTPUTS, train, force, "GEARS + prior runs"
    )


# %% [markdown]
# ## 2. Where should the prior enter?
#
# From the benchmark's seeds (by default), or from candidates trained here on the first seed
# with the selection prior (when `prior_targets` lists them): the lowest validation MSE on the
# top-20 DE genes, of the state GEARS keeps (the best on validation).

# %%
selection_runs = None  # the candidates' learning curves, when trained here
if prior_targets is None:
    evidence, about = priors.benchmarked_targets()
    choice = priors.choose_prior_target(evidence)
    display(Markdown(prior_target_findings(evidence, about, prepared.fingerprint,
                                           prepared.content_signature)))
    fig = plots.prior_target_evidence(evidence)
else:
    candidates = [(selector, t, selection_seed) for t in prior_targets]
    selection_runs = pd.concat(
        [run["history.csv"] for run in train_or_reuse(candidates)],
        ignore_index=True,
    )
    choice = priors.target_selection(selection_runs, selection_seed)
    fig = plots.prior_target_comparison(choice)
files.atomic_write_csv(choice, roots.step_dir(STEP) / "prior_target_selection.csv")
files.atomic_savefig(fig, roots.step_dir(STEP) / "prior_target_selection.png")
plt.show()
target = choice.query("chosen").target.item()
display(choice.round(4))
print(f"every prior enters GEARS' {target} embedding")

# %% [markdown]
# ## 3. Train GEARS + each prior on every seed, entering where validation chose

# %%
histories = []
final_jobs = [(name, target, seed) for name in names for seed in settings.seeds]
for (name, _, seed), result in zip(final_jobs, train_or_reuse(final_jobs)):
    about = {"profile": profile, "prior": name, "prior_target": target}
    predictions.write_predictions(
        registry.prior_model_name(name), seed, result["predicted_means.parquet"],
        prepared.fingerprint, about,
    )
    histories.append(result["history.csv"])
history = pd.concat(histories, ignore_index=True)
files.atomic_write_csv(history, roots.step_dir(STEP) / "training_history.csv")
record = {"settings": settings, "priors": names, "prior_targets": prior_targets,
          "selection_prior": selector, "chosen_target": target}
runs.write_run_json(
    STEP, record, ["training_history.csv", "prior_target_selection.csv"]
)
# %% [markdown]
# ## 4. Did every run reach its plateau?
#
# As in the GEARS chapter: validation error against steps, the plateau dashed, converged when
# the last quarter of training improved the best error by less than 2%.

# %%
every_run = pd.concat([selection_runs, history], ignore_index=True).drop_duplicates(
    ["model", "target", "seed", "step"]
)  # concat skips a None
by = ["model", "target", "seed"]
report = convergence.report(
    every_run, by, roots.step_dir(STEP), budget.steps, "GEARS + prior", drawn=history
)
plt.show()
display(report.table.set_index(by).round(4))
display(Markdown(report.sentence))

# %% [markdown]
# ## 5. Does the verdict depend on how much GO predicts in the data?
#
# How much a gene's GO annotations predict its single-gene effect is a setting of the
# simulator: effects follow each gene's place on Norman's GI map (which itself follows GO) and
# are smoothed over GO neighbours (`go_weight`), so a GO-based prior may help here by
# construction. `benchmarks/prior_sensitivity.py` reruns the chain from the data to the
# evaluation with no GO signal (`none`: map places dealt out at random, no smoothing), the
# default and six times the default smoothing (`strong`), measures how far each data set's
# singles follow GO (as chapter 01 measures it on Norman's screen) and each prior's gain over
# GEARS.

# %% tags=["hide-input"]
sweep = reference.REPO_ROOT / "benchmarks" / "prior_sensitivity.csv"
statistics = pipeline.folder("prepared_data") / "similarity_statistics.csv"
display(Markdown(prior_sweep_markdown(sweep, statistics, reference.REPO_ROOT)))
if sweep.is_file() and sweep.with_suffix(".png").is_file():
    display(Image(filename=str(sweep.with_suffix(".png"))))

# %% [markdown]
# ## What we found
#
# The sentences of sections 2 and 4 and their tables are computed from the benchmark's table and
# this build's runs: where the priors enter and how clearly the seeds decide it, and whether
# every run trained to its plateau. Whether a prior helps on `combo_seen0` and `unseen_single`,
# the perturbations GEARS has to extrapolate to, is the evaluation chapter's question; section 5
# says how that answer moves with the GO signal the simulator puts in the data, once its sweep
# has been run.
