"""Where should a gene-embedding prior enter GEARS: its gene embedding, its perturbation
embedding or both?

Chapter 14 used to answer this on every build by training the three candidates with GeneMamba's
prior on the first seed and keeping the lowest validation error; the pick flipped between
builds within seed noise, for two GEARS runs the book used for nothing else. This benchmark
asks the question once, on several seeds: for each seed it runs chapter 14 with the three
candidate targets (``prior_targets``), that seed alone and the selection prior alone, after the
chapters it reads (01, 12, 13; reused where they ran), and collects each candidate's best
validation MSE on the top-20 DE genes (the state GEARS keeps; the test set plays no part) and
whether the run reached its plateau (chapter 14's ``convergence.csv``). It writes
``benchmarks/prior_target_selection.csv`` (one row per seed × target) and
``benchmarks/prior_target_selection.json`` (profile, seeds, the data step's fingerprint and the
data's content signature, commit); chapter 14 enters every prior where this table's seed mean is lowest
(``helpers.models.priors.choose_prior_target``) and shows the evidence.

    python benchmarks/prior_target.py                      # default profile, seeds 1 2 3
    python benchmarks/prior_target.py --profile quick --seeds 1 --root results/benchmarks/smoke \\
        --out results/benchmarks/smoke                     # smoke run, a few minutes

The chapters run into ``--root`` (default ``results/benchmarks/prior_target``, so the book's
own results are left alone; give the book's results root to reuse its data, GeneMamba and
embeddings, then rerun chapter 14 there, whose tables this overwrites). Time on a 2-core
machine at the default profile: chapters 01, 12 and 13 about 15 minutes when they have not run,
then about 10 minutes a seed (three GEARS runs, two side by side).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from helpers import files, pipeline
from helpers.models.priors import PRIOR_TARGETS, choose_prior_target
from helpers.reference import REPO_ROOT

STEP = pipeline.TRAIN_GEARS_PRIORS
READS = (pipeline.PREPARE_DATA, pipeline.PRETRAIN_GENEMAMBA, pipeline.GENE_EMBEDDINGS)


def run_seed(seed: int, root: Path, args: argparse.Namespace) -> pd.DataFrame:
    """Chapter 14's candidates on one seed: ``prior, target, seed, val_mse_top20_de,
    chosen`` (within the seed) and ``converged``, one row per target."""
    from helpers import book

    parameters = {"profile": args.profile, "prior_names": [args.prior], "selection_prior": args.prior,
                  "prior_targets": list(PRIOR_TARGETS), "seeds": [seed], "selection_seed": seed}
    with tempfile.TemporaryDirectory() as executed, book._environment({"HELPERS_RESULTS_DIR": str(root)}):
        book.execute(STEP, parameters, Path(executed))
    choice = pd.read_csv(root / STEP / "prior_target_selection.csv")
    runs = pd.read_csv(root / STEP / "convergence.csv")
    converged = runs[runs.seed == seed].set_index("target").converged.astype(bool)
    return choice.assign(converged=choice.target.map(converged))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--prior", default="genemamba", help="the prior the candidates train with")
    parser.add_argument("--root", type=Path, default=REPO_ROOT / "results" / "benchmarks" / "prior_target")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks")
    args = parser.parse_args(argv)
    from helpers import book, data, runs

    start = time.perf_counter()
    commit = runs.git_commit()  # before this run's own table makes the working tree differ
    with tempfile.TemporaryDirectory() as executed, book._environment({"HELPERS_RESULTS_DIR": str(args.root)}):
        # as `make book` runs them, so that a book's results root is reused as it stands
        only = [part for name in READS for part in ("--only", name)]
        if book.main(["--profile", args.profile, *only], executed_dir=Path(executed)) != 0:
            return 1
        data_run = runs.parameters_fingerprint(pipeline.PREPARE_DATA)
        data_content = data.load_prepared().content_signature
    table = []
    for seed in args.seeds:
        print(f"seed {seed}: the three candidates", flush=True)
        table.append(run_seed(seed, args.root, args))
    table = pd.concat(table, ignore_index=True)[
        ["prior", "target", "seed", "val_mse_top20_de", "chosen", "converged"]]
    args.out.mkdir(parents=True, exist_ok=True)
    files.atomic_write_csv(table, args.out / "prior_target_selection.csv")
    about = {"profile": args.profile, "seeds": args.seeds, "prior": args.prior, "data_run": data_run,
             "data_content": data_content, "commit": commit,
             "minutes": round((time.perf_counter() - start) / 60, 1)}
    files.atomic_write_text(args.out / "prior_target_selection.json", json.dumps(about, indent=2) + "\n")
    summary = table.groupby("target").val_mse_top20_de.agg(["mean", "std"]).round(4)
    print(summary.to_string())
    print(choose_prior_target(table).round(4).to_string(index=False))
    print(f"every run at its plateau: {bool(table.converged.all())}; wrote {args.out / 'prior_target_selection.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
