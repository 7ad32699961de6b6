"""Norman at full scale on this machine: the simulator on the whole scaffold (all 91,205 cells,
all 3,051 genes), GEARS' data processing and one dense-GEARS epoch over every training cell.

Prints a table of wall time and peak memory per stage and the projected time of 20 epochs (the
``full`` profile). The device is chosen as the notebooks choose it (``--device auto``: CUDA when
present), so the same command measures a GPU where there is one.

    python benchmarks/norman_scale.py                          # the full scaffold
    python benchmarks/norman_scale.py --max-cells-per-condition 20   # a quick check
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import pandas as pd
from helpers import de_genes


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-cells-per-condition", type=int, default=None, help="default: every cell")
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu' or 'cuda'")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    import torch

    from helpers import graphs, reference, simulator, splits
    from helpers.models.gears import GearsData, TrainingBudget, steps_per_epoch, train_gears
    from helpers.models.gears_module import GearsConfig
    from helpers.models.torch_runtime import resolve_device

    rows = []

    def stage(name: str, started: float, **extra) -> None:
        rows.append({"stage": name, "seconds": round(time.perf_counter() - started, 1),
                     "peak_rss_mib": round(peak_mib()), **extra})
        print(f"{name}: {rows[-1]['seconds']} s", flush=True)

    tic = time.perf_counter()
    scaffold = simulator.norman_scaffold()
    adata, _ = simulator.simulate_perturb_seq(scaffold, simulator.SimulatorConfig(),
                                              args.max_cells_per_condition, args.max_cells_per_condition,
                                              progress=True)
    stage("simulate", tic, cells=adata.n_obs, genes=adata.n_vars)

    tic = time.perf_counter()
    de_genes.add_condition_fields(adata)
    de_genes.add_de_genes(adata)
    gene2go = reference.gene2go()
    split = splits.simulation_split(adata.obs["condition"].astype(str).unique(), set(gene2go), seed=1)
    nodes = sorted(g for g in set(adata.var["gene_name"]) | set(scaffold.perturbed_genes) if g in gene2go)
    go = graphs.go_perturbation_graph(gene2go, nodes)
    config = GearsConfig()
    gears_data = GearsData.from_adata(adata, split, go, config)
    n_train = int(pd.Series(gears_data.conditions).isin(split.train).sum())
    stage("process (DE genes, split, GO graph, co-expression graph)", tic, training_cells=n_train)

    device = resolve_device(args.device)
    tic = time.perf_counter()
    n_batches = steps_per_epoch(gears_data, split, config.batch_size)
    _, history = train_gears(gears_data, split, config, TrainingBudget(n_batches, eval_every=n_batches),
                             seed=args.seed, device=str(device))
    epoch = float(history.seconds.iloc[0])
    stage(f"one dense-GEARS epoch on {device}", tic, batches=n_train // config.batch_size,
          epoch_s=round(epoch, 1))

    table = pd.DataFrame(rows)
    print()
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, device {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""))
    print(table.to_string(index=False))
    print(f"projected 20 epochs: {20 * epoch / 3600:.2f} h")


if __name__ == "__main__":
    main()
