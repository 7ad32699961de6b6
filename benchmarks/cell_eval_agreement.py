"""Do our lenses give cell-eval's numbers? Scores a built book's predictions with Arc Institute's
cell-eval 0.8.2 and with ``helpers`` and prints, per metric, the largest difference.

cell-eval cannot share the book's environment (its pdex needs scipy ≥ 1.17, cell-gears < 1.15),
so it runs in a virtual environment of its own, made on first use:

    python benchmarks/cell_eval_agreement.py --setup          # .venv-cell-eval (once)
    python benchmarks/cell_eval_agreement.py                  # results/ of `make book`
    python benchmarks/cell_eval_agreement.py --results /path/to/results --models gears additive

Each model's prediction is exported as cells that all equal its predicted mean, beside the real
control cells (``predictions.cell_eval_anndata(..., cells="mean")``), so cell-eval's pseudobulk
reads exactly the prediction (floored at 0, as cell-eval refuses negative expression; our side
scores the same floored prediction). Where the definitions coincide the numbers must agree to 1e-6:

- ``pearson_delta``, ``mse``, ``mae``: the same, over all genes.
- ``discrimination_score_l1`` = our ``pds`` computed on all genes. cell-eval leaves out a
  perturbation's target only when the condition's name *is* a gene name, so with GEARS' names
  ('A+ctrl', 'A+B') it leaves nothing out; the book's ``pds_all`` leaves the targets out. The
  benchmark compares cell-eval with our PDS on all genes and prints the book's beside it.
- DE overlap and precision differ by definition and are printed side by side only: cell-eval
  calls DE genes on *cells* on both sides (Wilcoxon, BH 5%, ranked by |log2 fold change| of
  expm1 means, top k of each significant list, denominators min(k, #significant)); a model here
  predicts a mean, so the book ranks predicted genes by |change| of the mean and compares them
  with the true top N (overlap) or the true significant genes (precision, Welch t-test).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
CELL_EVAL = "cell-eval==0.8.2"
VENV = REPO / ".venv-cell-eval"
TOLERANCE = 1e-6

# run inside cell-eval's environment: score one exported pair of AnnData files
SCORE = """
import sys, anndata as ad
from cell_eval import MetricsEvaluator
pred, real, out, workdir = sys.argv[1:5]
evaluator = MetricsEvaluator(adata_pred=ad.read_h5ad(pred), adata_real=ad.read_h5ad(real),
                             control_pert="ctrl", pert_col="condition", num_threads=2,
                             outdir=workdir)
results, _ = evaluator.compute(profile="full", write_csv=False,
                               skip_metrics=["clustering_agreement", "pearson_edistance"])
results.write_csv(out)
"""


def setup(python: str) -> None:
    subprocess.run([python, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "--quiet", CELL_EVAL], check=True)
    print(f"cell-eval installed in {VENV}")


def true_means(adata, split) -> tuple[np.ndarray, np.ndarray]:
    """Control's mean and the test perturbations' true means (rows in ``split.test``'s order)."""
    from helpers import metrics
    from helpers.conditions import CONTROL, cells_by_condition

    cells = cells_by_condition(adata)
    return (metrics.mean_expression(cells[CONTROL]),
            np.vstack([metrics.mean_expression(cells[c]) for c in split.test]))


def ours(adata, split, means: pd.DataFrame, truth: tuple[np.ndarray, np.ndarray]) -> pd.DataFrame:
    """The book's numbers for the same predictions, per test perturbation."""
    from helpers import lenses, metrics

    test = list(split.test)
    control_mean, true = truth
    pred = means.loc[test, adata.var_names].to_numpy(float)
    everything = np.ones_like(pred, bool)
    targets_out = ~lenses.target_mask(test, adata.var_names)
    table = pd.DataFrame({
        "pearson_delta": [metrics.pearson(p - control_mean, t - control_mean) for p, t in zip(pred, true)],
        "mse": [metrics.mse(p, t) for p, t in zip(pred, true)],
        "mae": [float(np.mean(np.abs(p - t))) for p, t in zip(pred, true)],
        "discrimination_score_l1": lenses.discrimination_score(pred, true, everything, "l1"),
        "pds_all (book: targets left out)": lenses.discrimination_score(pred, true, targets_out, "l1"),
    }, index=test)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup", action="store_true", help=f"create {VENV.name} with {CELL_EVAL} and stop")
    parser.add_argument("--results", type=Path, default=None, help="a built results folder (default: results/)")
    parser.add_argument("--models", nargs="*", default=None, help="models to compare (default: every stored one)")
    parser.add_argument("--cell-eval-python", default=str(VENV / "bin" / "python"))
    parser.add_argument("--json", type=Path, default=None, help="also write the comparison here")
    args = parser.parse_args(argv)
    if args.setup:
        setup(sys.executable)
        return 0
    if not Path(args.cell_eval_python).is_file():
        parser.error(f"{args.cell_eval_python} does not exist: run with --setup first")
    if args.results is not None:
        os.environ["HELPERS_RESULTS_DIR"] = str(args.results.resolve())
    from helpers import data, predictions

    prepared = data.load_prepared()
    stored = predictions.available_predictions(prepared.fingerprint)
    stored = stored.groupby("model", as_index=False).seed.min()  # one seed per model
    if args.models:
        stored = stored[stored.model.isin(args.models)]
    rows, side_by_side = [], {}
    truth = true_means(prepared.adata, prepared.split)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        for model, seed in stored.itertuples(index=False):
            means = predictions.read_predictions(model, seed)
            pred, real = predictions.cell_eval_anndata(means, prepared.adata, list(prepared.split.test),
                                                       cells="mean")
            pred.write_h5ad(work / "pred.h5ad")
            real.write_h5ad(work / "real.h5ad")
            start = time.perf_counter()
            done = subprocess.run([args.cell_eval_python, "-c", SCORE, str(work / "pred.h5ad"),
                                   str(work / "real.h5ad"), str(work / "scores.csv"), str(work / "cell_eval")],
                                  capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"cell-eval failed on {model} (seed {seed}):\n{done.stderr[-3000:]}")
            seconds = time.perf_counter() - start
            theirs = pd.read_csv(work / "scores.csv").set_index("perturbation")
            mine = ours(prepared.adata, prepared.split, means.clip(lower=0.0), truth)
            theirs = theirs.loc[mine.index]
            for metric in ("pearson_delta", "mse", "mae", "discrimination_score_l1"):
                difference = (mine[metric] - theirs[metric]).abs()
                # a value one side defines and the other does not is a disagreement too
                one_sided = int((mine[metric].isna() != theirs[metric].isna()).sum())
                rows.append({"model": model, "seed": seed, "metric": metric, "n": int(difference.notna().sum()),
                             "one_sided_nan": one_sided,
                             "max_abs_difference": float(difference.max()),
                             "agree": bool(difference.max() <= TOLERANCE and one_sided == 0),
                             "cell_eval_seconds": round(seconds, 1)})
            side_by_side[model] = {
                "pds_all (book, targets left out)": float(mine["pds_all (book: targets left out)"].mean()),
                "discrimination_score_l1 (cell-eval)": float(theirs["discrimination_score_l1"].mean()),
                **{f"{c} (cell-eval)": float(theirs[c].mean())
                   for c in ("overlap_at_N", "overlap_at_100", "precision_at_N", "precision_at_100")
                   if c in theirs},
            }
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print("Where the definitions coincide (|ours − cell-eval| per perturbation, largest):")
        print(table.to_string(index=False))
        print("\nDefined differently (means over test perturbations):")
        print(pd.DataFrame(side_by_side).T.round(4).to_string())
    if args.json:
        args.json.write_text(json.dumps({"agreement": rows, "side_by_side": side_by_side}, indent=2))
    return 0 if table.agree.all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
