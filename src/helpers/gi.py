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
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from helpers.conditions import CONTROL, condition_genes, is_combo, single_changes
from helpers.progress import progress_bar

if TYPE_CHECKING:
    import anndata as ad


GI_ENGINES = ("fast", "sklearn")
SCORE_COLUMNS = ("c1", "c2", "magnitude", "corr_fit", "dcor", "dcor_singles", "dcor_a", "dcor_b",
                 "equality_of_contribution", "dominance")


def spatial_median(points: np.ndarray, max_iter: int = 1000, tol: float = 1e-3) -> np.ndarray:
    """The point minimising the summed Euclidean distance to ``points`` (m, d): modified
    Weiszfeld iterations from the mean, stopping when a step moves less than ``tol``.

    This loop is chapter 22's time (m = 100,000 candidate coefficients per pair), so each
    coordinate is one contiguous row and the sums are matrix-vector products: on an (m, d) array,
    row sums and broadcast products over the short axis took ~8× longer for the same values."""
    eps = np.finfo(np.float64).eps
    coordinates = np.ascontiguousarray(np.asarray(points, dtype=np.float64).T)  # (d, m)
    current = coordinates.mean(axis=1)
    diff, distance = np.empty_like(coordinates), np.empty(coordinates.shape[1])
    for _ in range(max_iter):
        np.subtract(coordinates, current[:, None], out=diff)
        np.square(diff[0], out=distance)
        for row in diff[1:]:
            distance += row * row
        np.sqrt(distance, out=distance)
        away = distance >= eps
        at_a_point = int(not away.all())  # Vardi–Zhang: the iterate sits on a data point
        near, towards, close = coordinates, diff, distance
        if at_a_point:  # leave that point out
            near, towards, close = coordinates[:, away], diff[:, away], distance[away]
        inverse = 1.0 / close
        pull = np.linalg.norm(towards @ inverse)
        if pull > eps:
            target = (near @ inverse) / inverse.sum()
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


def _distance_row_sums(x: np.ndarray) -> np.ndarray:
    """Σ_j |x_i − x_j| for every i (n,), from the sorted values and their running sums."""
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    n = len(x)
    below = np.concatenate([[0.0], np.cumsum(ordered)[:-1]])  # Σ of the values before each
    rank = np.arange(n)
    sums = np.empty(n)
    sums[order] = ordered * rank - below + (ordered.sum() - below - ordered) - ordered * (n - 1 - rank)
    return sums


def _distance_covariance_1d(x: np.ndarray, y: np.ndarray) -> float:
    """Squared distance covariance (V-statistic, as ``dcor.distance_covariance_sqr``) of two
    samples (n,) in O(n log² n), without an n × n matrix.

    With a_ij = |x_i − x_j|, b_ij = |y_i − y_j| and their row sums a_i·, b_i·: n² dCov² =
    Σ a_ij b_ij − (2/n) Σ a_i· b_i· + a·· b··/n². In x order (i < j, so x_j − x_i ≥ 0),
    |y_j − y_i| = (y_j − y_i) − 2 (y_j − y_i)[y_i > y_j], so Σ a_ij b_ij = 2 (n Σ x_k y_k − Σx Σy)
    − 4 Σ_{i<j, y_i > y_j} (x_j − x_i)(y_j − y_i); that last sum needs, for every j, the count and
    the sums of x_i, y_i, x_i y_i over the earlier i with larger y, gathered level by level of a
    merge sort (each pair counted at the level where i and j fall in sister blocks). Ties in y
    add (y_j − y_i) = 0, so their order does not matter."""
    n = len(x)
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(ys, kind="stable")] = np.arange(n)
    columns = np.stack([np.ones(n), xs, ys, xs * ys])  # (4, n): what is summed over the earlier i
    position = np.arange(n)
    dominated = np.zeros((4, n))  # per j: Σ over i < j with y_i > y_j
    size = 1
    while size < n:
        block, left = position // (2 * size), (position // size) % 2 == 0
        key = block * n + rank  # sorts by block, then by y
        lefts = np.flatnonzero(left)
        lefts = lefts[np.argsort(key[lefts], kind="stable")]
        sorted_keys = key[lefts]
        running = np.concatenate([np.zeros((4, 1)), np.cumsum(columns[:, lefts], axis=1)], axis=1)
        rights = np.flatnonzero(~left)
        above = np.searchsorted(sorted_keys, key[rights], side="right")  # first larger y
        end = np.searchsorted(sorted_keys, (block[rights] + 1) * n, side="left")  # block's end
        dominated[:, rights] += running[:, end] - running[:, above]
        size *= 2
    count, sum_x, sum_y, sum_xy = dominated
    crossing = np.sum(count * xs * ys - xs * sum_y - ys * sum_x + sum_xy)
    sum_ab = 2 * (n * np.dot(xs, ys) - xs.sum() * ys.sum()) - 4 * crossing
    row_a, row_b = _distance_row_sums(x), _distance_row_sums(y)
    return float((sum_ab - 2 * np.dot(row_a, row_b) / n + row_a.sum() * row_b.sum() / n**2) / n**2)


def _distance_variance_1d(x: np.ndarray) -> float:
    """:func:`_distance_covariance_1d` of ``x`` with itself in O(n log n): Σ a_ij² = 2n Σ x_k² −
    2 (Σ x)², so only the row sums need the sort. A constant sample has none (exactly 0, where
    the formula's rounding would leave ±1e-13 and a correlation of rounding noise: dcor's own
    gives > 1 against a constant)."""
    if len(x) == 0 or x.min() == x.max():
        return 0.0
    n, row = len(x), _distance_row_sums(x)
    sum_squares = 2 * n * np.dot(x, x) - 2 * x.sum() ** 2
    return max(float((sum_squares - 2 * np.dot(row, row) / n + row.sum() ** 2 / n**2) / n**2), 0.0)


def _correlation_from_moments(covariance: float, variance_x: float, variance_y: float) -> float:
    """Distance correlation from dCov²(x, y), dVar²(x) and dVar²(y); 0 where a variance is 0
    (rounding can leave any of them slightly below 0)."""
    denominator = np.sqrt(max(variance_x, 0.0) * max(variance_y, 0.0))
    return float(np.sqrt(max(covariance, 0.0) / denominator)) if denominator > 0 else 0.0


def _distance_correlation_1d(x: np.ndarray, y: np.ndarray) -> float:
    return _correlation_from_moments(_distance_covariance_1d(x, y), _distance_variance_1d(x),
                                     _distance_variance_1d(y))


# distances per block of rows: 512 KiB per temporary of a block, the smallest L2 per core of
# the CPUs we have used (at 3,000 genes, blocks of 64 rows, 1.5 MiB per temporary, took 1.9×
# longer on an AVX2 EPYC with 512 KiB of L2 than blocks of 21 rows)
DISTANCE_BLOCK_ELEMENTS = 2**16


def distance_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Distance correlation (Székely et al. 2007) of the rows of ``x`` (n, d) with ``y`` (n,).

    Equal to ``dcor.distance_correlation`` (a test; dcor itself is not imported: it compiles its
    numba kernels on import, ~4 s in every process that scores). For d = 1, from
    :func:`_distance_covariance_1d`. For d > 1 without an n × n matrix: with a_ij = |x_i − x_j|,
    b_ij = |y_i − y_j| and A the double-centred a, n² dCov² = Σ A_ij b_ij = Σ a_ij b_ij −
    2 Σ_i ā_i b_i· + ā ΣΣ b_ij (ā_i: a's row means, ā their mean, b_i·: b's row sums), and
    n² dVar²(x) = Σ a_ij² − 2n Σ ā_i² + n² ā², with Σ a_ij² = 2n Σ|x_i|² − 2|Σ x_i|². So a is
    computed once, in blocks of rows that stay in cache, for its row sums and Σ a_ij b_ij.
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape[1] == 1:
        return _distance_correlation_1d(x[:, 0], y)
    if len(x) == 0 or (x.min(axis=0) == x.max(axis=0)).all():  # constant: see _distance_variance_1d
        return 0.0
    n = len(y)
    row_sums_a, sum_ab = np.empty(n), 0.0
    block = max(1, DISTANCE_BLOCK_ELEMENTS // n)
    for start in range(0, n, block):
        rows = slice(start, start + block)
        a = np.zeros((len(x[rows]), n))
        for column in x.T:  # squared Euclidean distances, one coordinate at a time, in place
            diff = np.subtract.outer(column[rows], column)
            np.square(diff, out=diff)
            a += diff
        np.sqrt(a, out=a)
        row_sums_a[rows] = a.sum(axis=1)
        sum_ab += float(np.einsum("ij,ij->", a, np.abs(np.subtract.outer(y[rows], y))))
    row_sums_b = _distance_row_sums(y)
    row_means_a = row_sums_a / n
    mean_a = row_means_a.mean()
    covariance = (sum_ab - 2 * row_means_a @ row_sums_b + mean_a * row_sums_b.sum()) / n**2
    sum_a_squared = 2 * n * np.einsum("ij,ij->", x, x) - 2 * np.sum(x.sum(axis=0) ** 2)
    variance_x = (sum_a_squared - 2 * n * row_means_a @ row_means_a + n**2 * mean_a**2) / n**2
    return _correlation_from_moments(covariance, variance_x, _distance_variance_1d(y))


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
        from sklearn.linear_model import TheilSenRegressor  # only this engine needs scikit-learn

        model = TheilSenRegressor(fit_intercept=False, max_subpopulation=max_subpopulation, max_iter=1000,
                                  random_state=random_state).fit(singles, delta_ab)
        c1, c2 = (float(c) for c in model.coef_)
    else:
        c1, c2 = (float(c) for c in theil_sen_two_predictors(singles, delta_ab, max_subpopulation, random_state))
    dcor_a = distance_correlation(delta_a, delta_ab)
    dcor_b = distance_correlation(delta_b, delta_ab)
    with np.errstate(divide="ignore", invalid="ignore"):
        dominance = float(np.abs(np.log10(np.float64(c1) / np.float64(c2))))
        equality = float(np.float64(min(dcor_a, dcor_b)) / np.float64(max(dcor_a, dcor_b)))
    return {
        "c1": c1, "c2": c2, "magnitude": float(np.hypot(c1, c2)),
        "corr_fit": float(np.corrcoef(singles @ np.array([c1, c2]), delta_ab)[0, 1]),
        "dcor": distance_correlation(singles, delta_ab),
        "dcor_singles": distance_correlation(delta_a, delta_b),
        "dcor_a": dcor_a, "dcor_b": dcor_b,
        "equality_of_contribution": equality,
        "dominance": dominance,
    }


# Norman et al. fitted their GI model on another scale than GEARS' (Perturbseq_GI,
# GI_model_fits.ipynb): each cell's UMIs scaled to the control cells' median total, each gene
# z-scored against the control cells, the condition's mean z-score, over the genes with a mean
# above 0.5 raw UMI per cell that no guide targets. Standardised genes weigh alike, and weakly
# expressed genes, whose changes are mostly counting noise, are left out: the noise in the
# singles pulls his Theil–Sen coefficients towards zero far less than on GEARS' scale
# (log-normalised means over all 2,967 high-mean genes).
NORMAN_MIN_MEAN_UMIS = 0.5


def norman_scale_means(adata: ad.AnnData, min_mean_umis: float = NORMAN_MIN_MEAN_UMIS) -> pd.DataFrame:
    """Condition means on Norman's GI scale (conditions × genes; ``ctrl`` ≈ 0): the mean over a
    condition's cells of each gene's z-score against the control cells, from UMIs scaled to the
    control cells' median total, over the genes whose mean raw UMIs per cell exceed
    ``min_mean_umis`` and that are not a perturbation's target.

    ``adata`` is in GEARS' layout (``X`` = log1p of counts normalised to a common total, as the
    simulator and GEARS write it) with each cell's raw total in ``obs['total_counts']``: the raw
    counts are ``expm1(X)`` rescaled to it. Genes without spread in the control cells are left
    out (no z-score)."""
    import anndata as ad
    import scipy.sparse as sp

    from helpers.conditions import condition_means, genes_of

    if "total_counts" not in adata.obs:
        raise ValueError("Norman's GI scale needs each cell's raw UMI total in obs['total_counts'] "
                         "(the simulated data has it; a file without it cannot be put on his scale)")
    counts = sp.csr_matrix(adata.X, dtype=np.float64)
    counts.data = np.expm1(counts.data)
    normalised_total = np.asarray(counts.sum(axis=1)).ravel()
    raw_total = adata.obs["total_counts"].to_numpy(np.float64)
    condition = adata.obs["condition"].astype(str).to_numpy()
    is_control = condition == CONTROL
    raw_mean = np.asarray((sp.diags(raw_total / np.maximum(normalised_total, 1e-12)) @ counts).mean(axis=0)).ravel()
    # every cell at the control cells' median total (a common scale drops out of a z-score)
    scaled = sp.diags(np.median(raw_total[is_control]) / np.maximum(normalised_total, 1e-12)) @ counts
    targets = set(genes_of(pd.Series(np.unique(condition))))
    control = scaled[is_control]
    control_mean = np.asarray(control.mean(axis=0)).ravel()
    control_sd = np.sqrt(np.maximum(np.asarray(control.multiply(control).mean(axis=0)).ravel()
                                    - control_mean**2, 0.0) * is_control.sum() / max(is_control.sum() - 1, 1))
    keep = (raw_mean > min_mean_umis) & (control_sd > 0) & ~adata.var_names.isin(list(targets))
    kept = ad.AnnData(sp.csr_matrix(scaled[:, keep]), obs=adata.obs[["condition"]],
                      var=pd.DataFrame(index=adata.var_names[keep]))
    return (condition_means(kept) - control_mean[keep]) / control_sd[keep]


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


def interaction_scores(means: pd.DataFrame, pairs: Sequence[str], genes: Sequence[str],
                       engine: str = "fast", max_subpopulation: int = 100_000,
                       random_state: int = 1000, n_jobs: int = 1, progress: bool = False) -> pd.DataFrame:
    """GI scores (:func:`gi_scores`) of each two-gene condition in ``pairs``, from condition
    means (rows: conditions incl. ``ctrl`` and the pairs' singles; columns ⊇ ``genes``), fitted on
    ``genes``. ``c1`` belongs to the first gene as written. Pairs lacking a single are skipped
    with a warning that lists them. ``n_jobs`` threads score pairs in parallel (NumPy releases
    the GIL in the heavy loops); the result does not depend on it."""
    missing_genes = sorted(set(genes) - set(means.columns))
    if missing_genes:
        raise ValueError(f"{len(missing_genes)} GI genes are not in the means, e.g. {missing_genes[:5]}")
    singles = single_changes(means)[list(genes)]
    control = means.loc[CONTROL, list(genes)]
    for pair in pairs:
        if not is_combo(pair):
            raise ValueError(f"{pair!r} is not a two-gene perturbation")
    skipped = [p for p in pairs if p not in means.index
               or not set(condition_genes(p)) <= set(singles.index)]
    scored = [p for p in pairs if p not in skipped]

    def score(pair: str) -> dict[str, float | str]:
        a, b = condition_genes(pair)
        return {"perturbation": pair,
                **gi_scores(singles.loc[a], singles.loc[b], means.loc[pair, list(genes)] - control,
                            max_subpopulation, random_state, engine)}

    with ThreadPoolExecutor(max_workers=max(1, n_jobs)) as pool:
        rows = list(progress_bar(pool.map(score, scored), progress, total=len(scored), desc="GI scores",
                                 mininterval=2))
    if skipped:
        warnings.warn(f"no single-gene data for {len(skipped)} pair(s), left out of the GI scores: "
                      f"{', '.join(skipped)}", stacklevel=2)
    return pd.DataFrame(rows, columns=["perturbation", *SCORE_COLUMNS])


PROFILE_CORRELATIONS = ("corr_a", "corr_b", "corr_singles", "corr_sum")


def profile_correlations(means: pd.DataFrame, pairs: Sequence[str],
                         genes: Sequence[str]) -> pd.DataFrame:
    """Norman's profile correlations of each pair in ``pairs`` with a 'ctrl' row and both
    singles in ``means``, over ``genes``: Pearson r of the pair's change over control with
    its first (``corr_a``) and second (``corr_b``) single's change, of the two singles' changes
    (``corr_singles``) and of the pair's change with their sum (``corr_sum``). Long table:
    ``perturbation, measure, value``. On measured means they read signal under the screen's
    noise, as Norman's columns of the same names (``reference.gi_fits``) do."""
    singles = single_changes(means)[list(genes)]
    control = means.loc[CONTROL, list(genes)].to_numpy()
    rows = []
    for pair in pairs:
        a, b = condition_genes(pair)
        if pair not in means.index or a not in singles.index or b not in singles.index:
            continue
        delta_a, delta_b = singles.loc[a].to_numpy(), singles.loc[b].to_numpy()
        delta_ab = means.loc[pair, list(genes)].to_numpy() - control
        values = (np.corrcoef(delta_ab, delta_a)[0, 1], np.corrcoef(delta_ab, delta_b)[0, 1],
                  np.corrcoef(delta_a, delta_b)[0, 1], np.corrcoef(delta_ab, delta_a + delta_b)[0, 1])
        rows += [{"perturbation": pair, "measure": m, "value": float(v)}
                 for m, v in zip(PROFILE_CORRELATIONS, values)]
    return pd.DataFrame(rows, columns=["perturbation", "measure", "value"])


def norman_profile_correlations(fits: pd.DataFrame) -> pd.DataFrame:
    """Norman's own profile correlations (``reference.gi_fits``) in the long layout of
    :func:`profile_correlations`."""
    return (fits.rename(columns={"condition": "perturbation"})
            .melt(id_vars="perturbation", value_vars=list(PROFILE_CORRELATIONS),
                  var_name="measure", value_name="value"))


def singles_correlations(means: pd.DataFrame, pairs: Sequence[str], genes: Sequence[str]) -> pd.Series:
    """``corr_singles`` of each pair in ``pairs`` whose two singles are in ``means`` (Pearson r of
    the singles' changes over control, over ``genes``): the pair's own cells are not needed."""
    singles = single_changes(means)[list(genes)]
    values = {}
    for pair in pairs:
        a, b = condition_genes(pair)
        if a in singles.index and b in singles.index:
            values[pair] = float(np.corrcoef(singles.loc[a], singles.loc[b])[0, 1])
    return pd.Series(values, name="corr_singles", dtype=float)


def go_jaccard(gene2go: Mapping[str, frozenset[str] | set[str]], a: str, b: str) -> float:
    """Jaccard similarity of two genes' GO term sets (NaN when neither has a term)."""
    terms_a, terms_b = gene2go.get(a, frozenset()), gene2go.get(b, frozenset())
    union = len(terms_a | terms_b)
    return len(terms_a & terms_b) / union if union else float("nan")


CLUSTER_RELATIONS = ("same cluster", "different clusters", "unclustered gene")


def singles_similarity(corr_singles: pd.Series, gene2go: Mapping[str, frozenset[str] | set[str]],
                       clusters: Mapping[str, int]) -> pd.DataFrame:
    """What may explain how alike a pair's two singles are: per pair (``corr_singles`` indexed by
    pair, as :func:`profile_correlations` measures it or Norman's fits hold it), the GO Jaccard
    of its two genes and how Norman's GI-manifold clusters relate them (``clusters``: gene →
    cluster, −1 for HDBSCAN's unclustered genes): ``same cluster``, ``different clusters`` or
    ``unclustered gene`` (at least one gene in no cluster); ``same_label`` compares the labels as
    the file gives them, −1 included (two unclustered genes then count as alike)."""
    rows = []
    for pair, value in corr_singles.items():
        a, b = condition_genes(str(pair))
        label_a, label_b = clusters.get(a, -1), clusters.get(b, -1)
        relation = ("unclustered gene" if min(label_a, label_b) < 0
                    else "same cluster" if label_a == label_b else "different clusters")
        rows.append({"perturbation": pair, "corr_singles": float(value),
                     "go_jaccard": go_jaccard(gene2go, a, b), "cluster_relation": relation,
                     "same_label": label_a == label_b})
    return pd.DataFrame(rows, columns=["perturbation", "corr_singles", "go_jaccard",
                                       "cluster_relation", "same_label"])


def similarity_statistics(table: pd.DataFrame) -> dict[str, float]:
    """The statistics that say how much a screen's singles resemble each other
    (:func:`singles_similarity`'s table): the median ``corr_singles``, its Spearman correlation
    with GO Jaccard (and the p value), its median within the same cluster label and across
    labels (−1 counted as a label), and its median per cluster relation, with the pair counts."""
    from scipy.stats import spearmanr

    annotated = table.dropna(subset=["go_jaccard"])
    rho, p = spearmanr(annotated.corr_singles, annotated.go_jaccard)
    out = {"median_corr_singles": float(table.corr_singles.median()), "n_pairs": len(table),
           "spearman_go_jaccard": float(rho), "spearman_go_jaccard_p": float(p),
           "median_same_label": float(table.corr_singles[table.same_label].median()),
           "median_different_label": float(table.corr_singles[~table.same_label].median())}
    for relation in CLUSTER_RELATIONS:
        chosen = table.corr_singles[table.cluster_relation == relation]
        key = relation.replace(" ", "_")
        out[f"median_{key}"] = float(chosen.median()) if len(chosen) else float("nan")
        out[f"n_{key}"] = len(chosen)
    return out


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


def magnitude_correlation(true: pd.DataFrame, predicted: pd.DataFrame) -> dict[str, float]:
    """Pearson ``r`` (and its two-sided ``p``) of true and predicted magnitudes over the pairs
    both score; ``n`` the number of pairs. ``r`` is NaN when either side is constant (a model
    that predicts the same interaction for every pair, such as ``additive``)."""
    from scipy.stats import pearsonr

    merged = true[["perturbation", "magnitude"]].merge(predicted[["perturbation", "magnitude"]],
                                                       on="perturbation", suffixes=("_true", "_predicted"))
    x, y = merged.magnitude_true.to_numpy(), merged.magnitude_predicted.to_numpy()
    if len(merged) < 3 or np.ptp(x) < 1e-12 or np.ptp(y) < 1e-12:
        return {"r": float("nan"), "p": float("nan"), "n": len(merged)}
    r, p = pearsonr(x, y)
    return {"r": float(r), "p": float(p), "n": len(merged)}


def top_pair_table(predicted: pd.DataFrame, true: pd.DataFrame, verified: Mapping[str, set[str]],
                   k: int = 20) -> pd.DataFrame:
    """A model's top-``k`` synergistic and suppressive pairs (:func:`top_pairs`) with whether
    Norman verified each as that kind and whether the truth's own top-``k`` has it."""
    ours, theirs = top_pairs(predicted, k), top_pairs(true, k)
    true_top = {kind: set(group.perturbation.map(pair_key)) for kind, group in theirs.groupby("kind")}
    keys = ours.perturbation.map(pair_key)
    ours["verified"] = [key in verified.get(kind, set()) for key, kind in zip(keys, ours.kind)]
    ours["in_true_top"] = [key in true_top.get(kind, set()) for key, kind in zip(keys, ours.kind)]
    return ours


def precision_table(top: pd.DataFrame, ks: Sequence[int] = (10, 20)) -> pd.DataFrame:
    """precision@k of a :func:`top_pair_table` against Norman's verified sets and against the
    truth's top pairs: ``kind, reference, k, precision``."""
    rows = []
    for kind, group in top.sort_values("rank").groupby("kind"):
        for reference_column, reference in (("verified", "norman_verified"), ("in_true_top", "true_top")):
            for k in ks:
                rows.append({"kind": kind, "reference": reference, "k": k,
                             "precision": float(group[reference_column].iloc[:k].mean())})
    return pd.DataFrame(rows)


def type_precision(scores: pd.DataFrame, verified: Mapping[str, set[str]]) -> pd.DataFrame:
    """Per GI type of :data:`GI_THRESHOLDS`: how many pairs the thresholds call that type, how
    many of those Norman verified as it, and the precision (NaN when none is called); ``n_verified``
    counts the verified pairs among those scored."""
    calls = call_interactions(scores)
    keys = calls.perturbation.map(pair_key)
    rows = []
    for kind in GI_THRESHOLDS:
        called = keys[calls[kind]]
        hits = int(called.isin(verified.get(kind, set())).sum())
        rows.append({"type": kind, "n_called": len(called), "n_called_verified": hits,
                     "n_verified": int(keys.isin(verified.get(kind, set())).sum()),
                     "precision": hits / len(called) if len(called) else float("nan")})
    return pd.DataFrame(rows)


def significant_r(n: int, alpha: float = 0.05) -> float:
    """The smallest |Pearson r| over ``n`` pairs that is significant at ``alpha`` (two-sided t test
    of zero correlation)."""
    from scipy.stats import t

    if n < 3:
        return float("nan")
    critical = t.ppf(1 - alpha / 2, n - 2)
    return float(critical / np.sqrt(n - 2 + critical**2))


def norman_magnitudes(fits: pd.DataFrame) -> pd.Series:
    """Norman's magnitude sqrt(c_a² + c_b²) per pair (``reference.gi_fits``), keyed order-free
    (:func:`pair_key`)."""
    return pd.Series(np.hypot(fits.c_a, fits.c_b).to_numpy(), index=fits.condition.map(pair_key))


def truth_fidelity(scores: pd.DataFrame, fits: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
    """How well true interaction magnitudes track Norman's own fits, per ``source``.

    ``scores``: ``source, perturbation, magnitude`` (e.g. sources ``cells`` and ``noise-free``);
    ``fits``: Norman's Theil–Sen fits (``condition, c_a, c_b``, as ``reference.gi_fits``), matched
    order-free. Per source: Pearson ``r`` and least-squares ``slope`` (with intercept) of the
    scored magnitude on Norman's sqrt(c_a² + c_b²), ``n`` pairs, ``agreement``: the share of
    pairs on which GEARS' synergy threshold (magnitude > ``threshold``, default 1.15) makes the
    same call on both, the ``median`` magnitude and the share ``above`` the threshold, and the
    same two of Norman's own magnitudes on those pairs (``norman_median``, ``norman_above``).
    """
    if threshold is None:
        threshold = GI_THRESHOLDS["synergy"][2]
    norman = norman_magnitudes(fits)
    rows = []
    for source, group in scores.groupby("source", sort=False):
        ours = pd.Series(group.magnitude.to_numpy(), index=group.perturbation.map(pair_key))
        shared = ours.index.intersection(norman.index)
        x, y = norman.loc[shared].to_numpy(), ours.loc[shared].to_numpy()
        if len(shared) < 3:
            raise ValueError(f"source {source!r} shares only {len(shared)} pairs with Norman's fits")
        slope, _ = np.polyfit(x, y, 1)
        rows.append({"source": source, "r": float(np.corrcoef(x, y)[0, 1]), "slope": float(slope),
                     "n": len(shared), "agreement": float(np.mean((x > threshold) == (y > threshold))),
                     "median": float(np.median(y)), "above": float(np.mean(y > threshold)),
                     "norman_median": float(np.median(x)), "norman_above": float(np.mean(x > threshold))})
    return pd.DataFrame(rows)


# Detection as a ranking problem (Ahlmann-Eltze et al. 2025 read GI prediction as TPR against the
# false-discovery proportion): which pairs are synergistic (or suppressive) by the truth's call,
# and does a model's own magnitude rank them first? The truth calls by GEARS' thresholds.
DETECTION_KINDS = ("synergy", "suppressor")


def detection_labels(truth: pd.DataFrame, kind: str) -> pd.Series:
    """The truth's call per pair (``perturbation`` → bool): magnitude above GEARS' synergy
    threshold, or below its suppressor threshold."""
    column, sign, threshold = GI_THRESHOLDS[kind]
    values = truth.set_index("perturbation")[column]
    return values > threshold if sign == ">" else values < threshold


def detection_curve(score: pd.Series, positive: pd.Series) -> pd.DataFrame:
    """Pairs ranked by ``score`` (highest first), cut at every distinct score (tied pairs enter
    together): ``called, tp, tpr, fdp, precision, recall`` per cut. ``score`` and ``positive`` are
    indexed by pair; only pairs in both count."""
    shared = score.index.intersection(positive.index)
    s, y = score.loc[shared].to_numpy(float), positive.loc[shared].to_numpy(bool)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    cuts = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # last index of each tie block
    tp = np.cumsum(y)[cuts]
    called = cuts + 1
    n_positive = int(y.sum())
    recall = tp / n_positive if n_positive else np.full(len(cuts), np.nan)
    precision = tp / called
    return pd.DataFrame({"called": called, "tp": tp, "tpr": recall, "fdp": 1 - precision,
                         "precision": precision, "recall": recall})


def average_precision(curve: pd.DataFrame) -> float:
    """Area under the precision–recall steps of a :func:`detection_curve` (scikit-learn's
    ``average_precision_score``): Σ (R_k − R_{k−1}) P_k. NaN without positives."""
    recall = curve.recall.to_numpy(float)
    if np.isnan(recall).all():
        return float("nan")
    return float(np.sum(np.diff(np.r_[0.0, recall]) * curve.precision.to_numpy(float)))


def gi_detection(truth: pd.DataFrame, predicted: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A model's detection of the truth's synergistic and suppressive pairs from its own
    magnitudes (higher ranks first for synergy, lower for suppression).

    Returns (curves: ``kind`` + :func:`detection_curve`'s columns; summary: ``kind,
    average_precision, base_rate, n_positive, n``), the base rate being the precision of a
    random ranking."""
    score = predicted.set_index("perturbation").magnitude
    curves, summary = [], []
    for kind in DETECTION_KINDS:
        positive = detection_labels(truth, kind)
        curve = detection_curve(score if kind == "synergy" else -score, positive)
        shared = positive.loc[positive.index.intersection(score.index)]
        curves.append(curve.assign(kind=kind))
        summary.append({"kind": kind, "average_precision": average_precision(curve),
                        "base_rate": float(shared.mean()) if len(shared) else float("nan"),
                        "n_positive": int(shared.sum()), "n": len(shared)})
    return pd.concat(curves, ignore_index=True), pd.DataFrame(summary)


# What chapter 22 reads from the scores, one result per step. ``truths`` maps a truth's source
# (``cells``: scored from the cells' means; ``noise-free``: the simulator's expected means) to
# its scores; ``predicted`` holds every model-seed's scores on the test pairs (``model, seed``).
TRUTH_LABELS = {"cells": "truth from cells", "noise-free": "noise-free truth"}
# the cells' truth measured as Norman measured his (:func:`norman_scale_means`): beside his fits only
NORMAN_SCALE_SOURCE = "cells, Norman's scale"


def source_slug(source: str) -> str:
    """A truth's source as it appears in file names (``noise-free`` → ``noise_free``)."""
    return source.replace(" ", "_").replace("-", "_")


def _per_model_seed(scores: pd.DataFrame,
                    table: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
    """``table(group)`` (a DataFrame) for each model-seed of ``scores``, labelled and stacked."""
    return pd.concat([table(group).assign(model=model, seed=seed)
                      for (model, seed), group in scores.groupby(["model", "seed"])],
                     ignore_index=True)


@dataclass(frozen=True)
class TruthFidelity:
    """How each truth's magnitudes track Norman's fits.

    Attributes:
        table: :func:`truth_fidelity` per source (``truth_fidelity.csv``).
        magnitudes: each source's scores of the pairs Norman fitted, with ``source`` and
            Norman's own magnitude ``norman`` (the figure's points).
    """

    table: pd.DataFrame
    magnitudes: pd.DataFrame

    def row(self, source: str) -> pd.Series:
        """``source``'s row of :attr:`table` (``r, slope, n, agreement``)."""
        return self.table.set_index("source").loc[source]


def _by_source(truths: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    return pd.concat([table.assign(source=source) for source, table in truths.items()],
                     ignore_index=True)


def fidelity_points(truths: Mapping[str, pd.DataFrame], fits: pd.DataFrame) -> pd.DataFrame:
    """:attr:`TruthFidelity.magnitudes`: each truth's scores of the pairs Norman fitted, with
    ``source`` and Norman's magnitude ``norman``."""
    magnitudes = _by_source(truths)
    magnitudes["norman"] = magnitudes.perturbation.map(pair_key).map(norman_magnitudes(fits))
    return magnitudes.dropna(subset=["norman"])


def fidelity_to_norman(truths: Mapping[str, pd.DataFrame], fits: pd.DataFrame) -> TruthFidelity:
    """Every truth's magnitudes against Norman's fits (``reference.gi_fits``), order-free."""
    return TruthFidelity(truth_fidelity(_by_source(truths), fits), fidelity_points(truths, fits))


@dataclass(frozen=True)
class MagnitudeCorrelations:
    """Predicted against true magnitudes.

    Attributes:
        per_seed: truth source → ``model, seed, r, p, n`` per model-seed
            (:func:`magnitude_correlation`).
        pooled: ``model, r, p, n`` of the seed-averaged magnitudes against the first truth.
    """

    per_seed: dict[str, pd.DataFrame]
    pooled: pd.DataFrame

    def labelled(self) -> dict[str, pd.DataFrame]:
        """:attr:`per_seed` keyed by each truth's label (:data:`TRUTH_LABELS`)."""
        return {TRUTH_LABELS.get(source, source): table for source, table in self.per_seed.items()}

    def tables(self) -> dict[str, pd.DataFrame]:
        """File name → table (:func:`magnitude_correlation_files`)."""
        return {name: self.per_seed[source]
                for source, name in magnitude_correlation_files(list(self.per_seed)).items()}

    def overview(self) -> pd.DataFrame:
        """Mean and SD of r over seeds, and the number of seeds, per model and truth."""
        return pd.concat({label: table.groupby("model").agg(
            r_mean=("r", "mean"), r_sd=("r", "std"), seeds=("r", "size"))
            for label, table in self.labelled().items()}, axis=1)


def magnitude_correlation_files(sources: Sequence[str]) -> dict[str, str]:
    """Truth source → the file of the correlations against it: ``magnitude_correlation.csv``
    for the first, ``magnitude_correlation_<source>.csv`` for each other."""
    return {source: "magnitude_correlation.csv" if i == 0
            else f"magnitude_correlation_{source_slug(source)}.csv" for i, source in enumerate(sources)}


def pooled_magnitude_correlation(truth: pd.DataFrame, predicted: pd.DataFrame) -> pd.DataFrame:
    """:attr:`MagnitudeCorrelations.pooled`: each model's seed-averaged magnitudes against
    ``truth``'s."""
    seed_mean = predicted.groupby(["model", "perturbation"], as_index=False).magnitude.mean()
    return pd.DataFrame([{"model": model, **magnitude_correlation(truth, group)}
                         for model, group in seed_mean.groupby("model")])


def magnitude_correlations(truths: Mapping[str, pd.DataFrame],
                           predicted: pd.DataFrame) -> MagnitudeCorrelations:
    """Each model-seed's magnitudes (``predicted``: ``model, seed, perturbation, magnitude``)
    correlated with each truth's, and the seed-averaged ones with the first truth's."""
    per_seed = {source: pd.DataFrame([
        {"model": model, "seed": seed, **magnitude_correlation(truth, group)}
        for (model, seed), group in predicted.groupby(["model", "seed"])])
        for source, truth in truths.items()}
    return MagnitudeCorrelations(per_seed, pooled_magnitude_correlation(next(iter(truths.values())), predicted))


@dataclass(frozen=True)
class TopPairs:
    """Every model-seed's (and the truth's) top synergistic and suppressive test pairs.

    Attributes:
        k: the size of each list.
        top: ``model, seed, kind, rank, perturbation, verified, in_true_top<k>``
            (:func:`top_pair_table`).
        precision: ``model, seed, kind, reference, k, precision`` (:func:`precision_table`,
            at 10 and ``k``).
        scored: the scored test pairs, order-free.
        true_top: kind → the truth's own top-``k`` pairs, order-free.
        base_rate: kind → the share of :attr:`scored` that Norman verified as that kind (the
            precision of a random list).
        verified: Norman's verified pairs by kind (:func:`verified_pairs`), order-free.
    """

    k: int
    top: pd.DataFrame
    precision: pd.DataFrame
    scored: set[str]
    true_top: dict[str, set[str]]
    base_rate: dict[str, float]
    verified: Mapping[str, set[str]]

    def tables(self) -> dict[str, pd.DataFrame]:
        return {f"top{self.k}.csv": self.top, "precision.csv": self.precision}

    def precision_overview(self) -> pd.DataFrame:
        """Mean precision over seeds: models by kind, reference and k."""
        return (self.precision.groupby(["model", "kind", "reference", "k"]).precision.mean()
                .unstack(["kind", "reference", "k"]))

    def first_seed_tops(self) -> dict[str, pd.DataFrame]:
        """Model (not the truth) → its first seed's top pairs, with their order-free ``key``."""
        first_seed = self.top.groupby("model").seed.min()
        return {model: self.top[(self.top.model == model) & (self.top.seed == seed)]
                .assign(key=lambda t: t.perturbation.map(pair_key))
                for model, seed in first_seed.items() if model != "truth"}


def top_pair_lists(scores: pd.DataFrame, truth: pd.DataFrame, verified: Mapping[str, set[str]],
                   k: int = 20) -> TopPairs:
    """The top-``k`` lists of each model-seed of ``scores`` (``model, seed, perturbation,
    magnitude``), checked against Norman's ``verified`` pairs and the ``truth``'s own lists."""
    top = _per_model_seed(scores, lambda group: top_pair_table(group, truth, verified, k))
    precision = _per_model_seed(top, lambda group: precision_table(group, ks=(10, k)))
    top = top.rename(columns={"in_true_top": f"in_true_top{k}"})[
        ["model", "seed", "kind", "rank", "perturbation", "verified", f"in_true_top{k}"]]
    precision = precision[["model", "seed", "kind", "reference", "k", "precision"]]
    return top_pairs_of(k, top, precision, truth, verified)


def top_pairs_of(k: int, top: pd.DataFrame, precision: pd.DataFrame, truth: pd.DataFrame,
                 verified: Mapping[str, set[str]]) -> TopPairs:
    """:class:`TopPairs` from its tables (``top<k>.csv``, ``precision.csv``), the truth's
    scores and Norman's ``verified`` pairs."""
    scored = set(map(pair_key, truth.perturbation))
    true_top = {kind: set(group.perturbation.map(pair_key))
                for kind, group in top_pairs(truth, k).groupby("kind")}
    base_rate = {kind: len(verified[kind] & scored) / len(scored)
                 for kind in ("synergy", "suppressor")}
    return TopPairs(k, top, precision, scored, true_top, base_rate, verified)


def type_precision_table(scores: pd.DataFrame, verified: Mapping[str, set[str]]) -> pd.DataFrame:
    """:func:`type_precision` of each model-seed of ``scores``: ``model, seed, type, n_called,
    n_called_verified, n_verified, precision``."""
    types = _per_model_seed(scores, lambda group: type_precision(group, verified))
    return types[["model", "seed", "type", "n_called", "n_called_verified", "n_verified",
                  "precision"]]


DETECTION_COLUMNS = ["truth", "model", "seed", "kind", "average_precision", "base_rate",
                     "n_positive", "n"]


@dataclass(frozen=True)
class Detection:
    """Each model-seed's detection of each truth's interacting pairs (:func:`gi_detection`).

    Attributes:
        curves: :func:`detection_curve` rows with ``kind, truth, model, seed``.
        summary: :data:`DETECTION_COLUMNS`: average precision beside a random ranking's.
    """

    curves: pd.DataFrame
    summary: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"detection.csv": self.summary, "detection_curves.csv": self.curves}

    def of(self, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The curves and summary against one truth."""
        return self.curves[self.curves.truth == source], self.summary[self.summary.truth == source]

    def overview(self) -> pd.DataFrame:
        """Average precision (mean over seeds) per truth and kind, models across, with the base
        rate and the number of positives."""
        return (self.summary.groupby(["truth", "kind", "model"])
                .agg(average_precision=("average_precision", "mean"),
                     base_rate=("base_rate", "first"), positives=("n_positive", "first"))
                .unstack("model"))


def detection(truths: Mapping[str, pd.DataFrame], predicted: pd.DataFrame,
              pairs: Sequence[str]) -> Detection:
    """Every model-seed of ``predicted`` ranking ``pairs`` against each truth's calls."""
    curves, summary = [], []
    for source, table in truths.items():
        truth = table[table.perturbation.isin(pairs)]
        for (model, seed), group in predicted.groupby(["model", "seed"]):
            curve, found = gi_detection(truth, group)
            curves.append(curve.assign(truth=source, model=model, seed=seed))
            summary.append(found.assign(truth=source, model=model, seed=seed))
    summary = pd.concat(summary, ignore_index=True)[DETECTION_COLUMNS]
    return Detection(pd.concat(curves, ignore_index=True), summary)
