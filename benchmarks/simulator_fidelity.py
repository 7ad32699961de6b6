"""Can the simulated truth carry the study? Depth, signal, similarity of singles and GI fidelity.

Simulates the default data (Norman's cell counts, all 3,051 genes) for each grid point of the
simulator settings asked, and reports beside Norman's own numbers, all measured from cells:

- depth: UMIs and detected genes per cell (``helpers.simulator.depth_table``);
- signal under noise: the median profile correlations over Norman's 125 fitted pairs
  (``helpers.gi.profile_correlations``; ``corr_sum`` calibrates the single effects' strength);
- how alike the singles are (``helpers.gi.similarity_statistics``): the median ``corr_singles``,
  its Spearman with the two genes' GO Jaccard, its medians within and across Norman's
  GI-manifold cluster labels, and the Kolmogorov–Smirnov distance of its whole distribution
  from Norman's (these calibrate the shared axes);
- GI fidelity (``helpers.gi.truth_fidelity``): magnitudes scored from the cells (on GEARS'
  scale and, as Norman scored his, on his: ``helpers.gi.norman_scale_means``) and from the
  noise-free expected means against Norman's fits (r, slope), their median and share above
  GEARS' synergy threshold of 1.15 (the cells on Norman's scale calibrate ``interaction_scale``
  and ``interaction_offset``).

    python benchmarks/simulator_fidelity.py                                  # the default settings
    python benchmarks/simulator_fidelity.py --set interaction_scale=1.15,1.3 --set interaction_offset=0,0.15  # a grid
    python benchmarks/simulator_fidelity.py --singles-only --set cluster_weight=1,2,3 \\
        --set shared_axis_share=0.5,0.7                                       # similarity only

Each setting takes ~4 minutes on 2 cores (simulation ~2 min, 2 × 125 pairs scored); with
``--singles-only`` (no pair is simulated, no GI scored) ~25 s. Settings are ``SimulatorConfig``
fields; the grid is their product.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time

import pandas as pd
from helpers import conditions, simulator

SIMILARITY = ("median_corr_singles", "spearman_go_jaccard", "median_same_label",
              "median_different_label", "median_same_cluster", "median_different_clusters",
              "median_unclustered_gene")


def measure(config, singles_only: bool = False) -> dict:
    from scipy.stats import ks_2samp

    from helpers import gi, reference, simulator
    from helpers.conditions import condition_genes

    scaffold = simulator.norman_scaffold()
    if singles_only:  # the same parameters are drawn; only the pairs' cells are not simulated
        keep = scaffold.conditions.condition.map(lambda c: len(condition_genes(c)) <= 1).to_numpy()
        scaffold = dataclasses.replace(scaffold, conditions=scaffold.conditions[keep])
    start = time.perf_counter()
    adata, truth = simulator.simulate_perturb_seq(scaffold, config, progress=False)
    simulated = time.perf_counter() - start
    depth = simulator.depth_table(adata).simulated
    means = conditions.condition_means(adata)
    genes = [g for g in reference.high_mean_genes() if g in means.columns]
    fits = reference.gi_fits()
    pairs = fits.condition.tolist()
    clusters = dict(zip(*reference.single_clusters()[["gene", "cluster"]].values.T))
    gene2go = reference.gene2go()
    norman_corr = fits.set_index("condition").corr_singles
    norman = gi.similarity_statistics(gi.singles_similarity(norman_corr, gene2go, clusters))
    cells_corr = gi.singles_correlations(means, pairs, genes)
    cells = gi.similarity_statistics(gi.singles_similarity(cells_corr, gene2go, clusters))
    row = {**{k: v for k, v in dataclasses.asdict(config).items()
              if v != getattr(simulator.SimulatorConfig(), k)},
           "simulate_s": round(simulated, 1), "median_umis": depth["median UMIs per cell"],
           "median_detected_genes": depth["median detected genes per cell"],
           **{f"{k}_cells": round(cells[k], 3) for k in SIMILARITY},
           **{f"{k}_norman": round(norman[k], 3) for k in SIMILARITY},
           "ks_corr_singles": round(float(ks_2samp(cells_corr, norman_corr).statistic), 3),
           # pair by pair: are the pairs alike in Norman's screen the pairs alike here?
           "pair_r_corr_singles": round(float(cells_corr.corr(norman_corr.loc[cells_corr.index])), 3)}
    if singles_only:
        return row
    correlations = gi.profile_correlations(means, pairs, genes).groupby("measure").value.median()
    normans_scale = gi.norman_scale_means(adata)  # the cells measured as Norman measured his
    scores = pd.concat([gi.interaction_scores(source_means, pairs, source_genes, n_jobs=2).assign(source=source)
                        for source, source_means, source_genes in (
                            ("cells", means, genes), ("noise-free", truth.to_df(), genes),
                            ("cells_norman_scale", normans_scale, list(normans_scale.columns)))])
    fidelity = gi.truth_fidelity(scores, fits).set_index("source")
    norman_magnitude = gi.norman_magnitudes(fits)
    row.update({"corr_sum_cells": round(float(correlations["corr_sum"]), 3),
                "corr_sum_norman": round(float(fits.corr_sum.median()), 3),
                **{f"{source}_{k}": round(float(fidelity.at[source, k]), 3)
                   for source in fidelity.index for k in ("r", "slope")},
                **{f"{source}_median_magnitude": round(float(group.magnitude.median()), 3)
                   for source, group in scores.groupby("source")},
                **{f"{source}_share_above_1.15": round(float((group.magnitude > 1.15).mean()), 3)
                   for source, group in scores.groupby("source")},
                "norman_median_magnitude": round(float(norman_magnitude.median()), 3),
                "norman_share_above_1.15": round(float((norman_magnitude > 1.15).mean()), 3)})
    return row


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="NAME=V1,V2",
                        help="a SimulatorConfig field and the values to try (repeatable: a grid)")
    parser.add_argument("--singles-only", action="store_true",
                        help="simulate control and singles only: the similarity statistics, fast")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the table to this CSV")
    args = parser.parse_args()
    axes = {}
    for item in args.set:
        name, _, values = item.partition("=")
        axes[name] = [json.loads(v) for v in values.split(",")]
    rows = []
    for values in itertools.product(*axes.values()):
        config = simulator.simulator_config(args.seed, dict(zip(axes, values)))
        rows.append(measure(config, args.singles_only))
        table = pd.DataFrame(rows)
        print(table.T.to_string(header=False), flush=True)
        if args.out:
            table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
