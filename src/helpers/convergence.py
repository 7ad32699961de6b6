"""Has a model reached its plateau? Learning curves read as numbers.

A learning curve is one row per validation (``step``, and the validation error, lower is
better). GEARS' validation error jumps by a few per cent from one check to the next even once
its learning rate is nearly zero (BatchNorm's running statistics follow the latest batches), so
curves are read through a running mean of ``WINDOW`` validations: the *plateau* of a curve is the
lowest value of that mean, and a run is within ``tolerance`` of a plateau from the first step at
which the mean's best so far is at most ``plateau × (1 + tolerance)``. Two uses:

- against its own curve (:func:`convergence_table`): a run *converged* when its last
  ``final_fraction`` of steps improved its best error by less than ``tolerance``, i.e. it came
  within ``tolerance`` of its final best before that stretch began;
- against a longer run's plateau (:func:`steps_to_plateau` with the long run's best), which is
  how ``benchmarks/learning_curves.py`` chooses the default budget.

:func:`report` is what a training chapter shows: the table, the figure and the sentence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from helpers import files

TOLERANCE = 0.02  # "within 2% of the plateau"
WINDOW = 5  # validations in the running mean a plateau is read from
FINAL_FRACTION = 0.25  # the stretch of training that must not improve a converged run by more


def steps_to_plateau(steps: Sequence[int], errors: Sequence[float], plateau: float,
                     tolerance: float = TOLERANCE) -> int | None:
    """First step whose best error so far is within ``tolerance`` of ``plateau`` (``None``: never)."""
    best = np.minimum.accumulate(np.asarray(errors, dtype=float))
    reached = np.flatnonzero(best <= plateau * (1 + tolerance))
    return int(np.asarray(steps)[reached[0]]) if reached.size else None


def smoothed(errors: Sequence[float], window: int = WINDOW) -> np.ndarray:
    """Running mean of the last ``window`` values (of fewer at the start of a short curve)."""
    errors = pd.Series(np.asarray(errors, dtype=float))
    return errors.rolling(window, min_periods=min(window, len(errors))).mean().to_numpy()


def convergence_table(history: pd.DataFrame, by: Sequence[str], error: str = "val_mse_top20_de",
                      tolerance: float = TOLERANCE, final_fraction: float = FINAL_FRACTION,
                      window: int = WINDOW) -> pd.DataFrame:
    """One row per run (the ``by`` columns): its lowest error (``best``: the model GEARS keeps),
    its plateau (the lowest running mean of ``window`` validations), the step where the running
    mean came within ``tolerance`` of it, the last step, how much the final stretch improved the
    running mean's best (``final_gain``: relative), and ``converged``: whether that gain is
    below ``tolerance``."""
    rows = []
    for key, curve in history.sort_values("step").groupby(list(by), sort=True):
        steps, errors = curve["step"].to_numpy(), curve[error].to_numpy(dtype=float)
        mean = smoothed(errors, window)
        plateau = float(np.nanmin(mean))
        last = int(steps[-1])
        before = mean[(steps <= (1 - final_fraction) * last) & ~np.isnan(mean)]
        gain = (float(before.min()) - plateau) / plateau if before.size else np.nan
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))),
                     "best": float(np.nanmin(errors)), "plateau": plateau,
                     "step_within_tolerance": steps_to_plateau(steps, np.where(np.isnan(mean), np.inf, mean),
                                                               plateau, tolerance),
                     "last_step": last, "final_gain": gain, "converged": bool(gain < tolerance),
                     "window": window})
    return pd.DataFrame(rows)


def describe(table: pd.DataFrame, what: str, error_name: str = "validation error",
             tolerance: float = TOLERANCE, final_fraction: float = FINAL_FRACTION) -> str:
    """One sentence, from :func:`convergence_table`'s rows, on whether the runs of ``what``
    (e.g. ``"GEARS"``) converged, with the figures behind it."""
    n, done = len(table), int(table.converged.sum())
    judged = table.dropna(subset=["final_gain"])
    last = ", ".join(f"{s:,}" for s in sorted(set(table.last_step)))
    window = int(table.window.max()) if "window" in table else WINDOW
    mean = f" (running mean of {window} checks)" if window > 1 else ""
    figures = (f"plateau{mean} {table.plateau.min():.4f} to "
               f"{table.plateau.max():.4f}, first within {tolerance:.0%} "
               f"of it at step {int(table.step_within_tolerance.min()):,} to "
               f"{int(table.step_within_tolerance.max()):,} of {last}")
    if len(judged):
        figures = (f"the last {final_fraction:.0%} of training improved the best {error_name} by "
                   f"{judged.final_gain.min():.1%} to {judged.final_gain.max():.1%} ({figures})")
    if done == n:
        return f"All {n} {what} runs reached their plateau: {figures}."
    if judged.empty:
        return (f"Whether the {n} {what} runs reached their plateau cannot be judged: no validation fell "
                f"before their last {final_fraction:.0%} of training ({figures}). Train longer or validate "
                "more often before comparing them.")
    keys = [c for c in table.columns if c not in ("best", "plateau", "step_within_tolerance", "last_step",
                                                  "final_gain", "converged", "window")]
    laggards = "; ".join(" ".join(str(row[k]) for k in keys) + f" (last stretch {row['final_gain']:.1%} better)"
                         for _, row in table.loc[~table.converged].iterrows())
    return (f"{n - done} of {n} {what} runs had not reached their plateau, still improving by "
            f"{tolerance:.0%} or more at the end: {laggards}; {figures}. Comparisons that involve them "
            "are provisional.")


@dataclass(frozen=True)
class Report:
    table: pd.DataFrame  # convergence_table's rows, one per run
    figure: Figure  # the learning curves with their plateaus
    sentence: str  # describe's sentence


def report(history: pd.DataFrame, by: Sequence[str], folder: Path, budget_steps: int, what: str,
           drawn: pd.DataFrame | None = None) -> Report:
    """Whether every run in ``history`` (learning curves, runs told apart by ``by``) reached its
    plateau: writes ``convergence.csv`` and ``learning_curves.png`` into ``folder`` and returns
    them with the sentence. ``drawn`` (default ``history``) are the curves the figure shows."""
    from helpers import plots

    table = convergence_table(history, by)
    files.atomic_write_csv(table, Path(folder) / "convergence.csv")
    drawn = history if drawn is None else drawn
    shown = table.merge(drawn[list(by)].drop_duplicates(), on=list(by))
    figure = plots.learning_curves(drawn, shown, budget=budget_steps)
    files.atomic_savefig(figure, Path(folder) / "learning_curves.png")
    return Report(table, figure, describe(table, what))
