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
# # Training GEARS with gene-embedding priors
#
# In this notebook we train GEARS with each fixed gene embedding of the previous chapter plugged
# in, the way scELMo plugged language-model embeddings into GEARS: the fixed vectors pass
# through a trainable linear map to GEARS' hidden size and are added to GEARS' own trainable
# embedding (which thereby becomes a residual); genes without a vector get zeros. Everything
# else (data, split, graphs, training, seeds) is exactly the GEARS chapter's, so any difference
# in the evaluation chapter is the prior's doing.
#
# Where the prior enters is a parameter: the gene embedding (`"gene"`: every gene of the
# expression matrix), the perturbation embedding (`"perturbation"`: the GO-graph nodes GEARS
# perturbs), or `"both"`.

# %% tags=["parameters"]
profile = "default"  # 'quick', 'default' or 'full'
prior_names = None  # None: every prior the embeddings chapter built, e.g. ['go_svd']
prior_target = "gene"  # 'gene', 'perturbation' or 'both'
seeds = None  # None: the seeds of the profile
epochs = None  # None: the epochs of the profile
cells_per_epoch = None  # None: from the profile
device = "auto"  # 'auto' means CUDA when present, else CPU
force = False  # retrain even if predictions for these parameters exist

# %%
import hashlib

import pandas as pd
import torch
from IPython.display import display

from helpers import data, predictions, reference, runs, splits
from helpers.conditions import CONTROL
from helpers.models import priors
from helpers.models.gears import GearsData, predict_means, train_gears
from helpers.models.gears_module import GearsConfig

STEP = "14_train_gears_priors"
EMBEDDINGS = runs.results_root() / "13_gene_embeddings"
settings = runs.resolve_parameters(profile, seeds=seeds, epochs=epochs, cells_per_epoch=cells_per_epoch)
if prior_target not in priors.PRIOR_TARGETS:
    raise ValueError(f"prior_target must be one of {priors.PRIOR_TARGETS}, got {prior_target!r}")
available = sorted(p.stem for p in EMBEDDINGS.glob("*.parquet"))
names = available if prior_names is None else list(prior_names)
missing = sorted(set(names) - set(available))
if missing:
    raise FileNotFoundError(f"no embeddings for {missing} in {EMBEDDINGS}; built: {available}. "
                            "Run notebooks/13_gene_embeddings.py (with embedding_file for 'file')")
config = GearsConfig()
prepared = runs.results_root() / data.PREPARE_STEP
adata, _ = data.read_prepared(prepared)
split = splits.SimulationSplit.from_json(prepared / "split.json")
gears_data = GearsData.from_adata(adata, split, pd.read_csv(prepared / "go_graph.csv"), config)
targets = [c for c in split.train + split.val + split.test if c != CONTROL]
print(f"priors {names}, entering the {prior_target} embedding; seeds {settings.seeds}")

# %% [markdown]
# ## 1. Align each prior to GEARS' genes and GO-graph nodes

# %%
def prior_matrices(name: str) -> tuple[torch.Tensor | None, torch.Tensor | None, dict]:
    table = pd.read_parquet(EMBEDDINGS / f"{name}.parquet")
    aliases = reference.aliases()
    gene, gene_report = priors.align_embeddings(table, gears_data.genes, aliases)
    pert, pert_report = priors.align_embeddings(table, gears_data.pert_names, aliases)
    found = (table.abs().sum(axis=1) > 0)
    counts = {"genes_with_vector": int(found.reindex(gene_report.matched_as.dropna()).sum()),
              "genes": len(gears_data.genes),
              "graph_nodes_with_vector": int(found.reindex(pert_report.matched_as.dropna()).sum()),
              "graph_nodes": len(gears_data.pert_names)}
    use_gene, use_pert = prior_target in ("gene", "both"), prior_target in ("perturbation", "both")
    return (torch.from_numpy(gene) if use_gene else None, torch.from_numpy(pert) if use_pert else None, counts)


aligned = {name: prior_matrices(name) for name in names}
display(pd.DataFrame({name: counts for name, (_, _, counts) in aligned.items()}).T)

# %% [markdown]
# ## 2. Train GEARS + prior per seed

# %%
histories = []
for name in names:
    model_name = f"gears+{name}"
    gene_prior, pert_prior, _ = aligned[name]
    for seed in settings.seeds:
        run_name = f"{STEP}/{model_name}/seed={seed}"
        parameters = {"data_run": (prepared / "run.json").read_text(),
                      "prior_sha256": hashlib.sha256((EMBEDDINGS / f"{name}.parquet").read_bytes()).hexdigest(),
                      "config": config,
                      "prior_target": prior_target, "epochs": settings.epochs,
                      "cells_per_epoch": settings.cells_per_epoch, "seed": seed}
        if not force and runs.is_cached(run_name, parameters, ["history.csv"]) \
                and predictions.prediction_path(model_name, seed).is_file():
            histories.append(pd.read_csv(runs.step_dir(run_name) / "history.csv"))
            print(f"{model_name} seed {seed}: reused from cache")
            continue
        model, history = train_gears(gears_data, split, config, settings.epochs, seed, device,
                                     cells_per_epoch=settings.cells_per_epoch,
                                     gene_prior=gene_prior, pert_prior=pert_prior)
        runs.atomic_write(runs.step_dir(run_name) / "model.pt", lambda p: torch.save(model.state_dict(), p))
        predicted = predict_means(model, gears_data, targets, seed, config.n_control_samples)
        predictions.write_predictions(model_name, seed, predicted, runs.parameters_fingerprint(data.PREPARE_STEP),
                                      {"profile": profile, "prior": name, "prior_target": prior_target})
        history = history.assign(model=model_name, seed=seed)
        runs.atomic_write_csv(history, runs.step_dir(run_name) / "history.csv")
        runs.write_run_json(run_name, parameters, ["history.csv"])
        histories.append(history)
history = pd.concat(histories, ignore_index=True)
runs.atomic_write_csv(history, runs.step_dir(STEP) / "training_history.csv")
runs.write_run_json(STEP, {"settings": settings, "priors": names, "prior_target": prior_target},
                    ["training_history.csv"]);
display(history.groupby(["model", "seed"]).val_mse_top20_de.min().unstack().round(4))

# %% [markdown]
# ## What we found
#
# - Each prior trains in the same time as GEARS alone: the projection adds one small linear map.
# - Their validation errors are shown above; the evaluation chapter compares them with GEARS and
#   the baselines on the test subgroups, where the question is whether a prior helps on
#   `combo_seen0` and `unseen_single`, the perturbations GEARS has to extrapolate to.
