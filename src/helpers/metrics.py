"""Per-perturbation evaluation metrics (GEARS' definitions), summaries and the noise ceiling.

All metrics compare a model's *mean* prediction for one perturbation with the true cells of that
perturbation. "Delta" means change over the mean control cell. These are evaluation metrics;
GEARS' training loss (4th-power error + direction term) lives with the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

QUANTILE_RANGES = {"45_55": (0.45, 0.55), "40_60": (0.40, 0.60), "25_75": (0.25, 0.75)}
METRICS = ("mse_all", "mse_top20_de", "mse_top20_de_delta", "pearson_delta_all",
           "pearson_delta_top20_de", "direction_accuracy_top20_de",
           *(f"frac_in_range_{k}" for k in QUANTILE_RANGES))


def mse(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean((np.asarray(pred) - np.asarray(true)) ** 2))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r; NaN when either side is constant (no correlation is defined)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a**2).sum() * (b**2).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else float("nan")


def direction_accuracy(pred_delta: np.ndarray, true_delta: np.ndarray) -> float:
    """Share of genes whose predicted change over control has the true change's sign."""
    return float(np.mean(np.sign(pred_delta) == np.sign(true_delta)))


def fraction_in_quantile_range(pred_mean: np.ndarray, true_cells: np.ndarray, low: float,
                               high: float) -> float:
    """Share of genes whose mean prediction lies within the [low, high] quantiles of the true
    per-cell distribution, ignoring genes whose true values are all zero (GEARS'
    ``frac_in_range``). NaN when no gene is left."""
    true_cells = np.asarray(true_cells)
    keep = np.any(true_cells != 0, axis=0)
    if not keep.any():
        return float("nan")
    lo, hi = np.quantile(true_cells[:, keep], [low, high], axis=0)
    inside = (np.asarray(pred_mean)[keep] >= lo) & (np.asarray(pred_mean)[keep] <= hi)
    return float(inside.mean())


def perturbation_metrics(pred_mean: np.ndarray, true_cells: np.ndarray, control_mean: np.ndarray,
                         de_idx: Sequence[int]) -> dict[str, float]:
    """All metrics for one perturbation.

    Args:
        pred_mean: predicted mean expression (genes,).
        true_cells: the perturbation's true cells (cells × genes).
        control_mean: mean control expression (genes,).
        de_idx: positions of its top-20 DE genes.
    """
    true_mean = np.asarray(true_cells).mean(axis=0)
    de = np.asarray(de_idx)
    pred_delta, true_delta = pred_mean - control_mean, true_mean - control_mean
    out = {
        "mse_all": mse(pred_mean, true_mean),
        "mse_top20_de": mse(pred_mean[de], true_mean[de]),
        # the seed study's form: between the changes over control (equal to the line above
        # whenever prediction and truth share the control mean, as here)
        "mse_top20_de_delta": mse(pred_delta[de], true_delta[de]),
        "pearson_delta_all": pearson(pred_delta, true_delta),
        "pearson_delta_top20_de": pearson(pred_delta[de], true_delta[de]),
        "direction_accuracy_top20_de": direction_accuracy(pred_delta[de], true_delta[de]),
    }
    for name, (low, high) in QUANTILE_RANGES.items():
        out[f"frac_in_range_{name}"] = fraction_in_quantile_range(pred_mean[de], np.asarray(true_cells)[:, de],
                                                                  low, high)
    return out


def split_half_metrics(true_cells: np.ndarray, control_mean: np.ndarray, de_idx: Sequence[int],
                       rng: np.random.Generator) -> dict[str, float]:
    """Noise ceiling: the mean of a random half of the true cells, scored against the other
    half as if it were a prediction. No model can be expected to beat it by much."""
    order = rng.permutation(len(true_cells))
    half = len(order) // 2
    if half < 1:
        raise ValueError("a split-half ceiling needs at least two cells")
    first, second = np.asarray(true_cells)[order[:half]], np.asarray(true_cells)[order[half:]]
    return perturbation_metrics(first.mean(axis=0), second, control_mean, de_idx)


def bootstrap_mean_ci(values: np.ndarray, n_boot: int = 2000, level: float = 0.95,
                      seed: int = 0) -> tuple[float, float, float]:
    """Mean and percentile bootstrap CI of the mean, ignoring NaN."""
    values = np.asarray(values, float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(values.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def summarise(per_perturbation: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """``model,subgroup,metric,mean,ci_low,ci_high,n`` from the long per-perturbation table.

    Seeds are averaged per perturbation first; the CI is a bootstrap over perturbations. The
    subgroup ``all`` pools every test perturbation.
    """
    per_pert = (per_perturbation.groupby(["model", "subgroup", "metric", "perturbation"], as_index=False)
                ["value"].mean())
    pooled = per_pert.assign(subgroup="all")
    rows = []
    for (model, subgroup, metric), group in pd.concat([per_pert, pooled]).groupby(["model", "subgroup", "metric"]):
        mean, low, high = bootstrap_mean_ci(group.value.to_numpy(), n_boot, seed=seed)
        rows.append({"model": model, "subgroup": subgroup, "metric": metric, "mean": mean,
                     "ci_low": low, "ci_high": high, "n": int(group.value.notna().sum())})
    return pd.DataFrame(rows)


def seed_spread(per_perturbation: pd.DataFrame) -> pd.DataFrame:
    """Per model, subgroup and metric: mean over perturbations for each seed, then the mean and
    standard deviation of those per-seed values across seeds (``n_seeds``); subgroup ``all``
    pools every test perturbation."""
    pooled = pd.concat([per_perturbation, per_perturbation.assign(subgroup="all")])
    per_seed = pooled.groupby(["model", "subgroup", "metric", "seed"], as_index=False)["value"].mean()
    return (per_seed.groupby(["model", "subgroup", "metric"])["value"]
            .agg(seed_mean="mean", seed_sd="std", n_seeds="count").reset_index())
