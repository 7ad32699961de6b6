"""How much of a GEARS run's validation error is BatchNorm's running statistics?

GEARS validates in eval mode, where its BatchNorm layers use running statistics that follow the
latest training batches (momentum 0.1: about the last 20). Once the learning rate is near zero
the weights stop moving, yet the validation error still jumps from check to check. This script
takes the weights each GEARS run of the book kept (chapter 11's ``model.pt``, the best
validation check), re-estimates the running statistics from ``--draws`` different sequences of
``--batches`` random training batches (forward passes in training mode, no weight changes,
cells paired with random control cells as in training) and validates each: the spread is what
BatchNorm alone does to the validation error of fixed weights, and the kept check's value
against the draws' mean is what picking the best of many noisy checks gains.

    python benchmarks/batchnorm_noise.py                 # the book's results (make book first)
    python benchmarks/batchnorm_noise.py --draws 16

Prints one row per seed and writes ``benchmarks/batchnorm_noise.csv`` (one row per draw).
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from helpers import files, pipeline, roots
from helpers.conditions import CONTROL
from helpers.models.gears import GearsSetup, build_model, condition_means, validation_mse

OUT = Path(__file__).resolve().parent / "batchnorm_noise.csv"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--draws", type=int, default=8, help="batch sequences per run")
    parser.add_argument("--batches", type=int, default=40, help="training batches per sequence")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # as the book trains
    setup = GearsSetup.load(args.profile)
    data, split, config = setup.data, setup.prepared.split, setup.config
    truth = condition_means(data, split.val)
    in_train = np.flatnonzero(np.isin(data.conditions, split.train))
    control = np.flatnonzero(data.conditions == CONTROL)
    expression = torch.from_numpy(data.X)
    rows = []
    for seed in args.seeds:
        kept_model = build_model(data, config)
        kept_model.load_state_dict(torch.load(roots.step_dir(pipeline.TRAIN_GEARS) / f"seed={seed}" / "model.pt"))
        kept = validation_mse(kept_model, data, split.val, seed, truth)[0]
        for draw in range(args.draws):
            model = copy.deepcopy(kept_model).train()
            rng = np.random.default_rng([seed, draw])
            with torch.no_grad():  # the statistics move, the weights do not
                for _ in range(args.batches):
                    cells = rng.choice(in_train, config.batch_size, replace=False)
                    names = data.conditions[cells]
                    inputs = np.where(names == CONTROL, cells, rng.choice(control, len(cells)))
                    model(expression[inputs], [data.pert_nodes(c) for c in names])
            rows.append({"seed": seed, "draw": draw, "kept_check": kept,
                         "val_mse_top20_de": validation_mse(model, data, split.val, seed, truth)[0]})
    table = pd.DataFrame(rows)
    files.atomic_write_csv(table, args.out)
    by_seed = table.groupby("seed").agg(kept_check=("kept_check", "first"), mean=("val_mse_top20_de", "mean"),
                                        sd=("val_mse_top20_de", "std"), low=("val_mse_top20_de", "min"),
                                        high=("val_mse_top20_de", "max"))
    by_seed["sd_percent"] = 100 * by_seed["sd"] / by_seed["mean"]
    by_seed["kept_below_mean_percent"] = 100 * (1 - by_seed["kept_check"] / by_seed["mean"])
    print(by_seed.round(4).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
