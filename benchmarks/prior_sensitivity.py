"""Do gene-embedding priors help GEARS, and how does that depend on the GO signal in the data?

The simulator gives each gene a single-gene effect that follows its place on Norman's GI map
(how alike his singles were, which itself follows GO) and smooths it over its GO neighbours with
weight ``go_weight`` (``helpers.simulator.SimulatorConfig``): how much GO annotations predict
single effects is a setting of the simulated data, not a fact about Norman's screen. This
benchmark sweeps it. For each setting it simulates the data with those ``simulator_settings`` and runs
the book's chapters 01, 10, 11, 12, 13, 14 and 20 into a results root of its own (the executed
notebooks beside them, not in ``book/executed``), on seeds 1 and 2, with every prior entering
GEARS where the book's do (``benchmarks/prior_target.py``'s pick; chapter 14 with that one target).
It then reads back chapter 20's per-perturbation metrics and reports each prior's gain over
GEARS per test subgroup and metric (``helpers.summary.prior_gains``: per perturbation, the
seed mean of GEARS + prior minus that of GEARS, signed so that positive = better; the mean over
perturbations with a 95% bootstrap interval), and whether every run behind it reached its
plateau (chapters 11 and 14's ``convergence.csv``, GeneMamba's held-out loss from chapter 12).

    python benchmarks/prior_sensitivity.py                        # none, default, strong; default profile
    python benchmarks/prior_sensitivity.py --settings none strong --seeds 1 2 3
    python benchmarks/prior_sensitivity.py --summarise            # only re-read the finished settings
    python benchmarks/prior_sensitivity.py --profile quick --settings none --seeds 1 \\
        --root results/benchmarks/smoke --out results/benchmarks/smoke   # smoke run, a few minutes

Settings: ``none`` (go_weight 0 and the genes' places on Norman's GI map dealt out at random:
singles as alike as Norman's, but which genes are alike follows neither his screen nor GO),
``default`` (the simulator's defaults, the book's data) and ``strong`` (6 × the default
go_weight). Each is measured from its own cells by the Spearman of the singles' correlation with
the genes' GO Jaccard (Norman's screen: 0.325), reported beside the gains. Writes
``benchmarks/prior_sensitivity.csv`` (one row per setting × prior × subgroup × metric),
``benchmarks/prior_sensitivity_convergence.csv`` (one row per run),
``benchmarks/prior_sensitivity_models.csv`` (every model's own mean score per setting, subgroup
and metric) and
``benchmarks/prior_sensitivity.png``; chapter 14 shows the computed statement and the figure.

Time: each setting recomputes everything from its own data. Measured 2026-12-06 on a 2-core
Intel Xeon (AVX-512) with ``--n-high-mean-genes 1000 --seeds 1 2``: 17–31 min a setting on an idle
machine (48 min with tests beside it), about 1.5 hours for the three (``benchmarks/RESULTS.md``);
at the full panel expect about twice that. The quick profile took 2 min 45 s for one setting.
``--summarise`` reads the finished settings back in under a minute, and a rerun reuses every
finished step (the chapters' caches key on parameters and code).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import files, pipeline, profiles, roots
from helpers.models.registry import PRIOR_PREFIX, prior_model_name
from helpers.reference import REPO_ROOT

CHAPTERS = (pipeline.PREPARE_DATA, pipeline.TRAIN_BASELINES, pipeline.TRAIN_GEARS, pipeline.PRETRAIN_GENEMAMBA,
            pipeline.GENE_EMBEDDINGS, pipeline.TRAIN_GEARS_PRIORS, pipeline.EVALUATE_PERTURBATIONS)
REFERENCE = "gears"
PRIOR_MODELS = (prior_model_name("go_svd"), prior_model_name("genemamba"))
SUBGROUPS = ("unseen_single", "combo_seen0", "combo_seen1", "combo_seen2")
METRICS = ("mse_de", "pearson_delta_de", "rank_all")
PRIORS_STEP = pipeline.TRAIN_GEARS_PRIORS


def default_settings() -> dict[str, dict[str, float]]:
    """The sweep: name → ``SimulatorConfig`` overrides (chapter 01's ``simulator_settings``)."""
    from helpers.simulator import SimulatorConfig

    go_weight = SimulatorConfig().go_weight
    return {"none": {"go_weight": 0.0, "shuffle_manifold": True}, "default": {},
            "strong": {"go_weight": 6 * go_weight}}


def go_signal(root: Path) -> float:
    """How far the singles' similarity follows GO in one setting's data, measured from its cells
    as in Norman's screen: the Spearman of ``corr_singles`` with the genes' GO Jaccard (chapter
    01's ``similarity_statistics.csv``; Norman 0.325). NaN when chapter 01 has not run."""
    from helpers.summary import similarity_statistic

    value = similarity_statistic(pipeline.folder("prepared_data", root) / "similarity_statistics.csv",
                                 "spearman_go_jaccard", "simulated cells")
    return float("nan") if value is None else value


def chapter_parameters(name: str, args: argparse.Namespace, overrides: dict) -> dict:
    """The parameters one chapter runs with (each name is in the chapter's parameters cell)."""
    parameters: dict = {"profile": args.profile}
    if name == pipeline.PREPARE_DATA:
        parameters["simulator_settings"] = dict(overrides)
        if args.n_high_mean_genes is not None:
            parameters["n_high_mean_genes"] = args.n_high_mean_genes
    elif name == pipeline.TRAIN_GEARS:
        parameters["seeds"] = list(args.seeds)
    elif name == PRIORS_STEP:
        parameters.update(seeds=list(args.seeds), prior_targets=[args.prior_target])
    return parameters


def run_setting(setting: str, overrides: dict, root: Path, args: argparse.Namespace) -> float:
    """Execute every chapter for one setting into ``root``; the wall time in seconds."""
    from helpers import book
    from helpers.progress import PROGRESS_FILE_VARIABLE

    executed = root / "executed"
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, book._console_progress(Path(tmp) / "progress.log") as progress:
        for name in CHAPTERS:
            print(f"[{setting}] executing {name} (profile={args.profile})", flush=True)
            began = time.perf_counter()
            with book._environment({"HELPERS_RESULTS_DIR": str(root), PROGRESS_FILE_VARIABLE: str(progress)}):
                try:
                    book.execute(name, chapter_parameters(name, args, overrides), executed)
                except Exception:
                    print(f"\n[{setting}] {name} failed; the executed notebook is "
                          f"{executed / f'{name}.failed.ipynb'}", flush=True)
                    raise
            print(f"\n[{setting}] {name}: {time.perf_counter() - began:.0f} s", flush=True)
    return time.perf_counter() - start


def convergence_runs(setting: str, root: Path, seeds: list[int], prior_target: str) -> pd.DataFrame:
    """One row per run of one setting: GEARS (chapter 11), GEARS + each prior (chapter 14, the
    chosen target) and GeneMamba's pretraining (chapter 12, its held-out next-token loss),
    each with ``helpers.convergence``'s plateau and ``converged``."""
    from helpers import convergence

    parts = []
    gears_table = pipeline.folder("gears_runs", root) / "convergence.csv"
    if gears_table.is_file():
        table = pd.read_csv(gears_table)
        parts.append(table[table.seed.isin(seeds)].assign(chapter=pipeline.TRAIN_GEARS))
    priors_table = root / PRIORS_STEP / "convergence.csv"
    if priors_table.is_file():
        table = pd.read_csv(priors_table)
        parts.append(table[table.seed.isin(seeds) & (table.target == prior_target)].assign(chapter=PRIORS_STEP))
    loss = pipeline.folder("genemamba", root) / "loss.csv"
    if loss.is_file():
        held = pd.read_csv(loss).dropna(subset=["held_out_lm_loss"]).assign(model="genemamba", seed=0)
        if len(held):  # as chapter 12 reads it: one fixed set of cells, no running mean
            parts.append(convergence.convergence_table(held, ["model", "seed"], error="held_out_lm_loss",
                                                       window=1).assign(chapter=pipeline.PRETRAIN_GENEMAMBA))
    if not parts:
        return pd.DataFrame()
    table = pd.concat(parts, ignore_index=True).assign(setting=setting)
    first = ["setting", "chapter", "model", "target", "seed"]
    table = table.reindex(columns=[*first, *[c for c in table.columns if c not in first]])
    table["converged"] = table.converged.astype(bool)
    return table


def gains_for_setting(setting: str, overrides: dict, root: Path, args: argparse.Namespace,
                      runs_table: pd.DataFrame) -> pd.DataFrame:
    """The priors' gains over GEARS in one setting, with the setting and its runs' convergence."""
    from helpers import summary

    path = pipeline.folder("metrics", root) / "per_perturbation.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run this setting's chapters first "
                                "(without --summarise)")
    scores = pd.read_csv(path)
    scores = scores[scores.seed.isin(args.seeds)]
    models = [m for m in PRIOR_MODELS if m in set(scores.model)]
    missing = sorted(set(PRIOR_MODELS) - set(models))
    if missing:
        print(f"[{setting}] no scores for {missing} in {path}", flush=True)
    gains = summary.prior_gains(scores, models, REFERENCE, SUBGROUPS, METRICS, n_boot=args.n_boot,
                                seed=args.bootstrap_seed)

    def converged(model: str) -> bool:
        behind = {REFERENCE, model} | ({"genemamba"} if model == prior_model_name("genemamba") else set())
        rows = runs_table[runs_table.model.isin(behind)] if len(runs_table) else runs_table
        return bool(len(rows)) and bool(rows.converged.all())

    gains.insert(0, "setting", setting)
    gains["prior"] = gains.model.str.removeprefix(PRIOR_PREFIX)
    gains["runs_converged"] = gains.model.map(converged)
    gains["overrides"] = json.dumps(overrides, sort_keys=True)
    gains["spearman_go_jaccard"] = go_signal(root)
    gains["profile"] = args.profile
    gains["seeds"] = " ".join(map(str, args.seeds))
    gains["prior_target"] = args.prior_target
    # the genes simulated besides the perturbed ones (empty: the profile's full panel)
    gains["n_high_mean_genes"] = (args.n_high_mean_genes if args.n_high_mean_genes is not None
                                  else profiles.get_profile(args.profile).n_high_mean_genes)
    return gains


def model_means(setting: str, root: Path, seeds: list[int]) -> pd.DataFrame:
    """Every model's own score in one setting (not a gain): per subgroup and metric, the mean
    over the subgroup's perturbations of the seed-averaged value, so a reader sees whether GEARS
    itself, and the baselines, move with the GO signal (baselines are stored under seed 0)."""
    scores = pd.read_csv(pipeline.folder("metrics", root) / "per_perturbation.csv")
    scores = scores[scores.metric.isin(METRICS) & scores.subgroup.isin(SUBGROUPS)
                    & (scores.seed.isin(seeds) | ~scores.model.str.startswith("gears"))]
    per_perturbation = scores.groupby(["model", "subgroup", "metric", "perturbation"]).value.mean()
    means = per_perturbation.groupby(["model", "subgroup", "metric"]).agg(["mean", "size"])
    return (means.rename(columns={"size": "n_perturbations"}).reset_index()
            .assign(setting=setting)[["setting", "model", "subgroup", "metric", "mean", "n_perturbations"]])


def plot(table: pd.DataFrame, path: Path) -> None:
    """Gain over GEARS with its interval: one row of panels per subgroup, one column per
    metric; x = setting, one colour per prior, a zero line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from helpers import plots

    settings = list(dict.fromkeys(table.setting))
    subgroups = [s for s in SUBGROUPS if s in set(table.subgroup)]
    metrics = [m for m in METRICS if m in set(table.metric)]
    models = list(dict.fromkeys(table.model))
    fig, axes = plt.subplots(len(subgroups), len(metrics), figsize=(3.6 * len(metrics), 2.4 * len(subgroups)),
                             squeeze=False, sharex=True)
    signal = table.drop_duplicates("setting").set_index("setting").spearman_go_jaccard
    labels = [f"{s}\nGO ρ {signal[s]:.2f}" for s in settings]  # ρ: Spearman, singles vs GO
    x = np.arange(len(settings))
    width = 0.5 / max(len(models), 1)
    for i, subgroup in enumerate(subgroups):
        for j, metric in enumerate(metrics):
            ax = axes[i][j]
            ax.axhline(0, color="0.3", lw=0.8)
            for k, model in enumerate(models):
                part = (table[(table.subgroup == subgroup) & (table.metric == metric) & (table.model == model)]
                        .set_index("setting").reindex(settings))
                gain, low, high = (part[c].to_numpy(float) for c in ("gain", "low", "high"))
                ax.errorbar(x - 0.25 + width * (k + 0.5), gain, yerr=np.vstack([gain - low, high - gain]),
                            fmt="o", ms=4, capsize=3, color=plots.model_colour(model), label=model)
            n = table[table.subgroup == subgroup].n_perturbations.max()
            ax.set_title(f"{metric}, {subgroup} (n={int(n)})", fontsize=9)
            ax.set_xticks(x, labels, fontsize=8)
            ax.set_xlim(-0.5, len(settings) - 0.5)
            ax.spines[["top", "right"]].set_visible(False)
            if j == 0:
                ax.set_ylabel("gain over GEARS\n(positive = better)", fontsize=8)
    axes[0][-1].legend(frameon=False, fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.suptitle("Gain of each prior over GEARS by simulator setting (mean over test perturbations, "
                 "95% bootstrap interval)", fontsize=9)
    fig.tight_layout()
    files.atomic_savefig(fig, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from helpers import summary

    settings = default_settings()
    simulated = sorted(name for name, p in profiles.PROFILES.items() if p.data_source == "simulated")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=list(settings), choices=list(settings),
                        help="simulator settings to run (default: all; always in the order none, "
                             "default, strong)")
    parser.add_argument("--profile", default="default", choices=simulated)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--prior-target", default=None,
                        help="where every prior enters GEARS (default: where the book's priors enter, "
                             "benchmarks/prior_target_selection.csv)")
    parser.add_argument("--n-high-mean-genes", type=int, default=None,
                        help="simulated genes besides the perturbed ones (default: the profile's)")
    parser.add_argument("--root", type=Path, default=roots.results_root() / "benchmarks" / "prior_sensitivity",
                        help="a results root per setting goes under it (default: "
                             "results/benchmarks/prior_sensitivity)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks",
                        help="where the CSVs and the figure go (default: benchmarks/)")
    parser.add_argument("--summarise", action="store_true",
                        help="execute nothing: read back the settings already run")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples over perturbations")
    parser.add_argument("--bootstrap-seed", type=int, default=0)
    args = parser.parse_args(argv)
    from helpers.models.priors import PRIOR_TARGETS, benchmarked_targets, choose_prior_target

    if args.prior_target is None:  # where the book's priors enter (benchmarks/prior_target.py)
        choice = choose_prior_target(benchmarked_targets()[0])
        args.prior_target = str(choice.query("chosen").target.item())

    if args.prior_target not in PRIOR_TARGETS:
        parser.error(f"--prior-target must be one of {list(PRIOR_TARGETS)}, got {args.prior_target!r}")
    chosen = {name: overrides for name, overrides in settings.items() if name in args.settings}
    from helpers.simulator import simulator_config

    for overrides in chosen.values():  # an unknown field stops here, not after an hour
        simulator_config(0, overrides)
    args.root = args.root.resolve()
    print(f"settings {chosen}; profile {args.profile}; seeds {args.seeds}; priors enter GEARS' "
          f"{args.prior_target} embedding; results under {args.root}", flush=True)

    tables, convergence_tables, model_tables, seconds = [], [], [], {}
    for setting, overrides in chosen.items():
        root = args.root / setting
        if not args.summarise:
            seconds[setting] = run_setting(setting, overrides, root, args)
            print(f"[{setting}] all chapters: {seconds[setting]:.0f} s", flush=True)
        runs_table = convergence_runs(setting, root, args.seeds, args.prior_target)
        convergence_tables.append(runs_table)
        tables.append(gains_for_setting(setting, overrides, root, args, runs_table))
        model_tables.append(model_means(setting, root, args.seeds))

    table = pd.concat(tables, ignore_index=True)
    every_run = pd.concat(convergence_tables, ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    files.atomic_write_csv(table, args.out / "prior_sensitivity.csv")
    files.atomic_write_csv(every_run, args.out / "prior_sensitivity_convergence.csv")
    every_model = pd.concat(model_tables, ignore_index=True)
    files.atomic_write_csv(every_model, args.out / "prior_sensitivity_models.csv")
    plot(table, args.out / "prior_sensitivity.png")

    shown = table.assign(value=table.gain.map("{:+.4f}".format) + " [" + table.low.map("{:+.4f}".format)
                         + ", " + table.high.map("{:+.4f}".format) + "]")
    pd.set_option("display.width", 200)
    for metric in METRICS:
        part = shown[shown.metric == metric]
        if len(part):
            print(f"\ngain over GEARS in {metric} (positive = better; 95% bootstrap interval over perturbations)")
            print(part.pivot(index=["model", "setting"], columns="subgroup", values="value")
                  .reindex(columns=[s for s in SUBGROUPS if s in set(part.subgroup)])
                  .reindex(index=[(m, s) for m in dict.fromkeys(part.model) for s in chosen
                                  if (m, s) in set(zip(part.model, part.setting))])
                  .to_string())
    print("\nmean mse_de per model (seeds averaged; lower = better): does GEARS itself follow the GO signal?")
    ordered = every_model.assign(setting=pd.Categorical(every_model.setting, categories=list(chosen)))
    print(ordered[ordered.metric == "mse_de"]
          .pivot(index=["model", "setting"], columns="subgroup", values="mean")
          .reindex(columns=[s for s in SUBGROUPS if s in set(every_model.subgroup)])
          .round(3).to_string())
    n = table.drop_duplicates("subgroup").set_index("subgroup").n_perturbations
    print("\nperturbations per subgroup: " + ", ".join(f"{s} {int(n[s])}" for s in SUBGROUPS if s in n.index))
    print("\nconvergence (within 2% of the plateau over the last quarter of training):")
    columns = ["setting", "chapter", "model", "target", "seed", "plateau", "step_within_tolerance",
               "last_step", "final_gain", "converged"]
    print(every_run.reindex(columns=columns).round(4).to_string(index=False))
    laggards = every_run[~every_run.converged] if len(every_run) else every_run
    if len(laggards):
        names = "; ".join(f"{r.setting}: {r.model}" + (f" ({r.target})" if isinstance(r.target, str) else "")
                          + f" seed {r.seed}" for r in laggards.itertuples())
        print("\n" + "!" * 100 + f"\nWARNING: {len(laggards)} of {len(every_run)} runs did NOT reach their "
              f"plateau: {names}.\nTheir gains are provisional (runs_converged = False in the CSV).\n"
              + "!" * 100, flush=True)
    print("\n" + summary.prior_sweep_findings(table))
    for setting, wall in seconds.items():
        print(f"wall time {setting}: {wall:.0f} s ({wall / 60:.1f} min)")
    print(f"\nwrote {args.out / 'prior_sensitivity.csv'}, {args.out / 'prior_sensitivity_convergence.csv'}, "
          f"{args.out / 'prior_sensitivity.png'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
