"""Simple baselines the field now demands: Ahlmann-Eltze, Huber & Anders (Nat. Methods 2025):
no change, training mean, additive, linear; Systema (Viñas Torné et al., Nat. Biotech. 2025):
non-control mean, matching mean; PerturBench (Wu et al. 2025): latent additive.

Each takes condition means of the training data (conditions × genes, log-normalised) and returns
the predicted mean expression of the requested conditions (conditions × genes). The two Systema
baselines weight by cells as Systema does, so they also take each condition's number of cells.
:mod:`helpers.models.registry` declares them as models of the book, each through its
``predict_*`` entry point below: ``predict(inputs: BaselineInputs, **settings)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.conditions import CONTROL, condition_genes, single_changes


def _training_perturbations(means: pd.DataFrame, train: Sequence[str]) -> list[str]:
    return [c for c in train if c != CONTROL and c in means.index]


def no_change(means: pd.DataFrame, conditions: Sequence[str]) -> pd.DataFrame:
    """Every perturbation predicted as the mean control cell."""
    control = means.loc[CONTROL].to_numpy()
    return pd.DataFrame(np.tile(control, (len(conditions), 1)), index=list(conditions), columns=means.columns)


def train_mean(means: pd.DataFrame, train: Sequence[str], conditions: Sequence[str]) -> pd.DataFrame:
    """Control plus the mean change over control of all training perturbations."""
    perts = _training_perturbations(means, train)
    delta = (means.loc[perts] - means.loc[CONTROL]).mean(axis=0)
    return no_change(means, conditions) + delta.to_numpy()


def training_single_changes(means: pd.DataFrame, train: Sequence[str]) -> dict[str, np.ndarray]:
    """Change over control of each gene perturbed alone in training (``A+ctrl`` and ``ctrl+A``
    averaged when both orientations exist)."""
    return {gene: row.to_numpy() for gene, row in single_changes(means, train).iterrows()}


def additive(means: pd.DataFrame, train: Sequence[str], conditions: Sequence[str]) -> pd.DataFrame:
    """Control + Δ(A) + Δ(B) from the training singles; a gene never seen alone adds 0."""
    deltas = training_single_changes(means, train)
    zero = np.zeros(means.shape[1])
    rows = [means.loc[CONTROL].to_numpy() + sum((deltas.get(g, zero) for g in condition_genes(c)), zero)
            for c in conditions]
    return pd.DataFrame(np.vstack(rows), index=list(conditions), columns=means.columns)


def linear(means: pd.DataFrame, train: Sequence[str], conditions: Sequence[str],
           gene_names: Sequence[str], n_components: int = 10, ridge: float = 0.1) -> pd.DataFrame:
    """Ahlmann-Eltze et al.'s linear model ``Y ≈ G W Pᵀ + b``.

    ``Y`` (genes × training perturbations) holds the training condition means, ``b`` their row
    means; ``G`` (genes × K) are the top-K principal directions of ``Y - b`` across genes; a
    perturbation's embedding is the row of ``G`` of each perturbed gene, summed for pairs; ``W``
    is the ridge solution ``(GᵀG + λI)⁻¹ Gᵀ (Y - b) P (PᵀP + λI)⁻¹``. A perturbed gene missing
    from the expression matrix has a zero embedding and is predicted as ``b``.
    """
    perts = _training_perturbations(means, train)
    Y = means.loc[perts].to_numpy().T  # genes × perturbations
    b = Y.mean(axis=1, keepdims=True)
    centred = Y - b
    k = min(n_components, min(centred.shape) - 1)
    u, _, _ = np.linalg.svd(centred, full_matrices=False)
    G = u[:, :k]  # genes × K
    gene_row = {g: i for i, g in enumerate(gene_names)}

    def embedding(condition: str) -> np.ndarray:
        return sum((G[gene_row[g]] for g in condition_genes(condition) if g in gene_row), np.zeros(k))

    P = np.vstack([embedding(c) for c in perts])  # perturbations × K
    eye = np.eye(k)
    W = np.linalg.solve(G.T @ G + ridge * eye, G.T @ centred @ P) @ np.linalg.inv(P.T @ P + ridge * eye)
    P_new = np.vstack([embedding(c) for c in conditions])
    predicted = (G @ W @ P_new.T + b).T
    return pd.DataFrame(predicted, index=list(conditions), columns=means.columns)


def non_control_mean(means: pd.DataFrame, n_cells: pd.Series, train: Sequence[str],
                     conditions: Sequence[str]) -> pd.DataFrame:
    """Systema's non-control mean: every perturbation predicted as the mean of all perturbed
    training *cells* (conditions weighted by their ``n_cells``; ``train_mean`` weights every
    training perturbation alike)."""
    perts = _training_perturbations(means, train)
    weights = n_cells.reindex(perts).to_numpy(float)
    if np.isnan(weights).any() or weights.sum() <= 0:
        raise ValueError("non_control_mean needs the number of cells of every training perturbation")
    pooled = weights @ means.loc[perts].to_numpy() / weights.sum()
    return pd.DataFrame(np.tile(pooled, (len(conditions), 1)), index=list(conditions), columns=means.columns)


def matching_mean(means: pd.DataFrame, n_cells: pd.Series, train: Sequence[str],
                  conditions: Sequence[str]) -> pd.DataFrame:
    """Systema's matching mean: a perturbation predicted as the average of its genes' perturbed
    profiles measured alone in training (``A+ctrl`` and ``ctrl+A`` averaged); a gene never seen
    alone stands in with the non-control mean, so an unseen single is predicted as that mean
    (Systema's ``run_matching-mean.py``)."""
    control = means.loc[CONTROL].to_numpy()
    alone = {gene: control + delta for gene, delta in training_single_changes(means, train).items()}
    fallback = non_control_mean(means, n_cells, train, [CONTROL]).iloc[0].to_numpy()
    rows = [np.mean([alone.get(g, fallback) for g in condition_genes(c)], axis=0) for c in conditions]
    return pd.DataFrame(np.vstack(rows), index=list(conditions), columns=means.columns)


def latent_additive(means: pd.DataFrame, train: Sequence[str], conditions: Sequence[str],
                    n_components: int = 20) -> pd.DataFrame:
    """PerturBench's latent additive model with a linear (PCA) encoder: encode the training
    condition means (control included) into their top ``n_components`` principal components,
    add the latent shifts of the perturbed genes measured alone to control's code, decode.

    ``z(x) = (x - μ) V``; ``ẑ(A+B) = z(ctrl) + [z(A) - z(ctrl)] + [z(B) - z(ctrl)]``;
    ``x̂ = μ + ẑ Vᵀ``. With every component kept it is ``additive``; fewer components keep the
    directions the training perturbations share and drop the rest (noise and private effects).
    A gene never seen alone shifts nothing.
    """
    rows = [CONTROL, *_training_perturbations(means, train)]
    X = means.loc[rows].to_numpy(float)
    centre = X.mean(axis=0)
    _, _, vt = np.linalg.svd(X - centre, full_matrices=False)
    V = vt[: min(n_components, len(vt))].T  # genes × K
    codes = (X - centre) @ V  # conditions × K
    code = dict(zip(rows, codes))
    shifts: dict[str, list[np.ndarray]] = {}
    for condition in rows[1:]:
        genes = condition_genes(condition)
        if len(genes) == 1:
            shifts.setdefault(genes[0], []).append(code[condition] - code[CONTROL])
    shift = {g: np.mean(s, axis=0) for g, s in shifts.items()}
    zero = np.zeros(V.shape[1])
    latent = np.vstack([code[CONTROL] + sum((shift.get(g, zero) for g in condition_genes(c)), zero)
                        for c in conditions])
    return pd.DataFrame(centre + latent @ V.T, index=list(conditions), columns=means.columns)


@dataclass(frozen=True)
class BaselineInputs:
    """What a baseline may fit on: the condition means (conditions × genes, log-normalised; the
    training conditions and control among them), the training conditions, the conditions to
    predict, the genes' symbols in the means' column order and each condition's number of cells."""

    means: pd.DataFrame
    train: Sequence[str]
    conditions: Sequence[str]
    gene_names: Sequence[str]
    n_cells: pd.Series


# Entry points with one signature, as the registry calls them.
def predict_no_change(x: BaselineInputs) -> pd.DataFrame:
    return no_change(x.means, x.conditions)


def predict_train_mean(x: BaselineInputs) -> pd.DataFrame:
    return train_mean(x.means, x.train, x.conditions)


def predict_non_control_mean(x: BaselineInputs) -> pd.DataFrame:
    return non_control_mean(x.means, x.n_cells, x.train, x.conditions)


def predict_matching_mean(x: BaselineInputs) -> pd.DataFrame:
    return matching_mean(x.means, x.n_cells, x.train, x.conditions)


def predict_additive(x: BaselineInputs) -> pd.DataFrame:
    return additive(x.means, x.train, x.conditions)


def predict_latent_additive(x: BaselineInputs, n_components: int) -> pd.DataFrame:
    return latent_additive(x.means, x.train, x.conditions, n_components)


def predict_linear(x: BaselineInputs, n_components: int, ridge: float) -> pd.DataFrame:
    return linear(x.means, x.train, x.conditions, x.gene_names, n_components, ridge)
