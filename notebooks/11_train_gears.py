# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

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
# mean 4th-power error plus a direction term, and the epoch with the lowest validation error on
# the top-20 DE genes is kept.
#
# By default we run `helpers`' dense engine, which is cell-gears 0.1.2's model computed without
# repeating the gene embeddings for every cell of a batch; a test checks that it gives
# cell-gears' outputs and training step to 1e-5. `engine="cell-gears"` runs the real package.

# %% tags=["parameters"]
profile = "default"  # 'quick', 'default' or 'full'
seeds = None  # None: the seeds of the profile, e.g. [1, 2, 3]
epochs = None  # None: the epochs of the profile
cells_per_epoch = None  # None: from the profile; training cells drawn per epoch
device = "auto"  # 'auto' means CUDA when present, else CPU
engine = "dense"  # 'dense' (helpers) or 'cell-gears' (the reference package)
force = False  # retrain even if predictions for these parameters exist

# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import display

from helpers import data, plots, predictions, runs, splits
from helpers.conditions import CONTROL
from helpers.models.gears import GearsData, predict_means, train_gears
from helpers.models.torch_runtime import resolve_device
from helpers.models.gears_module import GearsConfig

STEP, MODEL = "11_train_gears", "gears"
settings = runs.resolve_parameters(profile, seeds=seeds, epochs=epochs, cells_per_epoch=cells_per_epoch)
if engine not in ("dense", "cell-gears"):
    raise ValueError(f"engine must be 'dense' or 'cell-gears', got {engine!r}")
config = GearsConfig()
prepared = runs.results_root() / data.PREPARE_STEP
out = runs.step_dir(STEP)
runs.forget_run(STEP)  # this step's record is rewritten only once every seed has finished
print(f"device: {resolve_device(device)}; seeds {settings.seeds}; {settings.epochs} epochs; "
      f"{settings.cells_per_epoch or 'all'} cells per epoch")

# %% [markdown]
# ## 1. Data, graphs and split
#
# The co-expression graph links each gene to its 20 most correlated genes (|r| > 0.4) over the
# control and training single-perturbation cells; the GO graph is the data chapter's.

# %%
adata, _ = data.read_prepared(prepared)
split = splits.SimulationSplit.from_json(prepared / "split.json")
go_edges = pd.read_csv(prepared / "go_graph.csv")
gears_data = GearsData.from_adata(adata, split, go_edges, config)
targets = [c for c in split.train + split.val + split.test if c != CONTROL]
display(pd.Series({"genes": len(gears_data.genes), "GO-graph nodes": len(gears_data.pert_names),
                   "co-expression edges": gears_data.coexpress_graph[0].shape[1],
                   "GO edges": gears_data.go_graph[0].shape[1],
                   "training cells": int(pd.Series(gears_data.conditions).isin(split.train).sum())},
                  name="value"))

# %% [markdown]
# ## 2. Train one model per seed
#
# Checkpoints, training curves and predictions are cached under `results/`; rerunning with the
# same parameters reuses them.

# %%
histories = []
for seed in settings.seeds:
    parameters = {"data_run": runs.parameters_fingerprint(data.PREPARE_STEP), "config": config, "engine": engine,
                  "epochs": settings.epochs, "cells_per_epoch": settings.cells_per_epoch, "seed": seed}
    run_name = f"{STEP}/seed={seed}"
    checkpoint = f"{MODEL}_seed={seed}.pt"
    if runs.reuse_or_restart(run_name, parameters, ["history.csv"], force) \
            and predictions.prediction_path(MODEL, seed).is_file():
        histories.append(pd.read_csv(runs.step_dir(run_name) / "history.csv"))
        print(f"seed {seed}: reused from cache")
        continue
    if engine == "cell-gears":
        from helpers.models.cell_gears import train_and_predict_cell_gears

        predicted, history = train_and_predict_cell_gears(adata, split, go_edges, config, settings.epochs,
                                                          seed, device, targets, runs.step_dir(run_name))
    else:
        model, history = train_gears(gears_data, split, config, settings.epochs, seed, device,
                                     cells_per_epoch=settings.cells_per_epoch)
        runs.atomic_write(runs.step_dir(run_name) / checkpoint, lambda p: torch.save(model.state_dict(), p))
        predicted = predict_means(model, gears_data, targets, seed, config.n_control_samples)
    predictions.write_predictions(MODEL, seed, predicted, runs.parameters_fingerprint(data.PREPARE_STEP),
                                  {"profile": profile, "engine": engine})
    history = history.assign(model=MODEL, seed=seed)
    runs.atomic_write_csv(history, runs.step_dir(run_name) / "history.csv")
    runs.write_run_json(run_name, parameters, ["history.csv"])
    histories.append(history)
history = pd.concat(histories, ignore_index=True)
runs.atomic_write_csv(history, out / "training_history.csv")
runs.write_run_json(STEP, {"settings": settings, "engine": engine, "device": device}, ["training_history.csv"]);

# %% [markdown]
# ## 3. Training curves

# %%
if "val_mse_top20_de" in history:  # cell-gears prints its curves instead of returning them
    fig = plots.training_curves(history)
    runs.atomic_savefig(fig, out / "training_curves.png")
    plt.show()
    display(history.groupby("seed").agg(best_val_mse_top20_de=("val_mse_top20_de", "min"),
                                        seconds=("seconds", "sum")).round(4))

# %% [markdown]
# ## What we found
#
# - GEARS trains on the CPU in minutes per seed at this profile's size; the dense engine makes
#   that possible (see `benchmarks/gears_speed.py` for its speed against cell-gears).
# - The validation error on the top-20 DE genes falls over the first epochs and the best epoch
#   is kept; how the model compares with the baselines on the test subgroups is the subject of
#   the evaluation chapter.
