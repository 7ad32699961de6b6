"""Real Norman at full size on this machine: peak memory per chapter and the real-data book's time.

Writes a stand-in of GEARS' ``perturb_processed.h5ad`` at full size, laid out as the real file
(91,205 cells × 5,045 genes; the 284 conditions with their real cell counts; Ensembl-like IDs
with symbols in ``var['gene_name']``; ``X`` CSR float32, ``log1p`` of per-cell-scaled counts,
~8% non-zero; a dense float32 ``layers['counts']``; ``cell_type`` 'A549'), then runs the whole
book on it with ``python -m helpers.book --data <file>`` and short training budgets. Prints each
chapter's wall time and peak resident memory, the per-step costs of GEARS and GeneMamba, and the
projected time of the real-data book per profile (``norman_cpu``, ``full``) on this machine.

    python benchmarks/real_scale.py                      # full size (~20 min on 2 cores, 4 GB disk)
    python benchmarks/real_scale.py --cell-fraction 0.1  # a quick check of the script

The expression is a negative-binomial draw at Norman's depth (gene means log-normal with the
spread that gives ~409 detected genes at 2,999 UMIs per cell) with random perturbation effects:
it measures sizes and costs, not biology. Nothing is written into ``results/`` of the simulated
default: the work folder is ``results/benchmarks/real_scale/`` (``--work``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import pipeline

GENES = 5045  # GEARS' processed Norman
DEPTH = 2999.0  # median UMIs per cell of its counts layer
MEAN_LOG_SD = 3.19  # one log-normal over 5,045 genes giving 409 detected genes at that depth (NB θ = 10)
SHORT = {"gears_steps": 100, "gears_eval_every": 50, "pretrain_steps": 40}


def write_full_size(path: Path, cell_fraction: float, seed: int = 0) -> dict:
    """Write the stand-in; returns its shape and non-zero share."""
    import anndata as ad
    import scipy.sparse as sp

    from helpers import reference
    from helpers.conditions import condition_genes

    rng = np.random.default_rng(seed)
    conditions = reference.norman_conditions()
    counts_per_condition = np.maximum(2, np.round(conditions.n_cells * cell_fraction)).astype(int)
    labels = np.repeat(conditions.condition.to_numpy(), counts_per_condition)
    labels = labels[rng.permutation(len(labels))]
    perturbed = sorted({g for c in conditions.condition for g in condition_genes(c)})
    panel = list(dict.fromkeys(reference.high_mean_genes() + perturbed))
    others = sorted(set(reference.gene2go()) - set(panel))
    filler = [f"RP11-{i}A{i % 7}.1" for i in range(300)] + ["MT-ND1", "MT-CO1", "MT-ATP6"]
    symbols = panel + filler + list(rng.choice(others, GENES - len(panel) - len(filler), replace=False))
    ids = [f"ENSG{100_000 + 3 * i:011d}" for i in range(GENES)]

    log_mu = rng.normal(0, MEAN_LOG_SD, GENES)
    log_mu += np.log(DEPTH / np.exp(log_mu).sum())
    position = {g: i for i, g in enumerate(symbols)}
    effects = {g: rng.normal(0, 0.7, GENES) * (rng.random(GENES) < 0.05) for g in perturbed}
    for g in perturbed:
        if g in position:
            effects[g][position[g]] += 3.0
    theta, block = 10.0, 8192
    counts = np.empty((len(labels), GENES), dtype=np.float32)
    X_blocks = []
    for start in range(0, len(labels), block):
        rows = labels[start:start + block]
        log_rate = np.tile(log_mu, (len(rows), 1)) + rng.normal(0, 0.35, (len(rows), 1))
        for condition in np.unique(rows):
            genes = condition_genes(condition)
            if genes:
                log_rate[rows == condition] += sum(effects[g] for g in genes)
        rate = np.exp(log_rate)
        drawn = rng.negative_binomial(theta, theta / (theta + rate)).astype(np.float32)
        counts[start:start + len(rows)] = drawn
        totals = np.maximum(drawn.sum(axis=1, keepdims=True), 1.0)
        X_blocks.append(sp.csr_matrix(np.log1p(drawn * (np.median(totals) / totals)).astype(np.float32)))
    X = sp.vstack(X_blocks, format="csr")
    dose = np.where(pd.Series(labels).str.count(r"\+").to_numpy() == 1, "1+1", "1")
    dose[labels == "ctrl"] = "1"
    obs = pd.DataFrame({"condition": pd.Categorical(labels), "cell_type": "A549", "dose_val": dose,
                        "control": (labels == "ctrl").astype(np.int64),
                        "condition_name": [f"A549_{c}_{d}" for c, d in zip(labels, dose)]},
                       index=pd.Index([f"CELL{i:06d}-1" for i in range(len(labels))], name="cell_barcode"))
    var = pd.DataFrame({"gene_name": pd.Categorical(symbols)}, index=pd.Index(ids, name="gene_id"))
    path.parent.mkdir(parents=True, exist_ok=True)
    ad.AnnData(X=X, obs=obs, var=var, layers={"counts": counts}).write_h5ad(path)
    return {"cells": len(labels), "genes": GENES, "nonzero_share": round(X.nnz / (X.shape[0] * GENES), 3),
            "median_umis": float(np.median(counts.sum(axis=1))), "file_gib": round(path.stat().st_size / 2**30, 2)}


def run_book(file: Path, work: Path, profile: str, only: list[str] | None = None) -> pd.DataFrame:
    """Every chapter on ``file`` with short training budgets, one ``helpers.book`` call per
    chapter (so each chapter's peak memory is its own); returns the book's timing rows."""
    from helpers.book import toc_notebooks

    chapter_parameters = {pipeline.TRAIN_GEARS: {"steps": SHORT["gears_steps"], "eval_every": SHORT["gears_eval_every"]},
                          pipeline.PRETRAIN_GENEMAMBA: {"steps": SHORT["pretrain_steps"]},
                          pipeline.TRAIN_GEARS_PRIORS: {"steps": SHORT["gears_steps"], "eval_every": SHORT["gears_eval_every"],
                                                    "prior_targets": ["both"]}}
    env = {**os.environ, "HELPERS_RESULTS_DIR": str(work / "results")}
    rows = []
    for name in [n for n in toc_notebooks() if not only or n in only]:
        parameters = {**chapter_parameters.get(name, {}), **({"force": True} if only else {})}  # a rerun recomputes
        extra = [arg for k, v in parameters.items() for arg in ("-p", k, repr(v))]
        command = [sys.executable, "-m", "helpers.book", "--profile", profile, "--data", str(file), "--only", name, *extra]
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        tree_peak = _watch_tree_rss(process)
        if process.returncode:
            raise subprocess.CalledProcessError(process.returncode, command)
        from helpers.roots import results_root_for

        timings = pd.read_csv(results_root_for(str(file), work / "results") / "book_timings.csv")
        row = timings[timings.notebook == name].iloc[-1].to_dict()
        rows.append({"chapter": name, "seconds": round(time.perf_counter() - started, 1),
                     "peak_rss_mib": row["peak_kernel_rss_so_far_mib"], "peak_all_processes_mib": round(tree_peak)})
        print(f"{name}: {rows[-1]['seconds']} s, peak {rows[-1]['peak_rss_mib']:,.0f} MiB in one process, "
              f"{tree_peak:,.0f} MiB in all its processes together (PSS)", flush=True)
    return pd.DataFrame(rows)


def _watch_tree_rss(process: subprocess.Popen, interval: float = 0.5) -> float:
    """Wait for ``process``; return the largest memory its whole process tree (the book runner,
    the kernel and GEARS' worker processes) held at once, sampled every ``interval`` s, as the sum
    of proportional set sizes (PSS: pages shared between processes, such as the training matrix
    every GEARS worker maps from one file, count once), falling back to RSS where PSS is unknown."""
    import psutil

    root, peak = psutil.Process(process.pid), 0.0
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            total = 0
            for member in tree:
                try:
                    total += getattr(member.memory_full_info(), "pss", None) or member.memory_info().rss
                except psutil.Error:
                    pass
            peak = max(peak, total / 2**20)
        except psutil.Error:
            pass
        time.sleep(interval)
    return peak


def per_step_costs(root: Path) -> dict:
    """Seconds per optimisation step of one GEARS run while three run side by side (chapter 11's
    last validation interval), and of GeneMamba at the context length it ran with (its median
    token rate; a cell at Norman's depth fills its 256-token context)."""
    import json

    history = pd.read_csv(pipeline.folder("gears_runs", root) / "training_history.csv")
    last = history[history.step == history.step.max()]
    gears = float((last.seconds / SHORT["gears_eval_every"]).mean())
    loss = pd.read_csv(pipeline.folder("genemamba", root) / "loss.csv")
    parameters = json.loads((pipeline.folder("genemamba", root) / "run.json").read_text())["parameters"]
    context = int(parameters.get("context_length", 256))
    tokens = int(parameters.get("batch_size", 8)) * context
    mamba = float(tokens / loss.tokens_per_s.iloc[len(loss) // 2:].median())
    return {"gears_s_per_step_3_side_by_side": gears, "genemamba_s_per_step": mamba, "genemamba_context": context}


def project(chapters: pd.DataFrame, costs: dict, profile_name: str) -> dict:
    """The real-data book's time for a profile: the measured chapters plus the steps the short
    budgets left out. Chapter 11 runs its seeds side by side (3 on 2 cores: the measured rate);
    chapter 14 runs 3 prior-target candidates side by side, then 2 priors × seeds − 1 reused runs,
    at a rate taken to slow in proportion to the number of runs sharing the cores."""
    from helpers.profiles import get_profile

    profile = get_profile(profile_name)
    seconds = chapters.set_index("chapter").seconds.to_dict()
    gears, seeds = costs["gears_s_per_step_3_side_by_side"], len(profile.seeds)
    extra_steps = profile.gears_steps - SHORT["gears_steps"]
    seconds[pipeline.TRAIN_GEARS] += extra_steps * gears * max(seeds, 3) / 3
    later = 2 * seeds - 1
    seconds[pipeline.TRAIN_GEARS_PRIORS] += profile.gears_steps * gears * (1 + max(later, 3) / 3) - SHORT["gears_steps"] * gears * 2
    # a BiMamba step costs in proportion to the context length (linear-time scans)
    mamba = costs["genemamba_s_per_step"] * profile.context_length / costs["genemamba_context"]
    seconds[pipeline.PRETRAIN_GENEMAMBA] += profile.pretrain_steps * mamba - SHORT["pretrain_steps"] * costs["genemamba_s_per_step"]
    return {"profile": profile_name, "gears_steps": profile.gears_steps, "pretrain_steps": profile.pretrain_steps,
            "hours": round(sum(seconds.values()) / 3600, 2),
            **{f"{k[:2]}_min": round(v / 60, 1) for k, v in seconds.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell-fraction", type=float, default=1.0, help="share of each condition's real cells")
    parser.add_argument("--work", type=Path, default=Path("results/benchmarks/real_scale"))
    parser.add_argument("--keep", action="store_true", help="keep the work folder's earlier file and results")
    parser.add_argument("--chapters", nargs="+", help="run only these chapters (with --keep, after a full run): "
                        "their time and memory, no projection")
    args = parser.parse_args()
    file = (args.work / "norman" / "perturb_processed.h5ad").resolve()
    if not (args.keep and file.is_file()):
        started = time.perf_counter()
        shape = write_full_size(file, args.cell_fraction)
        print(f"wrote {file}: {shape} in {time.perf_counter() - started:.0f} s", flush=True)
    chapters = run_book(file, args.work.resolve(), "norman_cpu", args.chapters)
    if args.chapters:
        print(chapters.to_string(index=False))
        return
    from helpers.roots import results_root_for

    costs = per_step_costs(results_root_for(str(file), args.work.resolve() / "results"))
    print(pd.DataFrame(chapters).to_string(index=False))
    print({k: round(float(v), 4) for k, v in costs.items()})
    projections = pd.DataFrame([project(chapters, costs, name) for name in ("norman_cpu", "full")])
    print(projections.to_string(index=False))
    peak = chapters.set_index("chapter").peak_rss_mib
    print(f"peak_rss_mib_chapter_01: {peak[pipeline.PREPARE_DATA]:.0f}")
    print(f"peak_rss_mib_chapter_11: {peak[pipeline.TRAIN_GEARS]:.0f}")
    print(f"peak_all_processes_mib (any chapter): {chapters.peak_all_processes_mib.max():.0f}")


if __name__ == "__main__":
    main()
