"""Where and how PyTorch runs: the device choice and deterministic kernels, shared by all models."""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

import torch


def resolve_device(device: str = "auto") -> torch.device:
    """``'auto'``: CUDA when present, else CPU; anything else is passed to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextlib.contextmanager
def deterministic_torch():
    """Run the block with PyTorch's deterministic kernels (scatter-adds and embedding gradients are
    otherwise summed in a thread-dependent order, so two runs differ in the last bits)."""
    previous, previous_warn_only = (torch.are_deterministic_algorithms_enabled(),
                                    torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn_only)


@functools.cache
def cpu_cache_bytes(level: int) -> int | None:
    """Size of one core's data (or unified) cache at ``level`` (1, 2 or 3), from Linux's sysfs;
    ``None`` where the system does not say (other operating systems, some containers)."""
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            if int((index / "level").read_text()) != level or (index / "type").read_text().strip() == "Instruction":
                continue
            size = (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        units = {"K": 2**10, "M": 2**20, "G": 2**30}
        return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)
    return None


def cpu_vector_width() -> str:
    """The widest x86 vector extension the CPU reports (``avx512``, ``avx2``, ``avx``, ``sse``) or
    the machine's architecture elsewhere, and the kernels PyTorch dispatches to (its CPU capability)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    except (OSError, StopIteration):
        flags = []
    width = next((name for name in ("avx512f", "avx2", "avx", "sse4_2") if name in flags), os.uname().machine)
    return f"{width.replace('avx512f', 'avx512').replace('sse4_2', 'sse')} (torch kernels: {torch.backends.cpu.get_cpu_capability()})"


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup (container) CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return cores


def thread_environment() -> dict[str, str]:
    """OpenMP settings for the book's kernels and the benchmarks' workers, unless the user set them.

    - ``OMP_NUM_THREADS``: the cores this process may use (:func:`available_cores`), so a
      container's quota is not oversubscribed.
    - ``OMP_WAIT_POLICY=PASSIVE``: a thread out of work sleeps instead of spinning. Spinning
      saves time on an idle machine (a 2-thread GEARS step ~1.5× faster), but when another
      process wants the cores the spinning threads take them from the thread holding the work
      (4–6× slower, measured); passive waiting slows in proportion to the load instead
      (``benchmarks/RESULTS.md``). Set ``OMP_WAIT_POLICY=ACTIVE`` for a dedicated machine.
      GEARS' training runs are single-threaded processes, one per run
      (:func:`helpers.models.gears.train_gears_runs`), which the policy does not touch.
    """
    return {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(available_cores())),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
