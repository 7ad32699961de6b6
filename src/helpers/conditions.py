"""GEARS condition strings: ``ctrl`` for control cells, ``A+ctrl`` or ``ctrl+A`` for a single-gene
perturbation of gene A, ``A+B`` for a two-gene perturbation."""

from __future__ import annotations

import re
from collections.abc import Iterable

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

CONTROL = "ctrl"

# Separators that other tools use for combinations; seeing one gets a hint, not a silent miss.
_FOREIGN_SEPARATORS = re.compile(r"[_|;,/ ]")


def condition_genes(condition: str) -> tuple[str, ...]:
    """Genes perturbed in a condition, in the order written (``()`` for control)."""
    return tuple(part for part in condition.split("+") if part != CONTROL)


def is_single(condition: str) -> bool:
    return len(condition_genes(condition)) == 1


def is_combo(condition: str) -> bool:
    return len(condition_genes(condition)) == 2


def genes_of(conditions: Iterable[str]) -> list[str]:
    """Sorted unique genes perturbed in any of ``conditions``."""
    return sorted({g for c in conditions for g in condition_genes(c)})


def condition_problem(condition: str) -> str | None:
    """Why ``condition`` is not a valid GEARS condition string, or ``None`` when it is."""
    if condition == CONTROL:
        return None
    if "+" not in condition:
        parts = [p for p in _FOREIGN_SEPARATORS.split(condition) if p]
        if len(parts) == 2:
            return (f"{condition!r} uses a separator GEARS does not read; GEARS writes it "
                    f"{'+'.join(parts)!r} (combinations 'A+B', singles 'A+ctrl', control 'ctrl')")
        return f"{condition!r} has no '+'; write a single perturbation as '{condition}+ctrl'"
    parts = condition.split("+")
    if len(parts) != 2 or any(not p.strip() or p != p.strip() for p in parts):
        return f"{condition!r} must be two non-empty parts joined by '+' (e.g. 'A+B' or 'A+ctrl')"
    if parts == [CONTROL, CONTROL]:
        return f"{condition!r}: write control cells as 'ctrl'"
    return None


def resolve_combination(name: str, available: Iterable[str], what: str = "test combinations") -> str:
    """The spelling in ``available`` of the two-gene perturbation ``name`` (order-free: ``B+A``
    finds ``A+B``); a clear error listing the valid ones otherwise."""
    problem = condition_problem(name)
    combos = sorted(c for c in available if is_combo(c))
    if problem is None and is_combo(name):
        wanted = frozenset(condition_genes(name))
        for condition in combos:
            if frozenset(condition_genes(condition)) == wanted:
                return condition
        problem = f"{name!r} is not one of the {len(combos)} {what}"
    elif problem is None:
        problem = f"{name!r} is not a two-gene perturbation"
    raise ValueError(f"{problem}. Choose one of: {', '.join(combos)}")


def condition_by_name(obs) -> dict[str, str]:
    """GEARS' ``condition_name`` (``<cell_type>_<condition>_<dose>``, the key of its DE tables in
    ``uns``) → the condition, from a data set's ``obs``."""
    return dict(zip(obs["condition_name"].astype(str), obs["condition"].astype(str)))


def single_changes(means: pd.DataFrame, among: Iterable[str] | None = None) -> pd.DataFrame:
    """Change over control of each gene perturbed alone (genes × expression genes), from
    condition means with a ``ctrl`` row; a gene written both ``A+ctrl`` and ``ctrl+A`` gets the
    mean of the two. ``among`` keeps only those conditions (e.g. the training ones)."""
    if CONTROL not in means.index:
        raise ValueError("the condition means need a 'ctrl' row to compute changes over control")
    kept = means.index if among is None else pd.Index([c for c in among if c in means.index])
    singles = [c for c in kept if is_single(c)]
    delta = means.loc[singles] - means.loc[CONTROL]
    perturbed = pd.Index([condition_genes(c)[0] for c in singles], name="gene")  # not column keys
    return delta.groupby(perturbed).mean()


def condition_means(adata: ad.AnnData) -> pd.DataFrame:
    """Mean of ``X`` per condition (conditions × genes, columns = var_names)."""
    codes = adata.obs["condition"].astype("category")
    indicator = sp.csr_matrix((np.ones(adata.n_obs), (codes.cat.codes.to_numpy(), np.arange(adata.n_obs))),
                              shape=(len(codes.cat.categories), adata.n_obs))
    sums = indicator @ adata.X
    sums = sums.toarray() if sp.issparse(sums) else np.asarray(sums)
    counts = np.asarray(indicator.sum(axis=1)).ravel()
    return pd.DataFrame(sums / counts[:, None], index=codes.cat.categories.astype(str),
                        columns=adata.var_names)


def cells_by_condition(adata: ad.AnnData) -> dict[str, np.ndarray]:
    """Condition → its cells as a dense array (cells × genes)."""
    X = adata.X
    return {condition: np.asarray(X[index].toarray() if sp.issparse(X) else X[index], dtype=np.float32)
            for condition, index in adata.obs.groupby("condition", observed=True).indices.items()}
