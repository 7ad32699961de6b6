"""Genetic-interaction (GI) scores of a two-gene perturbation (Norman et al. 2019; GEARS).

For a pair A+B, the change over control of the pair is regressed on the changes of the two
singles across genes, without intercept, with the Theil–Sen estimator:
``Δ(A+B) ≈ c1·Δ(A) + c2·Δ(B)``. From it (GEARS' ``get_coeffs``):

- ``magnitude`` = sqrt(c1² + c2²): above ~1 the pair acts more strongly than its singles
  (synergy), below less (suppression);
- ``corr_fit``: Pearson r of the fitted and measured pair change (low: neomorphic);
- ``dcor``: distance correlation of the singles with the pair (high: redundant);
- ``dcor_singles``, ``dcor_a``, ``dcor_b``; ``equality_of_contribution`` =
  min(dcor_a, dcor_b) / max(dcor_a, dcor_b) (low: epistatic); ``dominance`` = |log10(c1/c2)|.

Two engines fit the same estimator. ``"sklearn"`` is scikit-learn's ``TheilSenRegressor`` as
GEARS calls it (``max_subpopulation=1e5``, ``random_state=1000``): ~4.5 s per pair at 2,967
genes on this CPU, almost all of it drawing 10⁵ subsets one permutation at a time. ``"fast"``
(the default) solves the same 2 × 2 systems in closed form, vectorised, and takes the same
spatial median (modified Weiszfeld, Vardi & Zhang 2000); when every pair of genes fits under
``max_subpopulation`` it enumerates them all, as scikit-learn does, and agrees with it exactly
(a test); otherwise it draws its subsets with NumPy's generator, so the estimate differs from
scikit-learn's by subsampling noise only.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import dcor
import numpy as np
import pandas as pd
from sklearn.linear_model import TheilSenRegressor
from tqdm import tqdm

from helpers.conditions import CONTROL, condition_genes, is_combo, is_single


GI_ENGINES = ("fast", "sklearn")


def spatial_median(points: np.ndarray, max_iter: int = 1000, tol: float = 1e-3) -> np.ndarray:
    """The point minimising the summed Euclidean distance to ``points`` (m, d): modified
    Weiszfeld iterations from the mean, stopping when a step moves less than ``tol``."""
    eps = np.finfo(np.float64).eps
    current = points.mean(axis=0)
    for _ in range(max_iter):
        diff = points - current
        distance = np.sqrt((diff**2).sum(axis=1))
        away = distance >= eps
        at_a_point = int(away.sum() < len(points))  # Vardi–Zhang: the iterate sits on a data point
        inverse = 1.0 / distance[away, None]
        pull = np.linalg.norm((diff[away] * inverse).sum(axis=0))
        if pull > eps:
            target = (points[away] * inverse).sum(axis=0) / inverse.sum()
        else:
            target, pull = 1.0, 1.0
        updated = max(0.0, 1.0 - at_a_point / pull) * target + min(1.0, at_a_point / pull) * current
        if ((current - updated) ** 2).sum() < tol**2:
            return updated
        current = updated
    return current


def theil_sen_two_predictors(x: np.ndarray, y: np.ndarray, max_subpopulation: int = 100_000,
                             random_state: int = 1000, max_iter: int = 1000) -> np.ndarray:
    """Theil–Sen coefficients (2,) of ``y ≈ x @ c`` without intercept, ``x`` (n, 2): the spatial
    median of the exact solutions on pairs of samples (minimum-norm ones where a pair's 2 × 2
    system is singular, as a least-squares solver returns)."""
    n = len(x)
    if n * (n - 1) // 2 <= max_subpopulation:
        i, j = np.triu_indices(n, k=1)
    else:
        rng = np.random.default_rng(random_state)
        i = rng.integers(0, n, max_subpopulation)
        j = rng.integers(0, n - 1, max_subpopulation)
        j = j + (j >= i)  # a second, different sample
    a_i, b_i, a_j, b_j, y_i, y_j = x[i, 0], x[i, 1], x[j, 0], x[j, 1], y[i], y[j]
    det = a_i * b_j - a_j * b_i
    frobenius = a_i**2 + b_i**2 + a_j**2 + b_j**2
    regular = np.abs(det) > 1e-12 * np.maximum(frobenius, np.finfo(np.float64).tiny)
    safe_det = np.where(regular, det, 1.0)
    safe_norm = np.where(frobenius > 0, frobenius, 1.0)
    # rank ≤ 1: the pseudo-inverse of M is Mᵀ / ‖M‖²_F
    c1 = np.where(regular, (y_i * b_j - y_j * b_i) / safe_det, (a_i * y_i + a_j * y_j) / safe_norm)
    c2 = np.where(regular, (a_i * y_j - a_j * y_i) / safe_det, (b_i * y_i + b_j * y_j) / safe_norm)
    return spatial_median(np.column_stack([c1, c2]), max_iter=max_iter)


def gi_scores(delta_a: np.ndarray, delta_b: np.ndarray, delta_ab: np.ndarray,
              max_subpopulation: int = 100_000, random_state: int = 1000,
              engine: str = "fast") -> dict[str, float]:
    """GI scores of one pair from its genes' changes over control (one value per gene)."""
    delta_a, delta_b, delta_ab = (np.asarray(v, dtype=np.float64).ravel() for v in (delta_a, delta_b, delta_ab))
    if not len(delta_a) == len(delta_b) == len(delta_ab):
        raise ValueError("the three change vectors must cover the same genes")
    if engine not in GI_ENGINES:
        raise ValueError(f"engine must be one of {GI_ENGINES}, got {engine!r}")
    singles = np.column_stack([delta_a, delta_b])
    if engine == "sklearn":
        model = TheilSenRegressor(fit_intercept=False, max_subpopulation=max_subpopulation, max_iter=1000,
                                  random_state=random_state).fit(singles, delta_ab)
        c1, c2 = (float(c) for c in model.coef_)
    else:
        c1, c2 = (float(c) for c in theil_sen_two_predictors(singles, delta_ab, max_subpopulation, random_state))
    dcor_a = float(dcor.distance_correlation(delta_a, delta_ab))
    dcor_b = float(dcor.distance_correlation(delta_b, delta_ab))
    with np.errstate(divide="ignore", invalid="ignore"):
        dominance = float(np.abs(np.log10(np.float64(c1) / np.float64(c2))))
        equality = float(np.float64(min(dcor_a, dcor_b)) / np.float64(max(dcor_a, dcor_b)))
    return {
        "c1": c1, "c2": c2, "magnitude": float(np.hypot(c1, c2)),
        "corr_fit": float(np.corrcoef(singles @ np.array([c1, c2]), delta_ab)[0, 1]),
        "dcor": float(dcor.distance_correlation(singles, delta_ab)),
        "dcor_singles": float(dcor.distance_correlation(delta_a, delta_b)),
        "dcor_a": dcor_a, "dcor_b": dcor_b,
        "equality_of_contribution": equality,
        "dominance": dominance,
    }


def precision_at_k(ranked: list[str], relevant: set[str], k: int) -> float:
    """Share of the first ``k`` of ``ranked`` that are in ``relevant`` (order-free pair names
    should be normalised by the caller)."""
    if k <= 0:
        raise ValueError("k must be positive")
    top = ranked[:k]
    return sum(item in relevant for item in top) / len(top) if top else float("nan")


# GEARS' paper thresholds (Roohani et al. 2023, Fig. 4) for calling an interaction type.
GI_THRESHOLDS = {
    "synergy": ("magnitude", ">", 1.15),
    "suppressor": ("magnitude", "<", 1.0),
    "redundant": ("dcor", ">", 0.85),
    "neomorphic": ("corr_fit", "<", 0.88),
    "epistasis": ("equality_of_contribution", "<", 0.28),
}

# Norman's verified labels (GEARS' ``GIs``) that each called type is checked against.
VERIFIED_LABELS = {
    "synergy": ("SYNERGY_SIMILAR_PHENO", "SYNERGY_DISSIMILAR_PHENO", "POTENTIATION"),
    "suppressor": ("SUPPRESSOR",),
    "redundant": ("REDUNDANT",),
    "neomorphic": ("NEOMORPHIC",),
    "epistasis": ("EPISTASIS",),
}


def pair_key(condition: str) -> str:
    """Order-free name of a two-gene condition (``B+A`` and ``A+B`` both give ``A+B``)."""
    genes = condition_genes(condition)
    if len(genes) != 2:
        raise ValueError(f"{condition!r} is not a two-gene perturbation")
    return "+".join(sorted(genes))


def verified_pairs(gi_types: Mapping[str, Sequence[str]]) -> dict[str, set[str]]:
    """Per called type, the order-free pairs Norman verified as that type."""
    return {kind: {pair_key(p) for label in labels for p in gi_types.get(label, ())}
            for kind, labels in VERIFIED_LABELS.items()}


def single_deltas(means: pd.DataFrame) -> pd.DataFrame:
    """Change over control of each single-gene perturbation (genes × expression genes); a gene
    written both ``A+ctrl`` and ``ctrl+A`` gets the mean of the two."""
    if CONTROL not in means.index:
        raise ValueError("the condition means need a 'ctrl' row to compute changes over control")
    singles = [c for c in means.index if is_single(c)]
    delta = means.loc[singles] - means.loc[CONTROL]
    perturbed = pd.Index([condition_genes(c)[0] for c in singles], name="gene")  # not column keys
    return delta.groupby(perturbed).mean()


def interaction_scores(means: pd.DataFrame, pairs: Sequence[str], genes: Sequence[str],
                       engine: str = "fast", max_subpopulation: int = 100_000,
                       random_state: int = 1000, progress: bool = False) -> pd.DataFrame:
    """GI scores (:func:`gi_scores`) of each two-gene condition in ``pairs``, from condition
    means (rows: conditions incl. ``ctrl`` and the pairs' singles; columns ⊇ ``genes``), fitted on
    ``genes``. ``c1`` belongs to the first gene as written. Pairs lacking a single are skipped
    with a warning that lists them."""
    missing_genes = sorted(set(genes) - set(means.columns))
    if missing_genes:
        raise ValueError(f"{len(missing_genes)} GI genes are not in the means, e.g. {missing_genes[:5]}")
    singles = single_deltas(means)[list(genes)]
    control = means.loc[CONTROL, list(genes)]
    rows, skipped = [], []
    for pair in tqdm(pairs, desc="GI scores", disable=not progress, mininterval=2):
        if not is_combo(pair):
            raise ValueError(f"{pair!r} is not a two-gene perturbation")
        a, b = condition_genes(pair)
        if a not in singles.index or b not in singles.index or pair not in means.index:
            skipped.append(pair)
            continue
        scores = gi_scores(singles.loc[a], singles.loc[b], means.loc[pair, list(genes)] - control,
                           max_subpopulation, random_state, engine)
        rows.append({"perturbation": pair, **scores})
    if skipped:
        warnings.warn(f"no single-gene data for {len(skipped)} pair(s), left out of the GI scores: "
                      f"{', '.join(skipped)}", stacklevel=2)
    return pd.DataFrame(rows)


def call_interactions(scores: pd.DataFrame) -> pd.DataFrame:
    """One boolean column per type of :data:`GI_THRESHOLDS`, beside ``perturbation``."""
    calls = scores[["perturbation"]].copy()
    for kind, (column, sign, threshold) in GI_THRESHOLDS.items():
        calls[kind] = scores[column] > threshold if sign == ">" else scores[column] < threshold
    return calls


def top_pairs(scores: pd.DataFrame, k: int = 20) -> pd.DataFrame:
    """The ``k`` most synergistic (highest magnitude) and ``k`` most suppressive (lowest) pairs:
    ``kind, rank, perturbation, magnitude`` (ties broken by name, so the order is stable)."""
    rows = []
    for kind, ascending in (("synergy", False), ("suppressor", True)):
        ranked = scores.sort_values(["magnitude", "perturbation"], ascending=[ascending, True], kind="stable")
        for rank, (pair, magnitude) in enumerate(zip(ranked.perturbation[:k], ranked.magnitude[:k]), start=1):
            rows.append({"kind": kind, "rank": rank, "perturbation": pair, "magnitude": magnitude})
    return pd.DataFrame(rows)
