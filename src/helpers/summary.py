"""Results at a glance: every model on every headline metric, with its spread over seeds, and
which differences from a reference model are larger than that spread.

Inputs are the tidy tables the evaluation and GI chapters write (``pipeline.folder("metrics")``
and ``pipeline.folder("gi")``); nothing here trains or scores.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers import gi
from helpers.lenses import LENSES, LOWER_IS_BETTER
from helpers.metrics import bootstrap_mean_ci


@dataclass(frozen=True)
class Column:
    """One column of the glance table: a name, how to read it and which way is better."""

    name: str
    label: str
    higher_is_better: bool


SUBGROUP_COLUMNS = tuple(
    Column(f"mse_de:{s}", f"mse_de (top-20 DE), {s}", False)
    for s in ("combo_seen2", "combo_seen1", "combo_seen0", "unseen_single"))
COLUMNS = (*SUBGROUP_COLUMNS,
           Column("mse_de:all", "mse_de (top-20 DE), all test", False),
           Column("mse_top20_de_non_dropout:all", "MSE top-20 non-drop-out DE, all test", False),
           Column("mse:all", "MSE all genes", False),
           Column("pearson_delta:all", "Pearson r of Δ, all genes", True),
           Column("pearson_delta_centroid:all", "Pearson r of Δ from the perturbed centroid", True),
           Column("rank_all:all", "normalised rank of the true profile (0 best, 0.5 chance)", False),
           Column("frac_in_range_45_55_non_dropout:all", "share of DE genes in the 45–55% band", True),
           Column("magnitude_r", "GI magnitude r", True),
           Column("synergy_precision_at_10", "synergy precision@10 (vs true top 20)", True),
           Column("suppressor_precision_at_10", "suppressor precision@10 (vs true top 20)", True))


def seed_values(per_perturbation: pd.DataFrame, magnitude_correlation: pd.DataFrame | None = None,
                precision: pd.DataFrame | None = None) -> pd.DataFrame:
    """One value per model, seed and glance column (``model, seed, column, value``): a
    per-perturbation metric averaged over a subgroup's perturbations (``all``: every test
    perturbation), the GI magnitude r, and precision@10 against the truth's top pairs."""
    pooled = pd.concat([per_perturbation, per_perturbation.assign(subgroup="all")])
    per_seed = pooled.groupby(["model", "seed", "metric", "subgroup"], as_index=False).value.mean()
    per_seed["column"] = per_seed.metric + ":" + per_seed.subgroup
    parts = [per_seed[["model", "seed", "column", "value"]]]
    if magnitude_correlation is not None:
        parts.append(magnitude_correlation.assign(column="magnitude_r")
                     .rename(columns={"r": "value"})[["model", "seed", "column", "value"]])
    if precision is not None:
        chosen = precision[(precision.reference == "true_top") & (precision.k == 10)
                           & (precision.model != "truth")]
        parts.append(chosen.assign(column=chosen.kind + "_precision_at_10")
                     .rename(columns={"precision": "value"})[["model", "seed", "column", "value"]])
    values = pd.concat(parts, ignore_index=True)
    return values[values.column.isin([c.name for c in COLUMNS])].reset_index(drop=True)


def glance(values: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation over seeds and number of seeds per model and column."""
    return (values.groupby(["model", "column"]).value
            .agg(mean="mean", sd="std", n_seeds="size").reset_index())


def compare_with(table: pd.DataFrame, reference: str, columns: Sequence[Column] = COLUMNS,
                 n_sd: float = 2.0) -> pd.DataFrame:
    """Each model's difference from ``reference`` per column, and whether it is larger than
    ``n_sd`` seed standard deviations (the larger of the two models'; a model trained once, or
    deterministic, contributes none). Without any seed spread the call is ``'no spread'``.
    ``verdict`` reads ``better``, ``worse``, ``within spread`` or ``no spread``."""
    indexed = table.set_index(["model", "column"])
    rows = []
    for column in columns:
        if (reference, column.name) not in indexed.index:
            continue
        ref = indexed.loc[(reference, column.name)]
        for model in table.model.unique():
            if model in (reference, "noise_ceiling") or (model, column.name) not in indexed.index:
                continue
            ours = indexed.loc[(model, column.name)]
            if not (np.isfinite(ours["mean"]) and np.isfinite(ref["mean"])):
                continue
            spreads = [row.sd for row in (ours, ref) if row.n_seeds > 1 and np.isfinite(row.sd)]
            spread = max(spreads) if spreads else np.nan
            difference = float(ours["mean"] - ref["mean"])
            if not spreads or spread == 0:
                verdict = "no spread"
            elif abs(difference) <= n_sd * spread:
                verdict = "within spread"
            else:
                verdict = "better" if (difference > 0) == column.higher_is_better else "worse"
            rows.append({"model": model, "column": column.name, "label": column.label,
                         "mean": float(ours["mean"]), "reference_mean": float(ref["mean"]),
                         "difference": difference, "spread": float(spread) if np.isfinite(spread) else np.nan,
                         "verdict": verdict})
    return pd.DataFrame(rows, columns=["model", "column", "label", "mean", "reference_mean", "difference",
                                       "spread", "verdict"])


def plain_words(comparison: pd.DataFrame, reference: str, n_sd: float = 2.0) -> list[str]:
    """One sentence per model: where it is clearly better or worse than ``reference`` (beyond
    ``n_sd`` seed standard deviations) and how many columns are within the spread."""
    sentences = []
    for model, group in comparison.groupby("model", sort=False):
        better = group[group.verdict == "better"]
        worse = group[group.verdict == "worse"]
        within = int((group.verdict == "within spread").sum())
        describe = lambda rows: "; ".join(  # noqa: E731
            f"{r.label} {r['mean']:.3g} vs {r.reference_mean:.3g}" for _, r in rows.iterrows())
        parts = []
        if len(better):
            parts.append(f"better than {reference} on {describe(better)}")
        if len(worse):
            parts.append(f"worse on {describe(worse)}")
        if within:
            parts.append(f"within {n_sd:g} seed SDs of {reference} on {within} of {len(group)} metrics")
        if not parts:
            parts.append(f"no seed spread to judge its differences from {reference} by")
        sentences.append(f"{model}: " + ", ".join(parts) + ".")
    return sentences


def data_caveats(simulator_config: Mapping[str, object] | None, fidelity: pd.DataFrame | None,
                 knobs: Mapping[str, str]) -> list[str]:
    """What the data behind the verdicts can show, in sentences built from the simulator's
    settings (``truth.uns['config']``; None for real data) and the GI truth's fidelity to
    Norman's fits (chapter 22's ``truth_fidelity.csv``; None if not scored)."""
    sentences = []
    if simulator_config is None:
        sentences.append("The data are a real screen: the verdicts are about it, not about a simulator's settings.")
    else:
        settings = ", ".join(f"{name} = {simulator_config[name]}" for name in knobs)
        sentences.append(
            "The data are simulated on Norman's scaffold, and how much a gene prior has to find was decided "
            f"when they were made ({settings}): single effects follow each gene's place on Norman's GI map (how "
            "alike his singles were, which itself follows GO) and are smoothed over GO neighbours with weight "
            f"{simulator_config['go_weight']} against {simulator_config['private_weight']} of their own, set so that "
            "the singles' similarity follows GO as far as it does in Norman's screen, while a prior learnt from "
            "control cells' co-expression only sees the perturbed genes that control cells express. A prior "
            "verdict here is a statement about this simulator (benchmarks/prior_sensitivity.py varies the GO "
            "weight).")
    if fidelity is not None and len(fidelity):
        rows = fidelity.set_index("source")
        if "cells" in rows.index:
            cells = rows.loc["cells"]
            sentences.append(
                f"The GI truth scored from the cells tracks Norman's own magnitudes with r = {cells.r:.2f} "
                f"(slope {cells.slope:.2f}, {int(cells.n)} pairs): GI verdicts against it are bounded by that.")
        if gi.NORMAN_SCALE_SOURCE in rows.index:
            his = rows.loc[gi.NORMAN_SCALE_SOURCE]
            sentences.append(
                f"Measured as Norman measured his (z-scores over the genes above 0.5 UMI per cell), "
                f"the cells give r = {his.r:.2f} (slope {his.slope:.2f}): the cells' truth above is "
                "shrunk by GEARS' scale, which scores every model too.")
        if "noise-free" in rows.index:
            clean = rows.loc["noise-free"]
            sentences.append(f"The noise-free truth gives r = {clean.r:.2f} (slope {clean.slope:.2f}).")
    return sentences


def best_per_lens(summary: pd.DataFrame, metrics: Sequence[str], subgroup: str = "all") -> pd.DataFrame:
    """Per metric, the best model (noise ceiling excluded) in ``subgroup`` by its mean, the
    runner-up, and the noise ceiling's value: ``metric, best, best_mean, second, second_mean,
    ceiling_mean``. Lower is better for the metrics in :data:`helpers.lenses.LOWER_IS_BETTER`."""
    rows = []
    for metric in metrics:
        part = summary[(summary.metric == metric) & (summary.subgroup == subgroup)].dropna(subset=["mean"])
        ceiling = part[part.model == "noise_ceiling"]["mean"]
        ranked = part[part.model != "noise_ceiling"].sort_values(
            ["mean", "model"], ascending=[metric in LOWER_IS_BETTER, True])
        if ranked.empty:
            continue
        second = ranked.iloc[1] if len(ranked) > 1 else None
        rows.append({"metric": metric, "best": ranked.iloc[0].model, "best_mean": float(ranked.iloc[0]["mean"]),
                     "second": None if second is None else second.model,
                     "second_mean": float("nan") if second is None else float(second["mean"]),
                     "ceiling_mean": float(ceiling.iloc[0]) if len(ceiling) else float("nan")})
    return pd.DataFrame(rows)


def share_ranked_first(per_perturbation: pd.DataFrame, metric: str = "rank_all") -> pd.DataFrame:
    """Per model and subgroup: the share of perturbations whose own true profile is the nearest
    to the prediction (``metric`` = 0), averaged over seeds: ``model, subgroup, share, n``."""
    part = per_perturbation[per_perturbation.metric == metric]
    per_seed = (part.assign(first=part.value == 0)
                .groupby(["model", "subgroup", "seed"]).agg(share=("first", "mean"), n=("first", "size"))
                .reset_index())
    return per_seed.groupby(["model", "subgroup"], as_index=False).agg(share=("share", "mean"), n=("n", "max"))


def lens_findings(summary: pd.DataFrame, per_perturbation: pd.DataFrame, systematic: pd.DataFrame,
                  metrics: Sequence[str] | None = None, reference: str = "gears") -> list[str]:
    """Sentences from the evaluation tables: how much of the change is systematic and what that
    does to Pearson delta, how often each model picks out the right perturbation, and the best
    model per lens."""
    metrics = list(metrics or ("mse_de", "pearson_delta", *LENSES))
    means = summary.set_index(["model", "subgroup", "metric"])["mean"]
    lines = []
    cosine = systematic.cosine_to_average_shift.dropna()
    if len(cosine):
        lines.append(
            f"Systematic variation: across the {len(cosine)} perturbations, a perturbation's change over "
            f"control has median cosine {cosine.median():.2f} (IQR {cosine.quantile(.25):.2f}–"
            f"{cosine.quantile(.75):.2f}) with the average change of all perturbations.")

    def value(model, subgroup, metric):
        return means.get((model, subgroup, metric), float("nan"))

    if not np.isnan(value("train_mean", "all", "pearson_delta")):
        others = {m: value(m, "all", "pearson_delta") for m in summary.model.unique()
                  if m not in ("train_mean", "noise_ceiling")}
        better = sorted(m for m, v in others.items() if v > value("train_mean", "all", "pearson_delta"))
        lines.append(
            f"Pearson delta against control: `train_mean`, which predicts only the average change, scores "
            f"{value('train_mean', 'all', 'pearson_delta'):.3f} over all test perturbations"
            + (f" ({reference} {value(reference, 'all', 'pearson_delta'):.3f})" if reference in others else "")
            + f"; {len(better)} of {len(others)} other models score higher"
            + (f" ({', '.join(better)})" if better else "")
            + ". Measured from the perturbed centroid instead (Systema), `train_mean` has nothing left to "
            "correlate, and "
            + ", ".join(f"{m} {value(m, 'all', 'pearson_delta_centroid'):.3f}"
                        for m in [reference, "additive", "matching_mean"] if m in others)
            + " remain.")
    first = share_ranked_first(per_perturbation).set_index(["model", "subgroup"])
    for subgroup in ("combo_seen2", "unseen_single"):
        shown = [m for m in (reference, "additive", "latent_additive", "matching_mean", "noise_ceiling")
                 if (m, subgroup) in first.index]
        if shown:
            n = int(first.loc[(shown[0], subgroup), "n"])
            lines.append(
                f"On `{subgroup}` ({n} perturbations) the true profile is the one nearest the prediction "
                "(all genes but the targets) for "
                + ", ".join(f"{m} {first.loc[(m, subgroup), 'share']:.0%}" for m in shown)
                + " of them; mean normalised rank (0.5 = chance) "
                + ", ".join(f"{m} {value(m, subgroup, 'rank_all'):.3f}" for m in shown) + ".")
    best = best_per_lens(summary, metrics)
    if len(best):
        lines.append("Best model per lens over all test perturbations (runner-up; noise ceiling): "
                     + "; ".join(f"`{r.metric}` {r.best} {r.best_mean:.3g} ({r.second} {r.second_mean:.3g}; "
                                 f"{r.ceiling_mean:.3g})" for r in best.itertuples()) + ".")
    return lines


GAIN_COLUMNS = ["model", "subgroup", "metric", "gain", "low", "high", "n_perturbations"]


def prior_gains(per_perturbation: pd.DataFrame, models: Sequence[str], reference: str = "gears",
                subgroups: Sequence[str] | None = None, metrics: Sequence[str] = ("mse_de",),
                n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """How much each model in ``models`` gains over ``reference``, per subgroup and metric.

    ``per_perturbation`` is the evaluation's tidy table (``model, seed, perturbation, subgroup,
    metric, value``). Per perturbation, each model's value is averaged over its seeds; the gain
    is the model's seed mean minus the reference's, signed so that **positive = better** (the
    reference minus the model for the metrics in :data:`helpers.lenses.LOWER_IS_BETTER`, the
    model minus the reference otherwise). Perturbations where either side is missing (NaN) are
    left out. Returns one row per model, subgroup and metric: the mean gain over perturbations
    (``gain``), its percentile bootstrap interval over perturbations (``low``, ``high``; 95%,
    ``n_boot`` resamples, fixed ``seed``) and ``n_perturbations``. A model, subgroup or metric
    absent from the table gives no row.
    """
    wanted = per_perturbation[per_perturbation.metric.isin(metrics)
                              & per_perturbation.model.isin([reference, *models])]
    if subgroups is not None:
        wanted = wanted[wanted.subgroup.isin(subgroups)]
    means = (wanted.groupby(["model", "subgroup", "metric", "perturbation"]).value.mean()
             .unstack("model"))
    rows = []
    if reference not in means.columns:
        return pd.DataFrame(rows, columns=GAIN_COLUMNS)
    for model in models:
        if model not in means.columns:
            continue
        for (subgroup, metric), part in means.groupby(level=["subgroup", "metric"], sort=False):
            sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
            gains = (sign * (part[model] - part[reference])).dropna().to_numpy()
            if not len(gains):
                continue
            gain, low, high = bootstrap_mean_ci(gains, n_boot, seed=seed)
            rows.append({"model": model, "subgroup": subgroup, "metric": metric, "gain": gain,
                         "low": low, "high": high, "n_perturbations": len(gains)})
    return pd.DataFrame(rows, columns=GAIN_COLUMNS)


def _decimals(values: Sequence[float], significant: int = 2) -> int:
    """Decimals that show the largest of ``values`` to ``significant`` digits (at least 3)."""
    largest = max((abs(v) for v in values if np.isfinite(v) and v != 0), default=1.0)
    return int(min(6, max(3, significant - 1 - np.floor(np.log10(largest)))))


def _interval(row: pd.Series, decimals: int = 3) -> str:
    return f"{row.gain:+.{decimals}f} [{row.low:+.{decimals}f}, {row.high:+.{decimals}f}]"


def _setting_label(setting: str, overrides: str | None, go_spearman: float | None = None) -> str:
    if overrides is None or pd.isna(overrides) or overrides in ("{}", ""):
        values = "simulator defaults"
    else:
        values = ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}"
                           for k, v in json.loads(overrides).items())
    if go_spearman is not None and not pd.isna(go_spearman):
        values += f"; singles' Spearman with GO Jaccard {go_spearman:.2f}"
    return f"`{setting}` ({values})"


def _sweep_panel(table: pd.DataFrame) -> str | None:
    """The genes the sweep simulated (``n_high_mean_genes``: besides the perturbed ones; empty =
    the profile's full panel), as words; None when not recorded."""
    if "n_high_mean_genes" not in table or not len(table):
        return None
    n = table.n_high_mean_genes.iloc[0]
    return "the full gene panel" if pd.isna(n) else f"{int(n):,} high-mean genes besides the perturbed ones"


def similarity_statistic(path: Path, statistic: str, source: str) -> float | None:
    """One of the singles' similarity statistics chapter 01 wrote (``similarity_statistics.csv``:
    ``statistic, source, value``) for one source; None when the file, or that row, is absent
    (data without Norman's fitted pairs)."""
    if not path.is_file():
        return None
    table = pd.read_csv(path)
    if not {"statistic", "source", "value"} <= set(table.columns):
        return None
    chosen = table[(table.statistic == statistic) & (table.source == source)].value
    return float(chosen.iloc[0]) if len(chosen) and not pd.isna(chosen.iloc[0]) else None


def prior_sweep_findings(table: pd.DataFrame, default_setting: str = "default",
                         subgroups: Sequence[str] = ("unseen_single", "combo_seen0"),
                         metric: str = "mse_de", reference: str = "gears",
                         norman_go_spearman: float | None = None,
                         build_go_spearman: float | None = None) -> str:
    """Markdown sentences from the prior-sensitivity sweep (``benchmarks/prior_sensitivity.py``).

    ``table`` has one row per ``setting``, ``model``, ``subgroup`` and ``metric`` with the gain
    over ``reference`` (:func:`prior_gains`: ``gain, low, high, n_perturbations``) and the
    setting's simulator ``overrides`` as a JSON string (and, optionally, ``spearman_go_jaccard``:
    how far its singles' similarity follows GO); settings are read in the table's order.
    For each prior model and each of ``subgroups``: its gain with the 95% interval at every
    setting, the settings whose interval excludes zero, and where ``default_setting`` sits among
    the settings; whether every run behind the gains reached its plateau (``runs_converged``,
    when recorded); then the caveat that the GO signal is the simulator's and, given
    ``norman_go_spearman`` (the same statistic on Norman's screen), where the default's data sit
    against his and what a reader may and may not take from them. ``build_go_spearman`` is the
    statistic on this build's own data: the sweep may run on a smaller panel
    (``n_high_mean_genes``), whose noisier pair correlations rank GO similarity less clearly, so
    the build's own value, when given, is the one set against Norman's.
    """
    part = table[table.metric == metric]
    settings = list(dict.fromkeys(table.setting))
    first = table.drop_duplicates("setting").set_index("setting")
    overrides = first["overrides"] if "overrides" in table else pd.Series(dtype=object)
    signal = first["spearman_go_jaccard"] if "spearman_go_jaccard" in table else pd.Series(dtype=float)
    lower = metric in LOWER_IS_BETTER
    difference = (f"the value of `{reference}` minus that of the prior model" if lower
                  else f"the value of the prior model minus that of `{reference}`")
    lines = [
        f"Gain of each prior over `{reference}` on `{metric}`: per test perturbation, {difference} "
        f"(seeds averaged; positive = the prior's `{metric}` is {'lower' if lower else 'higher'}, "
        "i.e. better), mean over the subgroup's perturbations with a 95% bootstrap interval. "
        "Settings: " + "; ".join(_setting_label(s, overrides.get(s), signal.get(s)) for s in settings) + "."
    ]
    run = table.iloc[0] if len(table) else None
    if run is not None and {"profile", "seeds", "prior_target"} <= set(table.columns):
        lines[0] += (f" Profile `{run.profile}`, seeds {run.seeds}, every prior entering GEARS' "
                     f"`{run.prior_target}` embedding.")
    panel = _sweep_panel(table)
    if panel:
        lines[0] += f" Simulated on {panel}."
    if "runs_converged" in table and len(table):
        behind = table.drop_duplicates(["setting", "model"])
        short = [f"`{r.setting}` {r.model}" for r in behind.itertuples() if not bool(r.runs_converged)]
        lines[0] += (" Every run behind these gains reached its plateau." if not short else
                     f" Not every run behind these gains reached its plateau ({', '.join(short)}): "
                     "those gains are provisional.")
    for model in dict.fromkeys(part.model):
        for subgroup in subgroups:
            rows = part[(part.model == model) & (part.subgroup == subgroup)].set_index("setting")
            shown = [s for s in settings if s in rows.index]
            if not shown:
                continue
            n = int(rows.n_perturbations.max())
            d = _decimals(rows.loc[shown, ["gain", "low", "high"]].to_numpy().ravel())
            sentence = (f"- **{model}**, `{subgroup}` ({n} perturbations): "
                        + ", ".join(f"`{s}` {_interval(rows.loc[s], d)}" for s in shown) + ". ")
            excludes = [s for s in shown if rows.loc[s, "low"] > 0 or rows.loc[s, "high"] < 0]
            verdicts = ", ".join(f"`{s}` ({'better' if rows.loc[s, 'gain'] > 0 else 'worse'})"
                                 for s in excludes)
            if not excludes:
                sentence += ("Every interval includes zero: at no setting is the prior "
                             f"distinguishable from `{reference}`. ")
            elif len(excludes) == len(shown):
                sentence += f"The interval excludes zero at every setting: {verdicts}. "
            else:
                sentence += f"The interval excludes zero at {verdicts} only. "
            others = [s for s in shown if s != default_setting]
            if default_setting not in shown:
                sentence += f"The default setting `{default_setting}` was not run."
            elif others:
                gain = rows.loc[default_setting, "gain"]
                low, high = rows.loc[others, "gain"].min(), rows.loc[others, "gain"].max()
                if gain < low:
                    where = "below every other setting's"
                elif gain > high:
                    where = "above every other setting's"
                else:
                    where = "within the range of the other settings'"
                span = f"{low:+.{d}f}" if len(others) == 1 else f"{low:+.{d}f} to {high:+.{d}f}"
                sentence += f"The default's gain ({gain:+.{d}f}) is {where} ({span})."
            lines.append(sentence.rstrip())
    lines.append(
        "These are statements about simulated data: how much a gene's GO annotations predict its "
        "single-gene effect is a setting of the simulator (`go_weight`, and whether genes keep their "
        "places on Norman's GI map), so the sweep shows how the "
        "priors' verdict moves with that setting, not how much GO predicts on Norman's real screen.")
    swept = signal.get(default_setting)
    ours = build_go_spearman if build_go_spearman is not None else swept
    if norman_go_spearman is not None and ours is not None and not pd.isna(ours):
        close = abs(ours - norman_go_spearman) <= 0.05
        if build_go_spearman is None:
            whose = f"The default's singles follow their genes' GO similarity with Spearman {ours:.2f}"
        else:
            whose = f"This build's singles follow their genes' GO similarity with Spearman {ours:.2f}"
            if swept is not None and not pd.isna(swept) and abs(swept - ours) > 0.05:
                whose += (f" (the sweep's `{default_setting}` data: {swept:.2f}"
                          + (f", on {panel}, where each pair's correlation is noisier" if panel else "")
                          + ")")
        lines[-1] += (
            f" {whose}, Norman's with {norman_go_spearman:.2f}: the default is "
            + ("close to" if close else "not close to")
            + " his screen on that axis. A reader may take from the default how these priors fare "
            + ("when annotations predict effects about as far as they do in his screen"
               if close else "at the default's GO signal, which is not his screen's")
            + "; not how they fare on his cells, whose effects follow more than the simulator models, nor how a "
            "GeneMamba pretrained on a real atlas would fare (here it is pretrained on the data's "
            "own control cells).")
    bullets = "\n".join(lines[1:-1])
    return "\n\n".join(part for part in (lines[0], bullets, lines[-1]) if part)


def prior_sweep_markdown(sweep: Path, similarity: Path, root: Path) -> str:
    """The prior-sensitivity sweep's findings (:func:`prior_sweep_findings`, Norman's
    singles' GO Spearman read from chapter 01's ``similarity``), or, when the sweep's table
    ``sweep`` is absent, a sentence saying how to run it (its path shown relative to ``root``)."""
    if not sweep.is_file():
        return ("The GO-signal sweep has not been run (no "
                f"`{sweep.relative_to(root)}`); `python benchmarks/prior_sensitivity.py` runs it "
                "(about 1.5 hours at 1,000 genes on 2 cores).")
    norman_go = similarity_statistic(similarity, "spearman_go_jaccard", "Norman's screen")
    build_go = next((value for source in ("simulated cells", "this file's cells")
                     if (value := similarity_statistic(similarity, "spearman_go_jaccard", source)) is not None),
                    None)
    return prior_sweep_findings(pd.read_csv(sweep), norman_go_spearman=norman_go,
                                build_go_spearman=build_go)


def prior_target_findings(table: pd.DataFrame, about: Mapping[str, object],
                          data_run: str | None = None, data_content: Mapping[str, Any] | None = None) -> str:
    """Where the priors enter and why, from ``benchmarks/prior_target.py``'s ``table`` (``prior,
    target, seed, val_mse_top20_de, chosen, converged``: one row per seed × candidate) and its
    ``about`` (``profile``, ``commit``, ``data_run``): each target's validation MSE over the
    seeds, which one each seed alone would have picked, and the paired seed-by-seed differences
    from the pick (ahead "beyond the seed spread" when the mean difference exceeds its SD; with
    one seed there is no spread to judge by, and the sentence says so). Given this build's
    ``data_run`` (the data step's fingerprint) and ``data_content`` (what the data hold,
    :func:`helpers.data.content_signature`), says so when the benchmark ran on other data: by
    the data's signature where the benchmark recorded one (the fingerprint changes with the data
    step's code even when the data do not), else by the fingerprint."""
    from helpers.models.priors import choose_prior_target
    from helpers.profiles import get_profile

    choice = choose_prior_target(table)
    picked = choice[choice.chosen].iloc[0]
    by_seed = table.pivot_table(index="seed", columns="target", values="val_mse_top20_de")
    stats = by_seed.agg(["mean", "std"]).T.sort_values("mean")
    means = "; ".join(f"`{t}` {r['mean']:.3f}" + (f" ± {r['std']:.3f}" if len(by_seed) > 1 else "")
                      for t, r in stats.iterrows())
    winners = by_seed.idxmin(axis=1).value_counts()
    per_seed = ", ".join(f"`{t}` on {n}" for t, n in winners.items())
    differences, beyond = [], []
    for target in stats.index.drop(picked.target):
        paired = by_seed[target] - by_seed[picked.target]
        spread = f" ± {paired.std():.3f}" if len(by_seed) > 1 else ""
        differences.append(f"`{target}` − `{picked.target}` = {paired.mean():+.3f}{spread}")
        if abs(paired.mean()) > paired.std():
            beyond.append(target)
    verdict = ("no candidate is ahead of another by more than the seed-to-seed spread of their "
               "difference: the entry point is a convention the evidence allows, not a finding"
               if not beyond else
               f"the difference from {', '.join(f'`{t}`' for t in beyond)} exceeds its seed spread")
    if len(by_seed) < 2:
        verdict = "one seed gives no spread to judge these differences by"
    converged = int(table.converged.sum())
    seeds = f"{len(by_seed)} seed" + ("s" if len(by_seed) > 1 else "")
    data = get_profile(str(about.get("profile"))).data_source
    data = "simulated data" if data == "simulated" else f"the data `{data}`"
    return (f"Every prior enters GEARS' **{picked.target}** embedding: the lowest mean validation "
            f"MSE on the top-20 DE genes over {seeds} of the {about.get('profile')} "
            f"profile's data, with {picked.prior}'s prior (`benchmarks/prior_target.py`, commit "
            f"`{str(about.get('commit'))[:7]}`): {means}. Seed by seed the lowest was {per_seed}. "
            f"Paired by seed, {'; '.join(differences)}: {verdict}. {converged} of {len(table)} "
            f"candidate runs reached their plateau. The benchmark ran on {data}; on other "
            "data the chapter's `prior_targets` parameter trains the candidates and picks on "
            "validation instead." + _other_data_warning(about, data_run, data_content))


def _other_data_warning(about: Mapping[str, object], data_run: str | None,
                        data_content: Mapping[str, Any] | None) -> str:
    from helpers.data import same_content

    rerun = "rerun `python benchmarks/prior_target.py` for evidence about them."
    theirs = about.get("data_content")
    if isinstance(theirs, Mapping) and data_content is not None:
        if same_content(theirs, data_content):
            return ""
        return (f" **This build's data are not the data the benchmark ran on** (layout "
                f"`{data_content['layout']}`, the benchmark's `{theirs['layout']}`; sums "
                f"{_sums(data_content)} against {_sums(theirs)}: another simulator, profile or "
                f"data file): {rerun}")
    if data_run is None or about.get("data_run") == data_run:
        return ""
    return (f" **This build's data may not be the data the benchmark ran on** (data step "
            f"`{data_run}`, the benchmark's `{about.get('data_run')}`: another simulator, "
            f"profile or code): {rerun}")


def _sums(signature: Mapping[str, Any]) -> str:
    return "(" + ", ".join(f"{s:.7g}" for s in signature["sums"]) + ")"


def embedding_findings(structure: pd.DataFrame, coverage: pd.DataFrame, simulated: bool) -> str:
    """The embeddings chapter's findings, one Markdown bullet per prior and two closing ones.

    ``structure`` has a row per ``prior`` with ``pc1_expression_rho``,
    ``go_neighbours_same_process``, ``go_chance``, ``cluster_neighbours_same`` and
    ``cluster_chance`` (:func:`helpers.models.priors.go_structure`, ``cluster_structure``);
    ``coverage`` a row per prior and gene with ``found`` and ``perturbed``
    (:func:`helpers.models.priors.align_priors`). ``simulated`` adds the caveat that simulated
    gene programs hold little biology to learn."""
    lines = []
    for row in structure.itertuples():
        covered = coverage[coverage.prior == row.prior]
        missing = sorted(covered[covered.perturbed & ~covered.found].gene)
        perturbed_found = int(covered.found[covered.perturbed].sum())
        lines.append(
            f"- **{row.prior}** covers {int(covered.found.sum()):,} of {len(covered):,} "
            f"genes ({perturbed_found} of {int(covered.perturbed.sum())} perturbed genes"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + "). Its PC1 follows mean expression with "
            f"|ρ| = {row.pc1_expression_rho:.2f}; a gene's nearest neighbours share "
            f"its GO process {row.go_neighbours_same_process:.0%} of the time "
            f"(random: {row.go_chance:.0%})"
            # Norman's GI-manifold clusters exist for his perturbed genes only
            + ("." if pd.isna(row.cluster_neighbours_same) else
               f", and a perturbed gene's share its Norman cluster {row.cluster_neighbours_same:.0%} "
               f"of the time (random: {row.cluster_chance:.0%})."))
    if simulated:
        lines.append(
            "- The data are simulated: apart from the perturbed genes' GO smoothing, "
            "gene programs are random, so a model pretrained on these cells has little "
            "gene biology to learn; GeneMamba's prior tests the plumbing and the "
            "model's inductive bias here, not the published model's knowledge.")
    lines.append(
        "- GO-SVD is built from the annotations GEARS' perturbation graph already uses: "
        "any gain from it measures what a second route for the same knowledge buys, not "
        "new knowledge.")
    return "\n".join(lines)


def true_magnitudes_sentence(truth: pd.DataFrame) -> str:
    """Chapter 22's first finding: the true magnitudes' median and range over the test pairs,
    and how many of them GEARS' synergy and suppressor thresholds call."""
    synergy, suppressor = gi.GI_THRESHOLDS["synergy"][2], gi.GI_THRESHOLDS["suppressor"][2]
    m = truth.magnitude
    return (f"True magnitudes (from the cells): median {m.median():.2f}, "
            f"range {m.min():.2f}–{m.max():.2f}; "
            f"{int((m > synergy).sum())} of {len(truth)} test pairs above "
            f"GEARS' synergy threshold {synergy}, {int((m < suppressor).sum())} below "
            f"the suppressor threshold {suppressor}.")


def truth_fidelity_sentence(fidelity: pd.DataFrame) -> str:
    """How the cells' truth (and, where ``fidelity`` has them, the cells measured on Norman's
    scale and the noise-free truth) tracks Norman's fits: rows of ``truth_fidelity.csv``."""
    from helpers.gi import NORMAN_SCALE_SOURCE

    rows = fidelity.set_index("source")
    cells = rows.loc["cells"]
    sentence = (f"From the cells, true magnitudes track Norman's with r = {cells.r:.2f} "
                f"and slope {cells.slope:.2f} over {int(cells.n)} pairs, median {cells['median']:.2f} "
                f"with {cells.above:.0%} above GEARS' synergy threshold 1.15 (Norman's own: median "
                f"{cells.norman_median:.2f}, {cells.norman_above:.0%}); the threshold makes "
                f"Norman's call on {cells.agreement:.0%} of them.")
    if NORMAN_SCALE_SOURCE in rows.index:
        row = rows.loc[NORMAN_SCALE_SOURCE]
        sentence += (f" Measured as Norman measured his (z-scores over the genes above 0.5 UMI per "
                     f"cell), the cells give r = {row.r:.2f}, slope {row.slope:.2f}, median "
                     f"{row['median']:.2f}, {row.above:.0%} above 1.15, agreement {row.agreement:.0%}.")
    if "noise-free" in rows.index:
        row = rows.loc["noise-free"]
        sentence += (f" The noise-free truth gives r = {row.r:.2f}, slope {row.slope:.2f}, median "
                     f"{row['median']:.2f}, {row.above:.0%} above 1.15, agreement {row.agreement:.0%}.")
    return sentence


def verified_base_rate_sentence(scored: set[str], verified: Mapping[str, set[str]],
                                base_rate: Mapping[str, float]) -> str:
    """How many of the ``scored`` pairs Norman verified as synergistic and suppressive, and the
    precision a random top-k list would score (``base_rate``)."""
    return (f"Norman-verified among the {len(scored)} scored test pairs: "
            f"{len(verified['synergy'] & scored)} synergistic, "
            f"{len(verified['suppressor'] & scored)} suppressive; a random top-k list "
            f"would score precision {base_rate['synergy']:.2f} and "
            f"{base_rate['suppressor']:.2f}")


def gi_findings(by_model: Mapping[str, pd.DataFrame], n_pairs: int, cells_row: pd.Series,
                precision: pd.DataFrame, base_rate: Mapping[str, float], detection: pd.DataFrame) -> str:
    """Chapter 22's findings, from its tables: each model's magnitude correlation against each
    truth (``by_model``: truth → ``magnitude_correlation`` rows), what is significant with
    ``n_pairs`` test pairs, how the cells' truth tracks Norman's fits (``cells_row`` of
    ``truth_fidelity``), precision at 10 against Norman's verified pairs beside a random list's
    ``base_rate``, and detection's average precision per truth and kind."""
    threshold = gi.significant_r(n_pairs)
    lines = [
        f"- With {n_pairs} test pairs, |r| below {threshold:.2f} is not "
        "significant at p = 0.05."
    ]
    for name, table in by_model.items():
        summary_r = table.groupby("model").r.agg(["mean", "std", "min", "size"])
        above = [m for m in summary_r.index if summary_r.at[m, "min"] >= threshold]
        lines.append(
            f"- Against the {name}: "
            + "; ".join(
                f"{m} r undefined (the same magnitude for every pair)"
                if pd.isna(row["mean"])
                else f"{m} r = {row['mean']:.2f}"
                + (
                    f" ± {row['std']:.2f} over {int(row['size'])} seeds"
                    if row["size"] > 1
                    else ""
                )
                for m, row in summary_r.iterrows()
            )
            + ". "
            + (
                f"Significant on every seed: {', '.join(above)}."
                if above
                else "No model is significant on every seed."
            )
        )
    lines.append(
        "- The true magnitudes from the cells track Norman's fits with "
        f"r = {cells_row.r:.2f} and slope {cells_row.slope:.2f} (section 1): noise and "
        "shrinkage in the truth itself bound what any model can show against it, which "
        "is why the noise-free truth is given too where the data are simulated."
    )
    at10 = (
        precision[
            (precision.k == 10)
            & (precision.reference == "norman_verified")
            & (precision.model != "truth")
        ]
        .groupby(["kind", "model"])
        .precision.mean()
    )
    for kind in ("synergy", "suppressor"):
        if kind not in at10.index.get_level_values(0):
            continue  # no model has a list of this kind
        beat = [m for m, v in at10[kind].items() if round(v, 2) > round(base_rate[kind], 2)]  # as printed
        lines.append(
            f"- {kind.capitalize()} precision@10 against Norman's verified pairs, where "
            f"a random list scores {base_rate[kind]:.2f}: "
            + ", ".join(f"{m} {v:.2f}" for m, v in at10[kind].items())
            + (
                f" (above chance: {', '.join(beat)})."
                if beat
                else " (none above chance)."
            )
        )
    for (source, kind), group in detection.groupby(["truth", "kind"], sort=False):
        ap = group.groupby("model").average_precision.mean().dropna()
        positives = int(group.n_positive.iloc[0])
        if positives == 0 or ap.empty:
            lines.append(
                f"- Detection of {kind} pairs against the {source} truth: the "
                f"truth calls none of the {int(group.n.iloc[0])} test pairs {kind}, "
                "so there is nothing to detect."
            )
            continue
        base = group.base_rate.iloc[0]
        lines.append(
            f"- Detection of {kind} pairs against the {source} truth "
            f"({positives} of {int(group.n.iloc[0])} pairs; a random ranking reaches "
            f"AP {base:.2f}): best {ap.idxmax()} AP {ap.max():.2f}; "
            + ", ".join(f"{m} {v:.2f}" for m, v in ap.items())
            + f"; above the random ranking: {int((ap > base).sum())} of {len(ap)}."
        )
    return "\n".join(lines)


def read_optional(path: Path) -> pd.DataFrame | None:
    """A table an earlier step writes only where the data allows (GI tables need pairs)."""
    return pd.read_csv(path) if Path(path).is_file() else None


def glance_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`glance`'s table as the chapter shows it: ``mean ± sd`` per model (columns) and
    headline column (rows, labelled), ``–`` where a model has no value."""
    from helpers.models.registry import ordered

    text = (table["mean"].map(lambda v: "–" if pd.isna(v) else f"{v:.3f}")
            + table.sd.map(lambda sd: "" if pd.isna(sd) else f" ± {sd:.3f}"))
    shown = (table.assign(value=text).pivot(index="model", columns="column", values="value")
             .reindex(columns=[c.name for c in COLUMNS if c.name in set(table.column)])
             .reindex(index=[*ordered(table.model), "noise_ceiling"]).dropna(how="all").fillna("–")
             .rename(columns={c.name: c.label for c in COLUMNS}))
    return shown.T


@dataclass(frozen=True)
class CalibratedLenses:
    """Every lens, calibrated, per metric, model and subgroup: mean and SD over seeds."""

    metrics: list[str]  # the lenses present, in the book's order
    table: pd.DataFrame  # metric, model, subgroup, mean, sd, n_seeds

    @classmethod
    def from_scores(cls, calibrated: pd.DataFrame) -> CalibratedLenses:
        """From chapter 20's ``calibrated.csv`` (one row per model, seed, subgroup, metric)."""
        present = set(calibrated.metric)
        names = [m for m in ("mse_de", "mse", "pearson_delta", "pearson_delta_de", *LENSES) if m in present]
        table = (calibrated[calibrated.metric.isin(names)].groupby(["metric", "model", "subgroup"])
                 .value.agg(mean="mean", sd="std", n_seeds="size").reset_index())
        return cls(names, table)

    def display(self) -> pd.DataFrame:
        """``mean ± sd`` per metric and model (rows) and subgroup (columns, easiest first)."""
        from helpers.splits import SUBGROUPS_BY_DIFFICULTY

        subgroups = [s for s in (*SUBGROUPS_BY_DIFFICULTY, "all") if s in set(self.table.subgroup)]
        text = self.table["mean"].map("{:.2f}".format) + self.table.sd.map(
            lambda sd: "" if pd.isna(sd) else f" ± {sd:.2f}")
        return (self.table.assign(value=text).pivot(index=["metric", "model"], columns="subgroup", values="value")
                .reindex(columns=subgroups).fillna("–"))

    def findings(self, reference: str) -> list[str]:
        """The best model per lens over all test perturbations, the lenses each model wins, and
        the lenses on which ``reference`` does worse than the mean-response baseline."""
        everything = self.table[self.table.subgroup == "all"]
        best = (everything.dropna(subset=["mean"])
                .sort_values(["metric", "mean", "model"], ascending=[True, False, True])
                .groupby("metric", sort=False).head(1).set_index("metric").reindex(self.metrics)
                .dropna(subset=["model"]))
        wins = best.model.value_counts()
        below = everything[(everything.model == reference) & (everything["mean"] < 0)].metric.tolist()
        n = len(self.metrics)
        return ["Best model per lens, calibrated, over all test perturbations: "
                + "; ".join(f"`{m}` {r.model} {r['mean']:.2f}" for m, r in best.iterrows()) + ".",
                "Lenses won: " + ", ".join(f"{m} {k} of {len(best)}" for m, k in wins.items()) + ".",
                f"{reference} scores below the mean-response baseline (< 0) on "
                + (f"{len(below)} of {n} lenses: " + ", ".join(f"`{m}`" for m in below) if below
                   else f"none of the {n} lenses") + "."]


@dataclass(frozen=True)
class Results:
    """What chapter 30 writes: the glance (every model on every headline column), the
    differences from the reference, and every lens calibrated."""

    glance: pd.DataFrame
    comparison: pd.DataFrame
    lenses: CalibratedLenses


def summarise_results(reference: str, n_sd: float, record: Mapping[str, object],
                      force: bool = False) -> Results:
    """Chapter 30's tables from the evaluation's and the GI analysis's, as a run keyed on
    ``record`` (the chapter's parameters) and every table it reads, by digest
    (``runs.reuse_or_compute``)."""
    from helpers import pipeline, runs
    from helpers.download import file_digest

    scores, interactions = pipeline.folder("metrics"), pipeline.folder("gi")
    read = [scores / "per_perturbation.csv", scores / "calibrated.csv",
            interactions / "magnitude_correlation.csv", interactions / "precision.csv"]
    parameters = {**record, "inputs": {f"{p.parent.name}/{p.name}": file_digest(p) for p in read if p.is_file()},
                  "code": runs.code_digest("helpers.summary")}

    def compute(pending):
        per_perturbation = pd.read_csv(read[0])
        if reference not in set(per_perturbation.model):
            raise ValueError(f"reference_model {reference!r} has no results; choose one of "
                             f"{sorted(set(per_perturbation.model))}")
        values = seed_values(per_perturbation, read_optional(read[2]), read_optional(read[3]))
        table = glance(values)
        yield {"glance.csv": table, "comparison.csv": compare_with(table, reference, n_sd=n_sd),
               "calibrated.csv": CalibratedLenses.from_scores(pd.read_csv(read[1])).table}

    (run,) = runs.reuse_or_compute([runs.CachedRun(pipeline.SUMMARISE_RESULTS, parameters)],
                                   ["glance.csv", "comparison.csv", "calibrated.csv"], compute, force, "summaries")
    calibrated = run["calibrated.csv"]
    names = [m for m in ("mse_de", "mse", "pearson_delta", "pearson_delta_de", *LENSES) if m in set(calibrated.metric)]
    return Results(run["glance.csv"], run["comparison.csv"], CalibratedLenses(names, calibrated))
