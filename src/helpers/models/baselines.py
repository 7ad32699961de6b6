"""Simple baselines the field now demands (Ahlmann-Eltze, Huber & Anders, Nat. Methods 2025).

Each takes condition means of the training data (conditions × genes, log-normalised) and returns
the predicted mean expression of the requested conditions (conditions × genes).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from helpers.conditions import CONTROL, condition_genes


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


def single_deltas(means: pd.DataFrame, train: Sequence[str]) -> dict[str, np.ndarray]:
    """Change over control of each gene perturbed alone in training (``A+ctrl`` and ``ctrl+A``
    averaged when both orientations exist)."""
    control = means.loc[CONTROL].to_numpy()
    by_gene: dict[str, list[np.ndarray]] = {}
    for condition in _training_perturbations(means, train):
        genes = condition_genes(condition)
        if len(genes) == 1:
            by_gene.setdefault(genes[0], []).append(means.loc[condition].to_numpy() - control)
    return {g: np.mean(d, axis=0) for g, d in by_gene.items()}


def additive(means: pd.DataFrame, train: Sequence[str], conditions: Sequence[str]) -> pd.DataFrame:
    """Control + Δ(A) + Δ(B) from the training singles; a gene never seen alone adds 0."""
    deltas = single_deltas(means, train)
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


BASELINES = ("no_change", "train_mean", "additive", "linear")


def predict_baseline(name: str, means: pd.DataFrame, train: Sequence[str], conditions: Sequence[str],
                     gene_names: Sequence[str]) -> pd.DataFrame:
    """Predictions of baseline ``name`` (one of :data:`BASELINES`)."""
    if name == "no_change":
        return no_change(means, conditions)
    if name == "train_mean":
        return train_mean(means, train, conditions)
    if name == "additive":
        return additive(means, train, conditions)
    if name == "linear":
        return linear(means, train, conditions, gene_names)
    raise ValueError(f"unknown baseline {name!r}; choose one of {BASELINES}")
