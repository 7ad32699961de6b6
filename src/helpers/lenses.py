"""The field's lenses on the same predictions, beside GEARS' own metrics (:mod:`helpers.metrics`).

Since GEARS, benchmarks have asked other questions of a predicted mean profile:

- **Discrimination** (PerturBench's rank metric, Wu et al. 2025; the Virtual Cell Challenge's
  perturbation discrimination score, cell-eval): does the prediction for perturbation *p* lie
  closer to *p*'s true profile than to the other test perturbations' true profiles? A prediction
  that collapses to an average response cannot tell them apart.
- **Systema** (Viñas Torné et al., Nat. Biotech. 2025): Pearson delta against the *perturbed
  centroid* (the mean of the training perturbations' profiles) instead of control, so that the
  shift every perturbation shares earns nothing; and how large that shared shift is.
- **Ahlmann-Eltze et al.** (Nat. Methods 2025): L2 distance on the most expressed genes.
- **cell-eval** (Arc Institute): MAE, and overlap of predicted with true DE genes.
- **PerturBench**: cosine and Spearman of log fold changes (changes over control).
- **Calibrated scores** (cell-eval 2026): (u − b) / (r − b) between a mean baseline b and the
  split-half replicate r.

Every function takes one model's predicted means and the truth as arrays in the same order of
perturbations and genes (:class:`Truth`). Where a lens compares genes that respond (DE overlap,
discrimination), the perturbed gene(s) are left out, as cell-eval does: a CRISPRa target's own
rise would otherwise decide the answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.conditions import condition_genes
from helpers.metrics import CONSTANT_SD, mean_expression, pearson

DE_SIZES = (20, 50, 100)  # N of DE overlap and precision at N
N_TOP_EXPRESSED = 1000  # Ahlmann-Eltze et al.'s L2 genes
DE_FDR = 0.05  # Benjamini–Hochberg level of the true DE genes behind precision at N
# per-perturbation lenses (rows of per_perturbation.csv); higher is better unless listed in LOWER_IS_BETTER
LENSES = ("rank_all", "rank_de", "pds_all", "pds_de", "pearson_delta_centroid",
          "pearson_delta_centroid_de", "mae", "l2_top1000", "cosine_delta", "spearman_delta",
          *(f"de_overlap_{n}" for n in DE_SIZES), *(f"de_precision_{n}" for n in DE_SIZES))
LOWER_IS_BETTER = {"mse_de", "mse", "mse_top20_de_non_dropout", "mae", "l2_top1000", "rank_all",
                   "rank_de"}


@dataclass(frozen=True)
class Truth:
    """What every lens needs to know about the true test profiles, computed once.

    Attributes:
        conditions: the test perturbations, the row order of every matrix (P).
        genes: the gene axis (G).
        means: true mean expression (P × G).
        control_mean: mean control cell (G,).
        centroid: Systema's perturbed centroid, the mean of the training perturbations'
            profiles (G,).
        targets: the perturbed gene(s) of each row (P × G, bool).
        de: each row's top-20 DE genes (GEARS' ``mse_de`` genes), positions (P × 20).
        top_expressed: the ``N_TOP_EXPRESSED`` genes most expressed in control, positions.
        significant: genes whose change over control is significant (Welch t-test, BH
            ``DE_FDR``) per row (P × G, bool).
    """

    conditions: list[str]
    genes: pd.Index
    means: np.ndarray
    control_mean: np.ndarray
    centroid: np.ndarray
    targets: np.ndarray
    de: np.ndarray
    top_expressed: np.ndarray
    significant: np.ndarray

    @classmethod
    def from_cells(cls, cells: Mapping[str, np.ndarray], control_cells: np.ndarray,
                   conditions: Sequence[str], genes: Sequence[str], centroid: np.ndarray,
                   de: Mapping[str, np.ndarray], n_top_expressed: int = N_TOP_EXPRESSED) -> Truth:
        """The truth of ``conditions`` from their cells (cells × genes each) and control's."""
        genes = pd.Index(genes)
        control_mean = mean_expression(control_cells)
        means = np.vstack([mean_expression(cells[c]) for c in conditions])
        return cls(conditions=list(conditions), genes=genes, means=means, control_mean=control_mean,
                   centroid=np.asarray(centroid, float), targets=target_mask(conditions, genes),
                   de=np.vstack([np.asarray(de[c])[:20] for c in conditions]),
                   top_expressed=np.argsort(-control_mean, kind="stable")[:n_top_expressed],
                   significant=np.vstack([significant_genes(cells[c], control_cells) for c in conditions]))


def target_mask(conditions: Sequence[str], genes: Sequence[str]) -> np.ndarray:
    """P × G: True where the column is a gene that the row's condition perturbs."""
    position = {g: i for i, g in enumerate(genes)}
    mask = np.zeros((len(conditions), len(genes)), bool)
    for row, condition in enumerate(conditions):
        for gene in condition_genes(condition):
            if gene in position:
                mask[row, position[gene]] = True
    return mask


def perturbed_centroid(means: pd.DataFrame, perturbations: Sequence[str]) -> np.ndarray:
    """Systema's perturbed centroid: the mean of the perturbations' mean profiles, each weighted
    alike (``average_of_perturbation_centroids``)."""
    return means.loc[list(perturbations)].to_numpy(float).mean(axis=0)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values (monotone, capped at 1)."""
    p = np.asarray(p, float)
    order = np.argsort(p)
    scaled = p[order] * len(p) / np.arange(1, len(p) + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty_like(p)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def significant_genes(cells: np.ndarray, control_cells: np.ndarray, fdr: float = DE_FDR) -> np.ndarray:
    """Genes whose mean differs from control's (Welch's t-test per gene, Benjamini–Hochberg at
    ``fdr`` across genes). A gene constant in both groups is not significant."""
    from scipy.stats import t as student_t

    a, b = np.asarray(cells, float), np.asarray(control_cells, float)
    n_a, n_b = len(a), len(b)
    if n_a < 2 or n_b < 2:
        return np.zeros(a.shape[1], bool)
    var_a, var_b = a.var(axis=0, ddof=1) / n_a, b.var(axis=0, ddof=1) / n_b
    se2 = var_a + var_b
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (a.mean(axis=0) - b.mean(axis=0)) / np.sqrt(se2)
        df = se2**2 / (var_a**2 / (n_a - 1) + var_b**2 / (n_b - 1))
    p = np.where(se2 > 0, 2 * student_t.sf(np.abs(t), np.where(se2 > 0, df, 1.0)), 1.0)
    return benjamini_hochberg(p) < fdr


def _distances(pred: np.ndarray, true: np.ndarray, mask: np.ndarray, metric: str) -> np.ndarray:
    """P × P: row i holds the distance from prediction i to every true profile j, over the genes
    ``mask[i]`` selects."""
    out = np.empty((len(pred), len(true)))
    for i in range(len(pred)):
        diff = true[:, mask[i]] - pred[i, mask[i]]
        out[i] = np.abs(diff).sum(axis=1) if metric == "l1" else np.sqrt((diff**2).sum(axis=1))
    return out


def normalised_rank(pred: np.ndarray, true: np.ndarray, mask: np.ndarray, metric: str = "l2") -> np.ndarray:
    """Per prediction i: the share of the other true profiles that lie closer to it than its own
    true profile (ties count half). 0: its own profile is the closest; 0.5: chance; 1: the
    furthest. PerturBench's rank metric (there with Euclidean distance).

    Args:
        pred, true: P × G, row i of both the same perturbation.
        mask: P × G bool, the genes compared for row i (e.g. all but its targets).
        metric: ``"l2"`` (Euclidean) or ``"l1"`` (Manhattan).
    """
    if len(pred) < 2:
        raise ValueError("discrimination needs at least two perturbations")
    d = _distances(np.asarray(pred, float), np.asarray(true, float), mask, metric)
    own = np.diag(d)[:, None]
    others = ~np.eye(len(d), dtype=bool)
    closer = ((d < own) & others).sum(axis=1)
    tied = ((d == own) & others).sum(axis=1)
    return (closer + 0.5 * tied) / (len(d) - 1)


def discrimination_score(pred: np.ndarray, true: np.ndarray, mask: np.ndarray, metric: str = "l1") -> np.ndarray:
    """The Virtual Cell Challenge's perturbation discrimination score (PDS) per prediction, as
    cell-eval 0.8 computes it (``discrimination_score_l1``): ``1 − closer / N``, where ``closer``
    counts the true profiles nearer (Manhattan) to the prediction than its own and N is the
    number of perturbations, its own included. 1: its own profile is the nearest; ~0.5: chance;
    1/N: the furthest. (cell-eval breaks ties arbitrarily; here they count half.)"""
    n = len(pred)
    return 1.0 - normalised_rank(pred, true, mask, metric) * (n - 1) / n


def top_changed(delta: np.ndarray, keep: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` genes with the largest |change| among those ``keep`` selects."""
    candidates = np.flatnonzero(keep)
    order = np.argsort(-np.abs(delta[candidates]), kind="stable")
    return candidates[order[:n]]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity; NaN when either side is zero up to float rounding (no direction)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if np.abs(a).max(initial=0) <= CONSTANT_SD or np.abs(b).max(initial=0) <= CONSTANT_SD:
        return float("nan")
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when a side is constant."""
    from scipy.stats import rankdata

    if np.std(a) <= CONSTANT_SD or np.std(b) <= CONSTANT_SD:
        return float("nan")
    return pearson(rankdata(a), rankdata(b))


def perturbation_lenses(pred: np.ndarray, truth: Truth, row: int) -> dict[str, float]:
    """The per-perturbation lenses (everything in :data:`LENSES` but discrimination) of one
    predicted mean profile (G,) against row ``row`` of ``truth``."""
    pred = np.asarray(pred, float)
    true = truth.means[row]
    de = truth.de[row]
    pred_delta, true_delta = pred - truth.control_mean, true - truth.control_mean
    pred_shift, true_shift = pred - truth.centroid, true - truth.centroid
    keep = ~truth.targets[row]
    out = {
        "pearson_delta_centroid": pearson(pred_shift, true_shift),
        "pearson_delta_centroid_de": pearson(pred_shift[de], true_shift[de]),
        "mae": float(np.mean(np.abs(pred - true))),
        "l2_top1000": float(np.linalg.norm(pred[truth.top_expressed] - true[truth.top_expressed])),
        "cosine_delta": cosine(pred_delta, true_delta),
        "spearman_delta": spearman(pred_delta, true_delta),
    }
    no_change = np.std(pred_delta[keep]) <= CONSTANT_SD  # no predicted change: no DE genes to rank
    significant = truth.significant[row] & keep
    for n in DE_SIZES:
        if no_change:
            out[f"de_overlap_{n}"] = out[f"de_precision_{n}"] = float("nan")
            continue
        predicted = top_changed(pred_delta, keep, n)
        out[f"de_overlap_{n}"] = len(np.intersect1d(predicted, top_changed(true_delta, keep, n))) / n
        out[f"de_precision_{n}"] = (float(significant[predicted].mean()) if significant.any()
                                    else float("nan"))
    return out


def score_lenses(pred: np.ndarray, truth: Truth) -> pd.DataFrame:
    """Every lens of :data:`LENSES` for one model's predictions (P × G, rows and columns in
    ``truth``'s order): a long table ``perturbation, metric, value``."""
    pred = np.asarray(pred, float)
    if pred.shape != truth.means.shape:
        raise ValueError(f"predictions of shape {pred.shape} do not match the truth's {truth.means.shape}")
    keep = ~truth.targets
    de_mask = np.zeros_like(keep)
    np.put_along_axis(de_mask, truth.de, True, axis=1)
    de_mask &= keep
    columns = {
        "rank_all": normalised_rank(pred, truth.means, keep, "l2"),
        "rank_de": normalised_rank(pred, truth.means, de_mask, "l2"),
        "pds_all": discrimination_score(pred, truth.means, keep, "l1"),
        "pds_de": discrimination_score(pred, truth.means, de_mask, "l1"),
    }
    rows = []
    for i, condition in enumerate(truth.conditions):
        values = {name: float(column[i]) for name, column in columns.items()}
        values.update(perturbation_lenses(pred[i], truth, i))
        rows += [(condition, metric, values[metric]) for metric in LENSES]
    return pd.DataFrame(rows, columns=["perturbation", "metric", "value"])


def calibrate(per_perturbation: pd.DataFrame, baseline: str, replicate: str = "noise_ceiling",
              metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Calibrated scores (u − b) / (r − b) per model, seed, subgroup (and ``all``) and metric.

    u is the model's mean over the subgroup's perturbations, b the ``baseline`` model's and r the
    ``replicate``'s (the split-half noise ceiling), each over the perturbations where all three
    are defined. 1: as good as a replicate of the experiment; 0: no better than the baseline;
    below 0: worse than it. Not clipped. Direction does not matter: for an error,
    (u − b)/(r − b) is positive when u is below b too. Undefined (NaN) where the replicate is
    not better than the baseline (the scale would flip or blow up): with few cells a half
    replicate can be noisier than a mean, and no score can then be read against it.

    Returns ``model, seed, subgroup, metric, value, model_mean, baseline_mean, replicate_mean, n``.
    """
    table = pd.concat([per_perturbation, per_perturbation.assign(subgroup="all")])
    if metrics is not None:
        table = table[table.metric.isin(metrics)]
    for name in (baseline, replicate):
        if name not in set(table.model):
            raise ValueError(f"calibration needs {name!r}'s scores; models: {sorted(set(table.model))}")
    # baseline and replicate: one value per perturbation (the baselines are deterministic; the
    # replicate is one draw), averaged over seeds if there are several
    reference = {name: table[table.model == name].groupby(["subgroup", "metric", "perturbation"]).value.mean()
                 for name in (baseline, replicate)}
    # every model's value beside the baseline's and the replicate's for the same perturbation
    keys = ["subgroup", "metric", "perturbation"]
    joined = (table[table.model != replicate]
              .join(reference[baseline].rename("baseline_value"), on=keys)
              .join(reference[replicate].rename("replicate_value"), on=keys))
    defined = joined[["value", "baseline_value", "replicate_value"]].notna().all(axis=1)
    means = (joined[defined].groupby(["model", "seed", "subgroup", "metric"])
             .agg(model_mean=("value", "mean"), baseline_mean=("baseline_value", "mean"),
                  replicate_mean=("replicate_value", "mean"), n=("value", "size"))
             .reset_index())
    gap = means.replicate_mean - means.baseline_mean
    lower = means.metric.isin(LOWER_IS_BETTER)
    replicate_better = np.where(lower, gap < 0, gap > 0) & (gap.abs() > 1e-12)
    safe_gap = gap.where(replicate_better, 1.0)
    means["value"] = np.where(replicate_better, (means.model_mean - means.baseline_mean) / safe_gap, np.nan)
    means["n"] = means.n.astype(int)
    return means[["model", "seed", "subgroup", "metric", "value", "model_mean", "baseline_mean",
                  "replicate_mean", "n"]]


def systematic_variation(means: pd.DataFrame, perturbations: Sequence[str], control: str) -> pd.DataFrame:
    """Systema's measure of systematic variation: each perturbation's shift over control
    (its mean minus control's) against the average shift (perturbed centroid minus control).

    Returns one row per perturbation: ``cosine_to_average_shift`` (Systema's measure: near 1 when
    the perturbation mostly does what every perturbation does) and ``shared_share``, the share
    of the shift's squared length that lies along the average shift (cosine²).
    """
    control_mean = means.loc[control].to_numpy(float)
    shifts = means.loc[list(perturbations)].to_numpy(float) - control_mean
    average = shifts.mean(axis=0)
    cos = np.array([cosine(s, average) for s in shifts])
    return pd.DataFrame({"perturbation": list(perturbations), "cosine_to_average_shift": cos,
                         "shared_share": cos**2})
