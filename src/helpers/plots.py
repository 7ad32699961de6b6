"""The book's figures: one function per kind of figure, each returning the figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from helpers.models import registry
from helpers.splits import SUBGROUPS_BY_DIFFICULTY

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


def learning_curves(history: pd.DataFrame, plateaus: pd.DataFrame, budget: int | None = None,
                    error: str = "val_mse_top20_de", tolerance: float = 0.02) -> Figure:
    """Validation error against optimisation steps, one panel per model and one colour per seed:
    each check (faint), their running mean (solid), the run's plateau (the running mean's lowest
    value, dashed) and the band ``tolerance`` above it; ``plateaus`` is
    :func:`helpers.convergence.convergence_table` of ``history`` by model and seed.
    ``budget``: a vertical line at that many steps."""
    from helpers.convergence import WINDOW, smoothed

    models = list(dict.fromkeys(history.model))
    fig, axes = plt.subplots(1, len(models), figsize=(max(6.5, 4.2 * len(models)), 3.8), sharey=True,
                             squeeze=False)
    for ax, model in zip(axes[0], models):
        for (seed, curve), colour in zip(history[history.model == model].groupby("seed"), plt.cm.tab10.colors):
            ax.plot(curve.step, curve[error], color=colour, lw=0.8, alpha=0.35)
            ax.plot(curve.step, smoothed(curve[error], WINDOW), color=colour, lw=1.5, label=f"seed {seed}")
            row = plateaus[(plateaus.model == model) & (plateaus.seed == seed)].iloc[0]
            ax.axhline(row.plateau, color=colour, ls="--", lw=0.8)
            ax.axhspan(row.plateau, row.plateau * (1 + tolerance), color=colour, alpha=0.12, lw=0)
            if row.step_within_tolerance is not None and not pd.isna(row.step_within_tolerance):
                ax.plot(row.step_within_tolerance, row.plateau * (1 + tolerance), marker="v", color=colour)
        if budget is not None:
            ax.axvline(budget, color="black", lw=0.8, ls=":")
        ax.set(xlabel="optimisation step", title=model)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0][0].set_ylabel("validation MSE, top-20 DE genes")
    axes[0][0].legend(frameon=False, fontsize=8)
    fig.suptitle(f"Validation checks (faint), their running mean of {WINDOW} (solid), its plateau (dashed),\n"
                 f"within {tolerance:.0%} of the plateau (band; ▼ first reached)"
                 + ("; the budget (dotted)" if budget is not None else ""), fontsize=9)
    fig.tight_layout()
    return fig


TRUTH_COLOUR = "#9467bd"  # the measured (or noise-free) truth beside the models


def model_colour(model: str) -> str:
    """The model's colour (:mod:`helpers.models.registry`)."""
    return registry.colour(model)


def ordered_models(models) -> list[str]:
    """Models in the book's order (baselines, GEARS, then the rest by name), noise ceiling dropped."""
    return registry.ordered(models)


def metric_by_subgroup(summary: pd.DataFrame, metric: str,
                       subgroups: tuple[str, ...] = SUBGROUPS_BY_DIFFICULTY,
                       ylabel: str | None = None) -> Figure:
    """Mean ± bootstrap CI of one metric per subgroup (x) and model (dodged points), with the
    noise ceiling as a grey band."""
    rows = summary[(summary.metric == metric) & summary.subgroup.isin(subgroups)]
    models = ordered_models(rows.model)
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(subgroups))
    width = 0.8 / max(len(models), 1)
    ceiling = rows[rows.model == "noise_ceiling"].set_index("subgroup")
    for i, s in enumerate(subgroups):
        if s in ceiling.index:
            ax.fill_between([i - 0.45, i + 0.45], ceiling.at[s, "ci_low"], ceiling.at[s, "ci_high"],
                            color="grey", alpha=0.25, lw=0, label="noise ceiling" if i == 0 else None)
            ax.hlines(ceiling.at[s, "mean"], i - 0.45, i + 0.45, color="grey", lw=1)
    for j, model in enumerate(models):
        part = rows[rows.model == model].set_index("subgroup").reindex(subgroups)
        offsets = x - 0.4 + width * (j + 0.5)
        ax.errorbar(offsets, part["mean"], yerr=[part["mean"] - part.ci_low, part.ci_high - part["mean"]],
                    fmt="o", capsize=3, label=model)
    ax.set_xticks(x, [f"{s}\n(n={int(rows[rows.subgroup == s].n.max()) if (rows.subgroup == s).any() else 0})"
                      for s in subgroups])
    ax.set_ylabel(ylabel or metric)
    ax.set_title(f"{metric} by test subgroup (easiest → hardest)")
    ax.legend(frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def metric_bars(summary: pd.DataFrame, metrics: list[str], ylabel: str = "") -> Figure:
    """Grouped bars (mean ± CI) of several metrics per model, noise ceiling included."""
    rows = summary[summary.metric.isin(metrics)]
    models = ordered_models(rows.model) + (["noise_ceiling"] if (rows.model == "noise_ceiling").any() else [])
    fig, ax = plt.subplots(figsize=(8, 3.8))
    x = np.arange(len(models))
    width = 0.8 / len(metrics)
    for j, metric in enumerate(metrics):
        part = rows[rows.metric == metric].set_index("model").reindex(models)
        ax.bar(x - 0.4 + width * (j + 0.5), part["mean"], width,
               yerr=[part["mean"] - part.ci_low, part.ci_high - part["mean"]], capsize=2, label=metric)
    ax.set_xticks(x, models, rotation=20)
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def embedding_pca(table: pd.DataFrame, labels: pd.Series, title: str = "", legend_title: str = "",
                  background: str = "other", name_points: bool = False) -> Figure:
    """First two principal components of the rows of ``table``, coloured by the string
    ``labels`` (the ``background`` label in light grey, drawn first); ``name_points`` writes each
    row's gene name beside it (for a few dozen points)."""
    values = table.to_numpy(dtype=float)
    centred = values - values.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    coords = u[:, :2] * s[:2]
    explained = s[:2] ** 2 / max((s**2).sum(), 1e-12)
    labels = labels.reindex(table.index).fillna(background).astype(str).to_numpy()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    cmap = plt.get_cmap("tab10" if len(set(labels)) <= 11 else "tab20")
    categories = sorted(set(labels) - {background})
    for label in ([background] if background in labels else []) + categories:
        mask = labels == label
        colour = "lightgrey" if label == background else cmap(categories.index(label) % cmap.N)
        ax.scatter(coords[mask, 0], coords[mask, 1], color=colour, s=30 if name_points else 8,
                   edgecolor="black" if name_points else "none", linewidth=0.3, label=label,
                   alpha=1.0 if name_points else 0.7)
    if name_points:
        for (x, y), gene in zip(coords, table.index):
            ax.annotate(gene, (x, y), fontsize=6, alpha=0.8, xytext=(2, 2), textcoords="offset points")
    ax.set_xlabel(f"PC1 ({explained[0]:.0%})")
    ax.set_ylabel(f"PC2 ({explained[1]:.0%})")
    ax.set_title(title)
    ax.legend(title=legend_title, frameon=False, fontsize=7, title_fontsize=8, markerscale=1.5,
              loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def pretraining_curve(history: pd.DataFrame, window: int = 10) -> Figure:
    """Pretraining losses per step (light) and their running mean (dark); with a
    ``held_out_lm_loss`` column, the next-token loss on held-out cells (points) and its lowest
    value (dashed: the plateau)."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for column, colour in (("lm_loss", "#4c72b0"), ("infonce_loss", "#dd8452")):
        ax.plot(history.step, history[column], color=colour, alpha=0.3)
        ax.plot(history.step, history[column].rolling(window, min_periods=1).mean(), color=colour,
                label=column.replace("_", " "))
    if "held_out_lm_loss" in history and history.held_out_lm_loss.notna().any():
        held = history.dropna(subset=["held_out_lm_loss"])
        ax.plot(held.step, held.held_out_lm_loss, "o-", color="black", ms=3, lw=1, label="held-out lm loss")
        ax.axhline(held.held_out_lm_loss.min(), color="black", ls="--", lw=0.8)
    ax.set(xlabel="step", ylabel="loss", title="GeneMamba pretraining")
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def prior_target_comparison(choice: pd.DataFrame) -> Figure:
    """Validation top-20-DE MSE per prior (columns) and target (points); the chosen one ringed.
    Points, not bars: the differences are small next to the MSE itself."""
    priors = sorted(choice.prior.unique())
    targets = [t for t in ("gene", "perturbation", "both") if t in set(choice.target)]
    fig, ax = plt.subplots(figsize=(2.5 + 1.5 * len(priors), 3.5))
    for j, target in enumerate(targets):
        rows = choice[choice.target == target].set_index("prior").reindex(priors)
        x = np.arange(len(priors)) + (j - (len(targets) - 1) / 2) * 0.2
        ax.scatter(x, rows.val_mse_top20_de, color=plt.get_cmap("tab10")(j), s=40, label=target, zorder=3)
        picked = rows.chosen.fillna(False).astype(bool).to_numpy()
        ax.scatter(x[picked], rows.val_mse_top20_de[picked], facecolor="none", edgecolor="black",
                   s=160, linewidth=1.5, zorder=4)
    ax.set_xticks(np.arange(len(priors)), priors)
    ax.set_xlim(-0.6, len(priors) - 0.4)
    ax.set_ylabel("validation MSE, top-20 DE genes")
    ax.set_title("Where the prior enters GEARS (ringed: chosen)")
    ax.legend(title="prior enters", frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def prior_target_evidence(table: pd.DataFrame) -> Figure:
    """Validation top-20-DE MSE per target (x) and seed (grey points, one line per seed), the
    seed mean in black with ±1 SD, the lowest mean ringed: ``table`` has ``target, seed,
    val_mse_top20_de`` (``benchmarks/prior_target.py``)."""
    targets = [t for t in ("gene", "perturbation", "both") if t in set(table.target)]
    by_seed = table.pivot_table(index="seed", columns="target", values="val_mse_top20_de")[targets]
    x = np.arange(len(targets))
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    for seed, row in by_seed.iterrows():
        ax.plot(x, row.to_numpy(), color="0.6", marker="o", markersize=4, linewidth=0.8, zorder=2)
        ax.annotate(f"seed {seed}", (x[-1], row.iloc[-1]), xytext=(6, 0), textcoords="offset points",
                    fontsize=7, color="0.4", va="center")
    mean, sd = by_seed.mean(), by_seed.std()
    ax.errorbar(x + 0.12, mean, yerr=sd, fmt="o", color="black", capsize=3, zorder=3, label="mean ± SD")
    best = int(np.argmin(mean.to_numpy()))
    ax.scatter([x[best] + 0.12], [mean.iloc[best]], facecolor="none", edgecolor="black", s=160,
               linewidth=1.5, zorder=4)
    ax.set_xticks(x, targets)
    ax.set_xlim(-0.4, len(targets) - 0.3)
    ax.set_xlabel("where the prior enters GEARS")
    ax.set_ylabel("validation MSE, top-20 DE genes")
    ax.set_title("Lowest seed mean ringed: the entry point", fontsize=10)
    ax.legend(frameon=False, fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def combination_boxplot(true_delta: pd.DataFrame, predicted: pd.DataFrame, title: str = "") -> Figure:
    """Per gene (x, in the order of ``true_delta``'s columns), the change over control of the
    true cells (purple boxes, cells × genes) and each model's predicted change (one marker per
    model: mean over seeds, bar: seed range); ``predicted`` is long: ``model, seed, gene, delta``."""
    genes = list(true_delta.columns)
    models = ordered_models(predicted.model)
    fig, ax = plt.subplots(figsize=(max(8, 0.55 * len(genes) + 3), 4.5))
    boxes = ax.boxplot([true_delta[g].to_numpy() for g in genes], positions=np.arange(len(genes)), widths=0.6,
                       patch_artist=True, showfliers=False, medianprops={"color": "black"})
    for box in boxes["boxes"]:
        box.set(facecolor=TRUTH_COLOUR, alpha=0.35, edgecolor=TRUTH_COLOUR)
    offsets = np.linspace(-0.25, 0.25, len(models)) if len(models) > 1 else np.zeros(1)
    for offset, model in zip(offsets, models):
        per_gene = predicted[predicted.model == model].groupby("gene").delta.agg(["mean", "min", "max"]).reindex(genes)
        ax.errorbar(np.arange(len(genes)) + offset, per_gene["mean"],
                    yerr=[per_gene["mean"] - per_gene["min"], per_gene["max"] - per_gene["mean"]],
                    fmt="o", ms=4, capsize=0, color=model_colour(model), label=model)
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(genes)), genes, rotation=90)
    ax.set_ylabel("change over control (log-normalised)")
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    handles.insert(0, plt.Rectangle((0, 0), 1, 1, color=TRUTH_COLOUR, alpha=0.35))
    labels.insert(0, "true cells")
    ax.legend(handles, labels, frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def magnitude_scatters(magnitudes: pd.DataFrame, correlations: pd.DataFrame) -> Figure:
    """One panel per model: true (x) vs predicted (y) GI magnitude per test pair, seeds averaged,
    with Pearson r and p (of the seed-averaged magnitudes) in the title. ``magnitudes`` is long
    (``model, seed, perturbation, magnitude``) and includes ``model == 'truth'``;
    ``correlations`` has ``model, r, p, n`` for the seed-averaged points."""
    truth = magnitudes[magnitudes.model == "truth"].set_index("perturbation").magnitude
    models = ordered_models(m for m in magnitudes.model if m != "truth")
    columns = min(4, max(len(models), 1))
    rows = int(np.ceil(len(models) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 3.2 * rows), squeeze=False)
    stats = correlations.set_index("model")
    for ax, model in zip(axes.ravel(), models):
        predicted = magnitudes[magnitudes.model == model].groupby("perturbation").magnitude.mean()
        x = truth.reindex(predicted.index)
        ax.scatter(x, predicted, s=14, color=model_colour(model), alpha=0.8)
        lims = [min(x.min(), predicted.min()), max(x.max(), predicted.max())]
        ax.plot(lims, lims, color="grey", lw=0.8, ls="--")
        r, p = stats.at[model, "r"], stats.at[model, "p"]
        ax.set_title(f"{model}\nr = {r:.2f}, p = {p:.1e}" if np.isfinite(r) else f"{model}\nr undefined (constant)",
                     fontsize=9)
        ax.set_xlabel("true magnitude")
        ax.set_ylabel("predicted magnitude")
        ax.spines[["top", "right"]].set_visible(False)
    for ax in axes.ravel()[len(models):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def gi_venns(tops: Mapping[str, pd.DataFrame], verified: Mapping[str, set[str]],
             true_top: Mapping[str, set[str]], scored: set[str]) -> Figure:
    """Per model (columns) and kind (rows: synergy, suppressor): its top pairs vs Norman's
    verified pairs of that kind among the ``scored`` pairs vs the truth's own top pairs.
    ``tops`` maps model → :func:`helpers.gi.top_pair_table` rows with order-free ``key``."""
    from matplotlib_venn import venn3

    models = list(tops)
    kinds = ("synergy", "suppressor")
    fig, axes = plt.subplots(len(kinds), len(models), figsize=(3.0 * len(models), 5.6), squeeze=False)
    for j, model in enumerate(models):
        for i, kind in enumerate(kinds):
            ax = axes[i, j]
            ours = set(tops[model].query("kind == @kind").key)
            venn3([ours, verified.get(kind, set()) & scored, true_top.get(kind, set())],
                  set_labels=[model, "Norman\nverified", "true top"], ax=ax)
            ax.set_title(f"{kind}", fontsize=9)
    fig.tight_layout()
    return fig


def glance_heatmap(table: pd.DataFrame, columns) -> Figure:
    """Models (rows) × metrics (columns), each column coloured from worst (light) to best (dark)
    among the models, the value written in each cell; the noise ceiling is drawn last."""
    names = [c.name for c in columns if c.name in set(table.column)]
    models = [m for m in (*ordered_models(table.model), "noise_ceiling") if m in set(table.model)]
    means = table.pivot(index="model", columns="column", values="mean").reindex(index=models, columns=names)
    shade = means.copy()
    for column in columns:
        if column.name in shade:
            values = means[column.name].drop("noise_ceiling", errors="ignore")  # shade models only
            low, high = values.min(), values.max()
            scaled = (values - low) / (high - low) if not np.isclose(high, low) else values * 0 + 0.5
            shade[column.name] = scaled if column.higher_is_better else 1 - scaled
    fig, ax = plt.subplots(figsize=(1.0 * len(names) + 2.5, 0.45 * len(models) + 2.2))
    ax.imshow(shade.to_numpy(dtype=float), cmap="Greens", vmin=-0.2, vmax=1.2, aspect="auto")
    for i in range(len(models)):
        for j in range(len(names)):
            value = means.iat[i, j]
            if pd.notna(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
    labels = {c.name: c.label for c in columns}
    ax.set_xticks(range(len(names)), [labels[n] for n in names], rotation=40, ha="right", fontsize=7)
    ax.set_yticks(range(len(models)), models, fontsize=8)
    ax.set_title("Results at a glance (darker = better among the models in a column; mean over seeds;\n"
                 "the noise ceiling is not shaded)", fontsize=9)
    fig.tight_layout()
    return fig


def magnitudes_vs_norman(table: pd.DataFrame, fidelity: pd.DataFrame) -> Figure:
    """One panel per truth ``source``: its GI magnitude per pair (``source, norman, magnitude``)
    against Norman's own sqrt(c1² + c2²), with the identity line, GEARS' synergy threshold and the
    source's r, slope and synergy-call agreement (a :func:`helpers.gi.truth_fidelity` table)."""
    sources = list(fidelity.source)
    fig, axes = plt.subplots(1, len(sources), figsize=(4.6 * len(sources), 4.4), squeeze=False)
    lims = [min(table.norman.min(), table.magnitude.min()) - 0.05, max(table.norman.max(), table.magnitude.max()) + 0.05]
    for ax, row in zip(axes[0], fidelity.itertuples(index=False)):
        group = table[table.source == row.source]
        ax.scatter(group.norman, group.magnitude, s=10, alpha=0.6, color=TRUTH_COLOUR)
        ax.plot(lims, lims, color="black", lw=0.8, ls="--")
        for line in (ax.axvline, ax.axhline):
            line(1.15, color="grey", lw=0.6, ls=":")
        ax.set(xlim=lims, ylim=lims, xlabel="Norman's magnitude sqrt(c1² + c2²)",
               ylabel=f"magnitude from the truth ({row.source})",
               title=f"{row.source}: r = {row.r:.2f}, slope = {row.slope:.2f}\n"
                     f"synergy calls agree on {row.agreement:.0%} of {row.n} pairs")
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def depth_histogram(total_counts: pd.Series, norman: Mapping[str, float]) -> Figure:
    """UMIs per cell (log scale) with Norman's median and range (``reference.NORMAN_COUNTS_LAYER``)."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    bins = np.logspace(np.log10(max(total_counts.min(), 1)), np.log10(total_counts.max()), 60)
    ax.hist(total_counts, bins=bins, color=TRUTH_COLOUR, alpha=0.7, label="simulated cells")
    ax.set_xscale("log")
    ax.axvline(norman["median_umis_per_cell"], color="black", lw=1, label="Norman: median")
    for key in ("min_umis_per_cell", "max_umis_per_cell"):
        ax.axvline(norman[key], color="black", lw=0.8, ls=":", label="Norman: range" if key.startswith("min") else None)
    ax.set(xlabel="UMIs per cell", ylabel="cells", title="Depth: simulated cells and Norman's counts layer")
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def profile_correlation_boxes(table: pd.DataFrame, sources: Sequence[str]) -> Figure:
    """Norman's profile correlations per pair (``helpers.gi.profile_correlations``), one box per
    measure and ``source`` (long table: ``source, measure, value``), sources side by side."""
    measures = list(dict.fromkeys(table.measure))
    fig, ax = plt.subplots(figsize=(7, 3.4))
    width = 0.8 / len(sources)
    colours = [TRUTH_COLOUR, "0.55", "#c44e52", "#8172b2"]
    for i, source in enumerate(sources):
        rows = table[table.source == source]
        values = [rows.value[rows.measure == m].dropna().to_numpy() for m in measures]
        positions = np.arange(len(measures)) + (i - (len(sources) - 1) / 2) * width
        boxes = ax.boxplot(values, positions=positions, widths=width * 0.9, patch_artist=True,
                           showfliers=False, medianprops={"color": "black"})
        for patch in boxes["boxes"]:
            patch.set(facecolor=colours[i % len(colours)], alpha=0.7)
        ax.plot([], [], "s", color=colours[i % len(colours)], alpha=0.7, label=source)
    ax.set_xticks(np.arange(len(measures)), measures)
    ax.axhline(0, color="0.8", lw=0.8, zorder=0)
    ax.set(ylabel="Pearson r over the GI genes",
           title="Pairs' profile correlations: this data and Norman's screen")
    ax.legend(frameon=False, loc="lower left")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def singles_similarity_panels(table: pd.DataFrame, sources: Sequence[str]) -> Figure:
    """How alike a pair's two singles are, per ``source`` (long table of
    ``helpers.gi.singles_similarity`` with a ``source`` column): the whole distribution of
    ``corr_singles`` (cumulative), its relation to the genes' GO Jaccard, and boxes per cluster
    relation (Norman's GI-manifold clusters), sources side by side."""
    from helpers.gi import CLUSTER_RELATIONS

    colours = [TRUTH_COLOUR, "0.55", "#c44e52", "#8172b2"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    width = 0.8 / len(sources)
    for i, source in enumerate(sources):
        rows = table[table.source == source]
        colour = colours[i % len(colours)]
        values = np.sort(rows.corr_singles.dropna().to_numpy())
        axes[0].step(values, np.arange(1, len(values) + 1) / max(len(values), 1), where="post",
                     color=colour, label=f"{source} (median {np.median(values):.2f})")
        axes[1].scatter(rows.go_jaccard, rows.corr_singles, s=12, color=colour, alpha=0.7, label=source)
        groups = [rows.corr_singles[rows.cluster_relation == r].dropna().to_numpy() for r in CLUSTER_RELATIONS]
        positions = np.arange(len(CLUSTER_RELATIONS)) + (i - (len(sources) - 1) / 2) * width
        boxes = axes[2].boxplot([g if len(g) else [np.nan] for g in groups], positions=positions,
                                widths=width * 0.9, patch_artist=True, showfliers=False,
                                medianprops={"color": "black"})
        for patch in boxes["boxes"]:
            patch.set(facecolor=colour, alpha=0.7)
    axes[0].set(xlabel="corr_singles (Pearson r of the two singles' changes)", ylabel="share of pairs",
                title="Whole distribution")
    axes[1].set(xlabel="GO Jaccard of the two genes", ylabel="corr_singles", title="Annotation and effect")
    counts = table[table.source == sources[0]].cluster_relation.value_counts()
    axes[2].set_xticks(np.arange(len(CLUSTER_RELATIONS)),
                       [f"{r}\n(n = {counts.get(r, 0)})" for r in CLUSTER_RELATIONS])
    axes[2].set(ylabel="corr_singles", title="By Norman's GI-manifold clusters")
    axes[0].axvline(0, color="0.8", lw=0.8, zorder=0)
    for ax in axes[1:]:
        ax.axhline(0, color="0.8", lw=0.8, zorder=0)
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].legend(frameon=False, loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def lens_panels(summary: pd.DataFrame, metrics: Sequence[str], ylabels: Sequence[str],
                subgroups: tuple[str, ...] = SUBGROUPS_BY_DIFFICULTY) -> Figure:
    """One panel per metric: mean ± bootstrap CI per test subgroup (x) and model (dodged points,
    in each model's colour), the noise ceiling as a grey band."""
    models = ordered_models(summary.model)
    ncols = 2
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(12, 3.4 * nrows), squeeze=False)
    x = np.arange(len(subgroups))
    width = 0.8 / max(len(models), 1)
    for ax, metric, ylabel in zip(axes.flat, metrics, ylabels):
        rows = summary[(summary.metric == metric) & summary.subgroup.isin(subgroups)]
        ceiling = rows[rows.model == "noise_ceiling"].set_index("subgroup")
        for i, s in enumerate(subgroups):
            if s in ceiling.index:
                ax.fill_between([i - 0.45, i + 0.45], ceiling.at[s, "ci_low"], ceiling.at[s, "ci_high"],
                                color="grey", alpha=0.25, lw=0, label="noise ceiling" if i == 0 else None)
        for j, model in enumerate(models):
            part = rows[rows.model == model].set_index("subgroup").reindex(subgroups)
            ax.errorbar(x - 0.4 + width * (j + 0.5), part["mean"],
                        yerr=[part["mean"] - part.ci_low, part.ci_high - part["mean"]], fmt="o", ms=4,
                        capsize=2, color=model_colour(model), label=model)
        ax.set_xticks(x, subgroups, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_title(metric, fontsize=9)
        ax.spines[["top", "right"]].set_visible(False)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, frameon=False, loc="upper center", ncol=min(6, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def calibrated_heatmap(calibrated: pd.DataFrame, metrics: Sequence[str], subgroup: str = "all") -> Figure:
    """Models (rows) × metrics (columns): the calibrated score (u − b)/(r − b), mean over seeds, in
    one subgroup. Colours run from red (worse than the baseline, < 0) through white (0, the
    baseline) to blue (1, a replicate); the numbers are not clipped."""
    rows = calibrated[(calibrated.subgroup == subgroup) & calibrated.metric.isin(metrics)]
    table = (rows.groupby(["model", "metric"]).value.mean().unstack("metric")
             .reindex(index=ordered_models(rows.model), columns=[m for m in metrics if m in set(rows.metric)]))
    fig, ax = plt.subplots(figsize=(0.62 * table.shape[1] + 3, 0.42 * table.shape[0] + 2.2))
    image = ax.imshow(table.to_numpy(float), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            value = table.iat[i, j]
            if pd.notna(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6.5)
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(table.shape[0]), table.index, fontsize=8)
    fig.colorbar(image, ax=ax, shrink=0.7, label="calibrated score (colour clipped to ±1)")
    ax.set_title(f"Every model under every lens ({subgroup}): 0 = the mean baseline, 1 = a replicate",
                 fontsize=9)
    fig.tight_layout()
    return fig


def detection_curves(curves: pd.DataFrame, summary: pd.DataFrame, title: str = "") -> Figure:
    """GI detection per kind (rows: synergy, suppressor): TPR against the false-discovery
    proportion and precision against recall, one line per model (its first seed), with each
    model's average precision and the base rate (a random ranking) in the legend."""
    kinds = list(dict.fromkeys(curves.kind))
    fig, axes = plt.subplots(len(kinds), 2, figsize=(12.5, 3.6 * len(kinds)), squeeze=False)
    for row, kind in enumerate(kinds):
        part = curves[curves.kind == kind]
        for model in ordered_models(part.model):
            seed = part[part.model == model].seed.min()
            line = part[(part.model == model) & (part.seed == seed)]
            ap = summary[(summary.model == model) & (summary.seed == seed) & (summary.kind == kind)]
            label = f"{model} (AP {ap.average_precision.iloc[0]:.2f})" if len(ap) else model
            for ax, (x, y) in zip(axes[row], (("fdp", "tpr"), ("recall", "precision"))):
                ax.plot(line[x], line[y], color=model_colour(model), lw=1.3,
                        marker="o" if len(line) == 1 else None,  # a constant score: one cut
                        drawstyle="steps-post" if x == "recall" else "default",
                        label=label if x == "recall" else None)
        base = summary[summary.kind == kind].base_rate
        if len(base):
            axes[row, 1].axhline(base.iloc[0], color="grey", ls=":", lw=1, label="random ranking")
        axes[row, 0].set(xlabel="false-discovery proportion", ylabel="true-positive rate",
                         title=f"{kind}: TPR vs FDP")
        axes[row, 1].set(xlabel="recall", ylabel="precision", title=f"{kind}: precision–recall",
                         ylim=(0, 1.05))
        axes[row, 1].legend(frameon=False, fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
        for ax in axes[row]:
            ax.spines[["top", "right"]].set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
