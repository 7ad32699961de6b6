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
"""

from __future__ import annotations

import dcor
import numpy as np
from sklearn.linear_model import TheilSenRegressor


def gi_scores(delta_a: np.ndarray, delta_b: np.ndarray, delta_ab: np.ndarray,
              max_subpopulation: int = 100_000, random_state: int = 1000) -> dict[str, float]:
    """GI scores of one pair from its genes' changes over control (one value per gene)."""
    delta_a, delta_b, delta_ab = (np.asarray(v, dtype=np.float64).ravel() for v in (delta_a, delta_b, delta_ab))
    if not len(delta_a) == len(delta_b) == len(delta_ab):
        raise ValueError("the three change vectors must cover the same genes")
    singles = np.column_stack([delta_a, delta_b])
    model = TheilSenRegressor(fit_intercept=False, max_subpopulation=max_subpopulation, max_iter=1000,
                              random_state=random_state).fit(singles, delta_ab)
    c1, c2 = (float(c) for c in model.coef_)
    dcor_a = float(dcor.distance_correlation(delta_a, delta_ab))
    dcor_b = float(dcor.distance_correlation(delta_b, delta_ab))
    with np.errstate(divide="ignore", invalid="ignore"):
        dominance = float(np.abs(np.log10(c1 / c2)))
    return {
        "c1": c1, "c2": c2, "magnitude": float(np.hypot(c1, c2)),
        "corr_fit": float(np.corrcoef(model.predict(singles), delta_ab)[0, 1]),
        "dcor": float(dcor.distance_correlation(singles, delta_ab)),
        "dcor_singles": float(dcor.distance_correlation(delta_a, delta_b)),
        "dcor_a": dcor_a, "dcor_b": dcor_b,
        "equality_of_contribution": min(dcor_a, dcor_b) / max(dcor_a, dcor_b),
        "dominance": dominance,
    }


def precision_at_k(ranked: list[str], relevant: set[str], k: int) -> float:
    """Share of the first ``k`` of ``ranked`` that are in ``relevant`` (order-free pair names
    should be normalised by the caller)."""
    if k <= 0:
        raise ValueError("k must be positive")
    top = ranked[:k]
    return sum(item in relevant for item in top) / len(top) if top else float("nan")
