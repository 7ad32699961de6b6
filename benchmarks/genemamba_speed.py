"""GeneMamba speed: pretraining tokens/s and cell-embedding extraction cells/s.

Uses the book's default GeneMamba (d_model 128, 2 BiMamba blocks) on rank tokens of simulated
Norman-scaffold cells, on the device the notebooks would choose (``--device auto``: CUDA when
present). On CUDA with the optional ``gpu`` extra (mamba-ssm) the fused Triton scan is timed
too, and its output is compared with the pure-PyTorch chunked scan.

    python benchmarks/genemamba_speed.py                       # context 256, batch 8 (the book's)
    python benchmarks/genemamba_speed.py --context-length 2048 --batch-size 32
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import pandas as pd
import torch


def timed(fn, repeats: int, device: torch.device) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after two warm-ups."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8, help="cells per pretraining step")
    parser.add_argument("--extract-batch-size", type=int, default=64, help="cells per embedding forward pass")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    from helpers import simulator
    from helpers.models import genemamba as gm
    from helpers.models.torch_runtime import resolve_device

    device = resolve_device(args.device)
    scaffold = simulator.norman_scaffold()
    adata, _ = simulator.simulate_perturb_seq(scaffold, max_cells_per_condition=2, max_control_cells=200,
                                              progress=False)
    X = adata.X.toarray()
    genes = adata.var["gene_name"].astype(str).tolist()
    tokens = gm.rank_tokens(X, np.arange(len(genes)) + gm.N_SPECIAL_TOKENS, args.context_length)
    config = gm.GeneMambaConfig(vocab_size=len(genes) + gm.N_SPECIAL_TOKENS)
    model = gm.GeneMamba(config, seed=0).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)

    def batch(n: int) -> torch.Tensor:
        return torch.from_numpy(tokens[rng.integers(0, len(tokens), n)]).to(device)

    train_batch, extract_batch = batch(args.batch_size), batch(args.extract_batch_size)

    def train_step() -> None:
        loss = gm.language_model_loss(model, train_batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    @torch.no_grad()
    def extract() -> None:  # cell embedding: the mean of its hidden states over its genes
        model.eval()
        hidden = model(extract_batch)
        valid = (extract_batch != gm.PAD)[..., None]
        (hidden * valid).sum(1) / valid.sum(1)
        model.train()

    rows = []
    scans = {"chunked (PyTorch)": gm.ssd_scan}
    fused = gm.scan_for(device)
    if fused is not gm.ssd_scan:
        scans["fused (mamba-ssm)"] = fused
    for name, scan in scans.items():
        gm.scan_for = lambda _device, scan=scan: scan  # every mixer asks for its scan per call
        step_s = timed(train_step, args.repeats, device)
        extract_s = timed(extract, args.repeats, device)
        rows.append({"scan": name, "pretrain_s_per_step": step_s,
                     "pretrain_tokens_per_s": int((train_batch != gm.PAD).sum()) / step_s,
                     "extract_cells_per_s": args.extract_batch_size / extract_s})
    if len(scans) == 2:  # both scans against a float64 reference, relative to its largest value
        b, length, heads, head_dim, state = 4, args.context_length, config.n_heads, config.head_dim, config.d_state
        generator = torch.Generator(device="cpu").manual_seed(0)
        inputs = (torch.randn(b, length, heads, head_dim, generator=generator),
                  torch.rand(b, length, heads, generator=generator) * 0.1,
                  -torch.rand(heads, generator=generator) - 0.5,
                  torch.randn(b, length, state, generator=generator),
                  torch.randn(b, length, state, generator=generator))
        reference = gm.ssd_scan(*(t.double() for t in inputs))
        for name, scan in scans.items():
            error = (scan(*(t.to(device) for t in inputs)).double().cpu() - reference).abs().max()
            print(f"{name} scan vs float64: max relative error {error.item() / reference.abs().max().item():.1e}")

    print(f"machine: {platform.machine()}, device {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else
             f", {torch.get_num_threads()} torch threads")
          + f"; context {args.context_length}, pretraining batch {args.batch_size}, "
            f"extraction batch {args.extract_batch_size}")
    print(pd.DataFrame(rows).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
