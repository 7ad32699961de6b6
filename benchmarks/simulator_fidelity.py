"""Can the simulated truth carry the GI analysis? Depth, signal and GI fidelity of the simulator.

Simulates the default data (Norman's cell counts, all 3,051 genes) for each setting asked, and
reports the cells' depth beside Norman's counts layer, the median profile correlations over
Norman's 125 fitted pairs from the cells beside those Norman measured on his screen
(``helpers.gi.profile_correlations``: the signal under the screen's noise, which calibrates the
single effects' strength), and how well true GI magnitudes track Norman's own fits, scored from
the cells and from the noise-free expected means (``helpers.gi.truth_fidelity``: r, slope,
synergy-call agreement).

    python benchmarks/simulator_fidelity.py                           # the default settings
    python benchmarks/simulator_fidelity.py --effect-strength 1.2 2.4 3.6  # the calibration
    python benchmarks/simulator_fidelity.py --high-mean-log-sd 2 3        # depth vs sparsity

Each setting takes ~3 minutes on 2 cores (simulation ~2 min, 2 × 125 pairs scored).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time

import numpy as np
import pandas as pd


def measure(config) -> dict:
    from helpers import data, gi, reference, simulator

    start = time.perf_counter()
    adata, truth = simulator.simulate_perturb_seq(simulator.norman_scaffold(), config, progress=False)
    simulated = time.perf_counter() - start
    depth = data.depth_table(adata).simulated
    means = data.condition_means(adata)
    genes = [g for g in reference.high_mean_genes() if g in means.columns]
    fits = reference.gi_fits()
    pairs = [c for c in fits.condition if c in means.index]
    correlations = gi.profile_correlations(means, pairs, genes).groupby("measure").value.median()
    norman = gi.norman_profile_correlations(fits).groupby("measure").value.median()
    scores = pd.concat([gi.interaction_scores(source_means, pairs, genes, n_jobs=2).assign(source=source)
                        for source, source_means in (("cells", means), ("noise-free", truth.to_df()))])
    fidelity = gi.truth_fidelity(scores, fits).set_index("source")
    return {"effect_strength": round(float(np.exp(config.effect_strength_log_mean)), 2),
            "high_mean_log_sd": config.high_mean_log_sd, "simulate_s": round(simulated, 1),
            "median_umis": depth["median UMIs per cell"], "max_umis": depth["max UMIs per cell"],
            "median_detected_genes": depth["median detected genes per cell"],
            "nonzero_share": round(depth["non-zero share of the matrix"], 3),
            **{f"{m}_cells": round(float(correlations[m]), 3) for m in ("corr_sum", "corr_singles")},
            **{f"{m}_norman": round(float(norman[m]), 3) for m in ("corr_sum", "corr_singles")},
            **{f"{source}_{k}": round(float(fidelity.at[source, k]), 3)
               for source in fidelity.index for k in ("r", "slope", "agreement")},
            "pairs": int(fidelity.n.iloc[0])}


def main() -> None:
    from helpers import simulator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--effect-strength", type=float, nargs="+", default=[None],
                        help="median single-effect strengths (exp of effect_strength_log_mean) to "
                             "compare (default: the simulator's)")
    parser.add_argument("--high-mean-log-sd", type=float, nargs="+", default=[None],
                        help="spreads of the high-mean genes' log means to compare (default: the simulator's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    for strength, sd in itertools.product(args.effect_strength, args.high_mean_log_sd):
        config = simulator.SimulatorConfig(seed=args.seed)
        if strength is not None:
            config = dataclasses.replace(config, effect_strength_log_mean=float(np.log(strength)))
        if sd is not None:
            config = dataclasses.replace(config, high_mean_log_sd=sd)
        rows.append(measure(config))
        print(pd.DataFrame(rows).to_string(index=False), flush=True)


if __name__ == "__main__":
    main()
