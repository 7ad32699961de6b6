"""The book's figures: one function per kind of figure, each returning the figure."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

SUBGROUP_COLOURS = {"combo_seen2": "#4c72b0", "combo_seen1": "#55a868", "combo_seen0": "#c44e52",
                    "unseen_single": "#8172b2"}


def split_composition_bar(composition: pd.DataFrame, title: str = "GEARS simulation split: test perturbations") -> Figure:
    """Bar chart of ``subgroup,n_perturbations``, with the count above each bar."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    colours = [SUBGROUP_COLOURS.get(s, "grey") for s in composition.subgroup]
    bars = ax.bar(composition.subgroup, composition.n_perturbations, color=colours)
    ax.bar_label(bars)
    ax.set_ylabel("test perturbations")
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def cells_per_condition_hist(cells: pd.DataFrame) -> Figure:
    """Histogram of cells per condition (``condition,kind,n_cells``), singles vs combinations."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    perturbed = cells[cells.kind != "control"]
    bins = np.linspace(0, perturbed.n_cells.max() + 1, 30)
    for kind, colour in (("single", "#4c72b0"), ("combo", "#dd8452")):
        ax.hist(perturbed.loc[perturbed.kind == kind, "n_cells"], bins=bins, alpha=0.7,
                label=kind, color=colour)
    ax.set_xlabel("cells per condition")
    ax.set_ylabel("conditions")
    n_control = int(cells.loc[cells.kind == "control", "n_cells"].sum())
    ax.set_title(f"Cells per perturbation ({n_control:,} control cells not shown)")
    ax.legend()
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def gene_venn(sets: Mapping[str, set[str]], title: str = "Genes") -> Figure:
    """Venn diagram of two or three named gene sets."""
    from matplotlib_venn import venn2, venn3

    if len(sets) not in (2, 3):
        raise ValueError(f"gene_venn draws 2 or 3 sets, got {len(sets)}")
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    draw = venn3 if len(sets) == 3 else venn2
    draw(list(sets.values()), set_labels=[f"{k}\n({len(v):,})" for k, v in sets.items()], ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def true_vs_observed_scatter(table: pd.DataFrame, x: str, y: str, hue: str | None = None,
                             title: str = "", xlabel: str | None = None,
                             ylabel: str | None = None) -> Figure:
    """Scatter of two columns with the identity line and Pearson r in the title."""
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    groups = table.groupby(hue) if hue else [("", table)]
    for name, group in groups:
        ax.scatter(group[x], group[y], s=6, alpha=0.4, label=name or None, rasterized=True)
    lims = [min(table[x].min(), table[y].min()), max(table[x].max(), table[y].max())]
    ax.plot(lims, lims, color="black", lw=0.8, ls="--")
    r = np.corrcoef(table[x], table[y])[0, 1]
    ax.set_title(f"{title}\nPearson r = {r:.2f}, n = {len(table):,}".strip())
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    if hue:
        ax.legend(markerscale=3, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig
