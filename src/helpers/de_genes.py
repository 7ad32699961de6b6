"""GEARS' top differentially expressed genes, exactly as cell-gears' ``get_DE_genes`` and
``get_dropout_non_zero_genes`` compute them: every gene ranked per condition by a Welch t-test
against control, then the top 20 that are not drop-outs."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd

from helpers.conditions import CONTROL, condition_by_name, condition_means


def add_condition_fields(adata: ad.AnnData) -> None:
    """GEARS' derived obs columns: ``dose_val``, ``control`` and ``condition_name``."""
    condition = adata.obs["condition"].astype(str)
    two = condition.str.count(r"\+") == 1
    adata.obs["dose_val"] = np.where(two, "1+1", "1")
    adata.obs["control"] = np.where(two, 0, 1)
    adata.obs["condition_name"] = (adata.obs["cell_type"].astype(str) + "_" + condition + "_"
                                   + adata.obs["dose_val"])
    for column in ("condition", "cell_type", "dose_val", "condition_name"):
        adata.obs[column] = adata.obs[column].astype("category")


def add_de_genes(adata: ad.AnnData) -> None:
    """GEARS' DE genes: per condition, every gene ranked by |t| against control (scanpy's
    t-test, ``rankby_abs=True``), then the top 20 that are not drop-outs and not zero.

    Matches ``gears.data_utils.get_DE_genes`` + ``get_dropout_non_zero_genes``; keys are
    ``condition_name`` and gene entries are ``var_names``.
    """
    import scanpy as sc  # here, not at the top: every chapter that reads DE genes would pay its import

    add_condition_fields(adata)
    ranked: dict[str, list[str]] = {}
    for cell_type in adata.obs["cell_type"].cat.categories:
        subset = adata[adata.obs["cell_type"] == cell_type]
        reference = f"{cell_type}_{CONTROL}_1"
        with warnings.catch_warnings():  # scanpy warns once per group about frame.insert
            warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
            result = sc.tl.rank_genes_groups(subset, groupby="condition_name", reference=reference,
                                             rankby_abs=True, n_genes=adata.n_vars, use_raw=False,
                                             method="t-test", copy=True).uns["rank_genes_groups"]
        names = pd.DataFrame(result["names"])
        ranked.update({group: names[group].tolist() for group in names.columns})
    adata.uns["rank_genes_groups_cov_all"] = ranked

    means = condition_means(adata)
    control_mean = means.loc[CONTROL].to_numpy()
    name_to_condition = condition_by_name(adata.obs)
    gene_position = pd.Series(np.arange(adata.n_vars), index=adata.var_names)
    var_names = np.asarray(adata.var_names)
    top_non_dropout, top_non_zero, non_zero_idx, non_dropout_idx = {}, {}, {}, {}
    for name, genes in ranked.items():
        mean = means.loc[name_to_condition[name]].to_numpy()
        non_zero = mean != 0
        non_dropout = non_zero | (control_mean == 0)  # true zeros: zero here and in control
        order = gene_position[genes].to_numpy()
        top_non_dropout[name] = var_names[order[non_dropout[order]][:20]]
        top_non_zero[name] = var_names[order[non_zero[order]][:20]]
        non_zero_idx[name] = np.flatnonzero(non_zero)
        non_dropout_idx[name] = np.flatnonzero(non_dropout)
    adata.uns["top_non_dropout_de_20"] = top_non_dropout
    adata.uns["top_non_zero_de_20"] = top_non_zero
    adata.uns["non_zeros_gene_idx"] = non_zero_idx
    adata.uns["non_dropout_gene_idx"] = non_dropout_idx


def top_de_genes(adata: ad.AnnData, condition: str, n: int = 20) -> list[str]:
    """Gene symbols of a condition's top non-drop-out DE genes (GEARS' evaluation genes)."""
    row = adata.obs.loc[adata.obs["condition"] == condition, "condition_name"]
    if row.empty:
        raise KeyError(f"condition {condition!r} is not in the data")
    ids = adata.uns["top_non_dropout_de_20"][str(row.iloc[0])][:n]
    return adata.var.loc[list(ids), "gene_name"].astype(str).tolist()


def top_de_positions(adata: ad.AnnData) -> dict[str, np.ndarray]:
    """Condition → column positions of its top-20 non-drop-out DE genes (evaluation genes)."""
    name_to_condition = condition_by_name(adata.obs)
    position = pd.Series(np.arange(adata.n_vars), index=adata.var_names)
    return {name_to_condition[name]: position[list(ids)].to_numpy()
            for name, ids in adata.uns["top_non_dropout_de_20"].items()}


def rank_de_positions(adata: ad.AnnData, n: int = 20) -> dict[str, np.ndarray]:
    """Condition → column positions of its top ``n`` genes by the t-test ranking, drop-outs
    included (``uns['rank_genes_groups_cov_all']``: the genes of cell-gears' ``mse_de``)."""
    name_to_condition = condition_by_name(adata.obs)
    position = pd.Series(np.arange(adata.n_vars), index=adata.var_names)
    return {name_to_condition[name]: position[list(ids)[:n]].to_numpy()
            for name, ids in adata.uns["rank_genes_groups_cov_all"].items()}
