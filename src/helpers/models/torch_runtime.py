"""Where and how PyTorch runs: the device choice and deterministic kernels, shared by all models."""

from __future__ import annotations

import contextlib

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
