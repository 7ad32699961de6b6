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
# Named as cell-gears names them (``gears.inference``): ``mse_de``, its headline, is over the top
# 20 genes of the t-test ranking (``rank_genes_groups_cov_all``, drop-outs included); the
# ``*_non_dropout`` metrics (its deeper analysis) are over the top 20 that are not drop-outs
# (``top_non_dropout_de_20``).
HEADLINE = "mse_de"
METRICS = ("mse_de", "pearson_de", "pearson_delta_de", "mse", "pearson", "pearson_delta",
           "mse_top20_de_non_dropout", "pearson_delta_top20_de_non_dropout",
           "frac_correct_direction_top20_non_dropout",
           *(f"frac_in_range_{k}_non_dropout" for k in QUANTILE_RANGES))


def mse(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean((np.asarray(pred) - np.asarray(true)) ** 2))


CONSTANT_SD = 1e-6  # a side whose spread is below this is constant: float32 rounding of log-expression (~1e-7) is no signal


def mean_expression(cells: np.ndarray) -> np.ndarray:
    """Per-gene mean of ``cells`` (cells × genes), accumulated in float64: a float32 mean over
    thousands of cells is off by ~1e-6 and its last bits follow memory alignment, enough to turn
    a "no change" prediction's zero change into rounding noise that a Pearson r would score."""
    return np.asarray(cells).mean(axis=0, dtype=np.float64)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r; NaN when either side is constant (standard deviation at most
    :data:`CONSTANT_SD`), where no correlation is defined: a "no change" prediction's change
    over control is zero up to float rounding, and correlating that rounding would score noise."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.std() <= CONSTANT_SD or b.std() <= CONSTANT_SD:
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a**2).sum() * (b**2).sum()))


def direction_accuracy(pred_delta: np.ndarray, true_delta: np.ndarray) -> float:
    """Share of genes whose predicted change over control has the true change's sign. A
    predicted change within float32 rounding (``CONSTANT_SD``) is no change, sign 0: a stored
    "no change" prediction would otherwise score ~50% on the signs of its rounding errors."""
    pred_delta = np.asarray(pred_delta, float)
    predicted = np.where(np.abs(pred_delta) <= CONSTANT_SD, 0.0, np.sign(pred_delta))
    return float(np.mean(predicted == np.sign(true_delta)))


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
                         de_idx: Sequence[int], non_dropout_de_idx: Sequence[int]) -> dict[str, float]:
    """All metrics (:data:`METRICS`) for one perturbation.

    A Pearson r is NaN where either side is constant: the "no change" baseline predicts a zero
    change for every gene, so its correlations of changes are undefined, not zero, and are left
    out of the means rather than counted as a score.

    Args:
        pred_mean: predicted mean expression (genes,).
        true_cells: the perturbation's true cells (cells × genes).
        control_mean: mean control expression (genes,).
        de_idx: positions of its top-20 DE genes by the t-test ranking (GEARS' ``mse_de`` genes).
        non_dropout_de_idx: positions of its top-20 DE genes that are not drop-outs.
    """
    true_cells = np.asarray(true_cells)
    true_mean = mean_expression(true_cells)
    de, kept = np.asarray(de_idx), np.asarray(non_dropout_de_idx)
    pred_delta, true_delta = pred_mean - control_mean, true_mean - control_mean
    out = {
        "mse_de": mse(pred_mean[de], true_mean[de]),
        "pearson_de": pearson(pred_mean[de], true_mean[de]),
        "pearson_delta_de": pearson(pred_delta[de], true_delta[de]),
        "mse": mse(pred_mean, true_mean),
        "pearson": pearson(pred_mean, true_mean),
        "pearson_delta": pearson(pred_delta, true_delta),
        "mse_top20_de_non_dropout": mse(pred_mean[kept], true_mean[kept]),
        "pearson_delta_top20_de_non_dropout": pearson(pred_delta[kept], true_delta[kept]),
        "frac_correct_direction_top20_non_dropout": direction_accuracy(pred_delta[kept], true_delta[kept]),
    }
    for name, (low, high) in QUANTILE_RANGES.items():
        out[f"frac_in_range_{name}_non_dropout"] = fraction_in_quantile_range(pred_mean[kept], true_cells[:, kept],
                                                                              low, high)
    return out


def split_halves(true_cells: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random half of the cells and the other half (the split-half replicate)."""
    order = rng.permutation(len(true_cells))
    half = len(order) // 2
    if half < 1:
        raise ValueError("a split-half ceiling needs at least two cells")
    return np.asarray(true_cells)[order[:half]], np.asarray(true_cells)[order[half:]]


def split_half_metrics(true_cells: np.ndarray, control_mean: np.ndarray, de_idx: Sequence[int],
                       non_dropout_de_idx: Sequence[int], rng: np.random.Generator) -> dict[str, float]:
    """Noise ceiling: the mean of a random half of the true cells, scored against the other
    half as if it were a prediction. No model can be expected to beat it by much."""
    first, second = split_halves(true_cells, rng)
    return perturbation_metrics(mean_expression(first), second, control_mean, de_idx, non_dropout_de_idx)


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
