# %% [markdown]
# # Training GEARS
#
# In this notebook we train GEARS (Roohani, Huang & Leskovec 2023) on the training conditions of
# GEARS' simulation split, once per seed, and store its predictions for every condition.
#
# GEARS predicts the expression of a control cell after perturbing one or two genes. A gene
# embedding, refined by a graph network over the gene co-expression graph, is combined with a
# perturbation embedding learned on the Gene Ontology graph (so a gene never perturbed in
# training borrows from its GO neighbours), then decoded gene by gene. It is trained with the
# mean 4th-power error plus a direction term, and the state with the lowest validation error on
# the top-20 DE genes is kept.
#
# **How long it trains.** cell-gears trains 20 epochs (passes over all training cells, 32 cells a
# step) with Adam at a learning rate of 10⁻³, halved after every epoch, and keeps the epoch that
# did best on validation. Here the budget is a number of optimisation steps on the same schedule:
# the learning rate halves after every epoch of this data's training cells, or every
# `lr_halving_steps` steps when the profile sets it, and validation runs every `eval_every` steps.
# A smaller budget truncates a run, it never reshapes it. The default profile halves every 278
# steps (an epoch of the 50-cell conditions its learning curves were measured on,
# `benchmarks/learning_curves.py`, `benchmarks/RESULTS.md`), so that its training time does not
# grow with Norman's cell counts; the table below states how that compares with cell-gears'
# schedule on this data, and section 3 checks every run's convergence in this build.
#
# By default we run `helpers`' dense engine, which is cell-gears 0.1.2's model computed without
# repeating the gene embeddings for every cell of a batch; a test checks that it gives
# cell-gears' outputs and training step to 1e-5. `engine="cell-gears"` runs the real package.

# %% tags=["parameters"]
profile = "default"  # 'quick', 'default', 'norman_cpu' or 'full'
seeds = None  # None: the seeds of the profile, e.g. [1, 2, 3]
steps = None  # None: the profile's optimisation steps per run, e.g. 3000
# None: the profile's (the learning rate halves every this many steps)
lr_halving_steps = None
# None: the profile's (validation every this many steps: the learning curve)
eval_every = None
device = "auto"  # 'auto' means CUDA when present, else CPU
# None: the profile's GEARS settings; or overrides, e.g. {"hidden_size": 128}
gears_config = None
engine = "dense"  # 'dense' (helpers) or 'cell-gears' (the reference package)
force = False  # retrain even if predictions for these parameters exist

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from helpers import convergence, files, pipeline, predictions, roots, runs
from helpers.models import cell_gears, gears
from helpers.models.gears import GearsRun, GearsSetup, steps_per_epoch
from helpers.models.torch_runtime import resolve_device

STEP, MODEL = pipeline.TRAIN_GEARS, "gears"
if engine not in ("dense", "cell-gears"):
    raise ValueError(f"engine must be 'dense' or 'cell-gears', got {engine!r}")
setup = GearsSetup.load(
    profile, seeds, steps, lr_halving_steps, eval_every, gears_config
)
settings, budget, config = setup.settings, setup.budget, setup.config
prepared = setup.prepared
out = roots.step_dir(STEP)
runs.forget_run(
    STEP
)  # this step's record is rewritten only once every seed has finished
print(f"device: {resolve_device(device)}; seeds {settings.seeds}; {budget}")

# %% tags=["remove-input"]
# which data this page shows, and the budget
display(Markdown(runs.data_statement(profile)))

# %% [markdown]
# ## 1. Data, graphs and split
#
# The co-expression graph links each gene to its 20 most correlated genes (|r| > 0.4) over the
# control and training single-perturbation cells; the GO graph is the data chapter's.

# %%
adata = prepared.adata
split = prepared.split
go_edges = prepared.go_graph
gears_data, targets = setup.data, setup.targets
epoch_steps = steps_per_epoch(gears_data, split, config.batch_size)
display(
    pd.Series(
        {
            "genes": len(gears_data.genes),
            "GO-graph nodes": len(gears_data.pert_names),
            "co-expression edges": gears_data.coexpress_graph[0].shape[1],
            "GO edges": gears_data.go_graph[0].shape[1],
            "training cells": int(
                pd.Series(gears_data.conditions).isin(split.train).sum()
            ),
            "steps per epoch (this data)": epoch_steps,
            "optimisation steps per run": budget.steps,
            "epochs per run (this data)": round(budget.steps / epoch_steps, 1),
            "learning rate halves every (steps)": budget.lr_halving_steps
            or epoch_steps,
        },
        name="value",
    )
)
display(Markdown(budget.schedule(epoch_steps)))

# %% [markdown]
# ## 2. Train one model per seed
#
# Checkpoints, training curves and predictions are cached under `results/`; rerunning with the
# same parameters reuses them.


# %%
def parameters_of(seed: int) -> dict:  # what a run's cached results are keyed on
    return {
        "data_run": prepared.fingerprint,
        "config": config,
        "engine": engine,
        "budget": budget,
        "seed": seed,
        # a change to the code it trains with retrains it
        "code": runs.code_digest(
            "helpers.models.gears", "helpers.models.cell_gears"
        ),
    }


jobs = [
    runs.CachedRun(f"{STEP}/seed={seed}", parameters_of(seed), GearsRun(seed))
    for seed in settings.seeds
]
if engine == "dense":  # independent runs train side by side, one per core
    train = gears.trainer(gears_data, split, config, budget, targets, device)
else:  # cell-gears runs whole epochs with its own schedule: the budget rounded up
    train = cell_gears.trainer(
        adata,
        split,
        go_edges,
        config,
        -(-budget.steps // epoch_steps),
        device,
        targets,
    )
trained = runs.reuse_or_compute(jobs, gears.RUN_OUTPUTS, train, force, "GEARS runs")
for seed, result in zip(settings.seeds, trained):
    predictions.write_predictions(
        MODEL,
        seed,
        result["predicted_means.parquet"],
        prepared.fingerprint,
        {"profile": profile, "engine": engine},
    )
history = pd.concat([result["history.csv"] for result in trained], ignore_index=True)
files.atomic_write_csv(history, out / "training_history.csv")
runs.write_run_json(
    STEP,
    {"settings": settings, "engine": engine, "device": device},
    ["training_history.csv"],
)
# %% [markdown]
# ## 3. Did every run reach its plateau?
#
# Validation error against optimisation steps, one line per seed. A run's plateau (dashed) is
# the lowest error it reached; it *converged* when its last quarter of training improved that
# by less than 2% (the shaded band), so more steps of this schedule would not change the
# comparison. The model kept is the one at the lowest point.

# %%
# cell-gears prints its curves instead of returning them
if "val_mse_top20_de" in history:
    report = convergence.report(
        history, ["model", "seed"], out, budget.steps, "GEARS"
    )
    plt.show()
    display(
        report.table.set_index("seed")
        .drop(columns="model")
        .assign(minutes=history.groupby("seed").seconds.sum() / 60)
        .round(4)
    )
    display(Markdown(report.sentence))

# %% [markdown]
# ## What we found
#
# The sentence above is computed from this build's learning curves. How GEARS compares with the
# baselines on the test subgroups is the subject of the evaluation chapter; `benchmarks/gears_speed.py`
# times the dense engine against cell-gears.
