"""Learning curves far past the default budget: where does each model reach its plateau?

Trains GEARS and GEARS + each prior on the book's prepared data (results of chapters 01 and 13,
so run ``make book`` or those chapters first) for many more steps than the default profile,
with the default profile's learning-rate schedule, validating every ``--eval-every`` steps, and
reports per run its plateau (lowest validation top-20-DE MSE), the step at which it came within
2% of it, and whether the default budget is at or past that step.

    python benchmarks/learning_curves.py                    # GEARS, + GeneMamba, + GO-SVD; seeds 1, 2
    python benchmarks/learning_curves.py --steps 8000 --jobs 2
    python benchmarks/learning_curves.py --genemamba        # GeneMamba pretraining: loss and prior effect

``--genemamba`` pretrains GeneMamba (the book's chapter 12 settings) far past the default steps,
records its held-out loss on cells it never trains on, and at each checkpoint trains GEARS +
that checkpoint's prior for the default GEARS budget (one seed), so the prior's validation
effect is read against pretraining steps.

Curves go to ``results/benchmarks/`` (CSV + figure); the summary is printed. The linear
baseline has no budget (a closed-form ridge fit), so it has no curve.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import files, pipeline, profiles, roots
from helpers.models.registry import PRIOR_PREFIX, prior_model_name
from helpers.models.torch_runtime import available_cores

STEP = "benchmarks"


def _load(prior: str | None, target: str):
    from helpers import data, reference, splits
    from helpers.models.gears import GearsData, prior_tensors
    from helpers.models.gears_module import GearsConfig

    prepared = pipeline.folder("prepared_data")
    adata, _ = data.read_prepared(prepared)
    split = splits.SimulationSplit.from_json(prepared / "split.json")
    config = GearsConfig()
    gears_data = GearsData.from_adata(adata, split, pd.read_csv(prepared / "go_graph.csv"), config)
    extra = {}
    if prior is not None:
        table = pd.read_parquet(prior if prior.endswith(".parquet")
                                else pipeline.folder("embeddings") / f"{prior}.parquet")
        extra = prior_tensors(table, gears_data, reference.aliases(), target)
    return gears_data, split, config, extra


def gears_curve(model: str, prior: str | None, target: str, seed: int, steps: int, halving: int | None,
                eval_every: int, threads: int) -> pd.DataFrame:
    """One GEARS run's learning curve (runs in a worker process)."""
    import torch

    from helpers.models.gears import TrainingBudget, train_gears

    torch.set_num_threads(threads)
    gears_data, split, config, extra = _load(prior, target)
    _, history = train_gears(gears_data, split, config, TrainingBudget(steps, halving, eval_every), seed,
                             device="cpu", progress=False, **extra)
    return history.assign(model=model, seed=seed)


def run_gears(args: argparse.Namespace) -> None:
    from helpers import runs

    default = profiles.get_profile("default")
    halving = default.gears_lr_halving_steps if args.lr_halving_steps is None else args.lr_halving_steps
    jobs = [(m, None if m == "gears" else m.removeprefix(PRIOR_PREFIX), args.prior_target, seed, args.steps,
             halving, args.eval_every, max(1, available_cores() // args.jobs))
            for m in args.models for seed in args.seeds]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        curves = pd.concat(pool.map(gears_curve, *zip(*jobs)), ignore_index=True)
    print(f"{len(jobs)} runs of {args.steps} steps in {time.perf_counter() - start:.0f} s ({args.jobs} at a time)")
    path = roots.step_dir(STEP) / "gears_learning_curves.csv"
    data_run = runs.parameters_fingerprint(pipeline.PREPARE_DATA)
    curves = curves.assign(lr_halving_steps=halving, prior_target=args.prior_target, data_run=data_run)
    if path.is_file():  # keep the curves of models not rerun this time, if made on the same data
        earlier = pd.read_csv(path)
        same_data = earlier.get("data_run", pd.Series("", index=earlier.index)) == data_run
        curves = pd.concat([earlier[same_data & ~earlier.model.isin(args.models)], curves], ignore_index=True)
    files.atomic_write_csv(curves, path)
    summarise_gears()


def summarise_gears() -> None:
    """Plateau table and figure of every curve in ``gears_learning_curves.csv``."""
    from helpers import convergence

    default = profiles.get_profile("default")
    out = roots.step_dir(STEP)
    curves = pd.read_csv(out / "gears_learning_curves.csv")
    table = convergence.convergence_table(curves, ["model", "seed"])
    table["default_steps"] = default.gears_steps
    table["default_at_or_past_plateau"] = table.step_within_tolerance <= default.gears_steps
    files.atomic_write_csv(table, out / "gears_plateau.csv")
    print(table.round(4).to_string(index=False))
    _plot_gears(curves, table, default.gears_steps, out / "gears_learning_curves.png")


def _plot_gears(curves: pd.DataFrame, table: pd.DataFrame, budget: int, path: Path) -> None:
    import matplotlib.pyplot as plt

    from helpers import plots

    fig = plots.learning_curves(curves, table, budget=budget)
    files.atomic_savefig(fig, path)
    plt.close(fig)


def run_genemamba(args: argparse.Namespace) -> None:
    from helpers import convergence, data, graphs, splits
    from helpers.models import genemamba as gm

    default = profiles.get_profile("default")
    out = roots.step_dir(STEP)
    prepared = pipeline.folder("prepared_data")
    adata, _ = data.read_prepared(prepared)
    split = splits.SimulationSplit.from_json(prepared / "split.json")
    genes = adata.var["gene_name"].astype(str).tolist()
    keep = gm.pretraining_cells(adata.obs["condition"], split.train)
    X = adata.X[keep]
    X = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
    tokens = gm.rank_tokens(X, np.arange(len(genes)) + gm.N_SPECIAL_TOKENS, default.context_length)
    held_out = gm.split_held_out(len(tokens))
    pairs_table = graphs.coexpression_edges(X, genes, k=1, threshold=0.2)
    pairs_table = pairs_table[pairs_table.source != pairs_table.target]
    position = {g: i for i, g in enumerate(genes)}
    coexpressed = np.column_stack([pairs_table.target.map(position), pairs_table.source.map(position)])
    config = gm.GeneMambaConfig(vocab_size=len(genes) + gm.N_SPECIAL_TOKENS, d_model=128, n_layers=2)
    model = gm.GeneMamba(config, seed=0)
    checkpoints = set(args.checkpoints) | {args.pretrain_steps}
    rows, start = [], time.perf_counter()
    print(f"GeneMamba: {len(tokens) - held_out.sum()} training cells, {held_out.sum()} held out", flush=True)

    def keep_checkpoint(step: int, model: gm.GeneMamba) -> None:
        if step in checkpoints:
            path = out / f"genemamba_step={step}.parquet"
            files.atomic_write(path, gm.gene_embedding_table(model, genes).to_parquet)
            rows.append({"pretrain_steps": step, "prior": str(path)})
            print(f"GeneMamba step {step} ({time.perf_counter() - start:.0f} s)", flush=True)

    losses = gm.pretrain(model, tokens[~held_out], coexpressed, args.pretrain_steps, 8, seed=0,
                         progress=False, held_out=tokens[held_out], eval_every=args.eval_every,
                         on_eval=keep_checkpoint)
    held = losses.dropna(subset=["held_out_lm_loss"]).set_index("step").held_out_lm_loss
    for row in rows:
        row["held_out_lm_loss"] = float(held.loc[row["pretrain_steps"]])
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        threads = max(1, available_cores() // args.jobs)
        jobs = [(prior_model_name("genemamba"), row["prior"], args.prior_target, args.seeds[0], args.gears_steps or default.gears_steps,
                 default.gears_lr_halving_steps, default.gears_eval_every, threads) for row in rows]
        curves = list(pool.map(gears_curve, *zip(*jobs)))
    for row, curve in zip(rows, curves):
        row["gears_val_mse_top20_de"] = float(curve.val_mse_top20_de.min())
    table = pd.DataFrame(rows).drop(columns="prior")
    curve = held.reset_index().assign(model="genemamba", seed=0)
    plateau = convergence.convergence_table(curve, ["model", "seed"], error="held_out_lm_loss",
                                          window=1)  # one fixed set of cells: no check-to-check noise
    table["held_out_within_2pct_of_plateau"] = table.held_out_lm_loss <= plateau.plateau.item() * (1 + convergence.TOLERANCE)
    table["default_pretrain_steps"] = default.pretrain_steps
    files.atomic_write_csv(losses, out / "genemamba_pretraining_loss.csv")
    files.atomic_write_csv(table, out / "genemamba_plateau.csv")
    print(plateau.round(4).to_string(index=False))
    print(table.round(4).to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["gears", prior_model_name("genemamba"), prior_model_name("go_svd")])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--steps", type=int, default=7000, help="GEARS steps per run (far past the default)")
    parser.add_argument("--lr-halving-steps", type=int, default=None, help="default: the default profile's")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--prior-target", default="both", help="where priors enter GEARS")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (each gets cores / jobs threads)")
    parser.add_argument("--summarise", action="store_true", help="only redo the table and figure from the CSV")
    parser.add_argument("--genemamba", action="store_true", help="GeneMamba pretraining curve instead")
    parser.add_argument("--pretrain-steps", type=int, default=3000)
    parser.add_argument("--gears-steps", type=int, default=None,
                        help="GEARS steps per checkpoint's prior (default: the default profile's)")
    parser.add_argument("--checkpoints", nargs="+", type=int, default=[250, 1000],
                        help="pretraining steps whose prior GEARS is trained with (besides the last)")
    args = parser.parse_args()
    from helpers.models.torch_runtime import thread_environment

    os.environ.update(thread_environment())  # before any worker starts its OpenMP runtime
    if args.summarise:
        summarise_gears()
    else:
        (run_genemamba if args.genemamba else run_gears)(args)


if __name__ == "__main__":
    main()
