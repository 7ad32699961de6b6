"""Dense GEARS engine vs cell-gears 0.1.2: time per training epoch and peak memory, same data.

Simulates the Norman scaffold at a size a CPU can run through cell-gears, then trains one epoch
with each engine in its own process (so peak memory is each engine's own). An epoch is what
each engine's ``train`` does per epoch: the optimisation steps plus its per-epoch evaluation.

    python benchmarks/gears_speed.py                      # all 3,051 genes (as `make book`), 20 cells per condition
    python benchmarks/gears_speed.py --genes 1000         # 1,100 genes: a smaller model
    python benchmarks/gears_speed.py --device cuda        # both engines on the GPU
    python benchmarks/gears_speed.py --isa avx2           # as an AVX2-only CPU runs it (on an AVX-512 one)

The last line reads ``speedup_vs_cell_gears: <ratio>`` (cell-gears epoch time / dense).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from helpers.models.gears_decoder import cpu_chunk_rows
from helpers.models.torch_runtime import cpu_cache_bytes, cpu_vector_width, thread_environment
from helpers import de_genes


# environment variables that make PyTorch's own kernels, MKL and oneDNN dispatch to one instruction set
ISA_CAPS = {"avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}


def speed_environment() -> dict[str, str]:
    """The book's thread count, but OpenMP's own (spinning) waiting unless the user set a policy:
    this benchmark times one run on an idle machine, where spinning is fastest (the book's
    passive default is for shared machines; benchmarks/RESULTS.md)."""
    settings = thread_environment()
    if "OMP_WAIT_POLICY" not in os.environ:
        del settings["OMP_WAIT_POLICY"]
    return settings


def cpu_model() -> str:
    """The processor's model name (Linux), else what ``platform`` knows."""
    try:
        line = next(l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name"))
        return line.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def prepare(workdir: Path, genes: int | None, cells: int, control: int, seed: int) -> None:
    from helpers import data, graphs, reference, simulator, splits

    scaffold = simulator.norman_scaffold(n_high_mean_genes=genes)
    adata, _ = simulator.simulate_perturb_seq(scaffold, simulator.SimulatorConfig(seed=seed), cells, control,
                                              progress=False)
    de_genes.add_de_genes(adata)
    gene2go = reference.gene2go()
    split = splits.simulation_split(adata.obs.condition.astype(str).unique(), set(gene2go), seed=1)
    nodes = sorted(g for g in set(adata.var.gene_name) | set(scaffold.perturbed_genes) if g in gene2go)
    go = graphs.go_perturbation_graph(gene2go, nodes)
    data.write_h5ad(adata, workdir / "data.h5ad")
    split.to_json(workdir / "split.json")
    go.to_csv(workdir / "go.csv", index=False)


def worker(engine: str, workdir: Path, seed: int, device: str) -> dict:
    import anndata as ad

    import torch

    from helpers.models.gears_module import GearsConfig
    from helpers.models.torch_runtime import resolve_device
    from helpers.splits import SimulationSplit

    device = str(resolve_device(device))

    adata = ad.read_h5ad(workdir / "data.h5ad")
    split = SimulationSplit.from_json(workdir / "split.json")
    go = pd.read_csv(workdir / "go.csv")
    config = GearsConfig()
    start = time.perf_counter()
    if engine == "dense":
        from helpers.models.gears import GearsData, TrainingBudget, steps_per_epoch, train_gears

        gears_data = GearsData.from_adata(adata, split, go, config)
        setup = time.perf_counter() - start
        n_batches = steps_per_epoch(gears_data, split, config.batch_size)
        # one epoch with one validation at its end, as cell-gears' epoch
        _, history = train_gears(gears_data, split, config, TrainingBudget(n_batches, eval_every=n_batches),
                                 seed=seed, device=device, progress=False)
        epoch = float(history.seconds.iloc[0])
    else:
        from helpers.models.cell_gears import build_cell_gears

        model = build_cell_gears(adata, split, go, config, seed, device, workdir / "cell_gears")
        setup = time.perf_counter() - start
        n_batches = len(model.dataloader["train_loader"])
        with contextlib.chdir(workdir / "cell_gears"):
            tic = time.perf_counter()
            model.train(epochs=1, lr=config.lr, weight_decay=config.weight_decay)
            epoch = time.perf_counter() - tic
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_gpu_mib = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else float("nan")
    return {"engine": engine, "device": device, "kernels": torch.backends.cpu.get_cpu_capability(),
            "peak_gpu_mib": peak_gpu_mib, "setup_s": setup,
            "epoch_s": epoch, "batches": n_batches,
            "s_per_batch": epoch / max(n_batches, 1), "peak_rss_mib": peak_mib,
            "genes": adata.n_vars, "cells": adata.n_obs, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genes", type=int, default=None,
                        help="high-mean genes simulated, plus the perturbed (default: all 2,967, i.e. 3,051 genes)")
    parser.add_argument("--cells-per-condition", type=int, default=20)
    parser.add_argument("--control-cells", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="'cpu', 'cuda' or 'auto' (CUDA when present)")
    parser.add_argument("--isa", choices=["avx2"], default=None,
                        help="cap both engines' kernels at this instruction set (PyTorch, MKL, oneDNN): an "
                             "AVX-512 machine then runs the code an AVX2-only machine runs")
    parser.add_argument("--worker", choices=["dense", "cell-gears"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.workdir, args.seed, args.device)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        prepare(workdir, args.genes, args.cells_per_condition, args.control_cells, args.seed)
        rows = []
        for engine in ("dense", "cell-gears"):
            result = subprocess.run([sys.executable, __file__, "--worker", engine, "--workdir", str(workdir),
                                     "--seed", str(args.seed), "--device", args.device],
                                    capture_output=True, text=True,
                                    env={**os.environ, **speed_environment(), **ISA_CAPS.get(args.isa, {})})
            if result.returncode:
                raise SystemExit(f"the {engine} worker failed:\n{result.stderr[-4000:]}")
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    table = pd.DataFrame(rows).set_index("engine")
    l2, l3 = cpu_cache_bytes(2), cpu_cache_bytes(3)
    print(f"machine: {cpu_model()}, {platform.platform()}")
    print(f"cpu: vector width {cpu_vector_width()}; L2 per core {l2 and l2 // 1024} KiB, L3 {l3 and l3 // 2**20} MiB; "
          f"decoder chunk {cpu_chunk_rows(64)} rows; {speed_environment()}")
    print(table.round(3).to_string())
    memory_ratio = table.at["cell-gears", "peak_rss_mib"] / table.at["dense", "peak_rss_mib"]
    print(f"peak_memory_ratio_vs_cell_gears: {memory_ratio:.2f}")
    print(f"speedup_vs_cell_gears: {table.at['cell-gears', 'epoch_s'] / table.at['dense', 'epoch_s']:.1f}")


if __name__ == "__main__":
    main()
