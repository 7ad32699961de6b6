"""GeneMamba's building blocks in pure PyTorch: rank tokens and a bidirectional Mamba-2 stack.

GeneMamba (Qi et al. 2025, arXiv 2504.16956) reads a cell as its genes ranked by normalised
expression and runs Mamba-2 blocks whose weights read the sequence forward and, on a
padding-aware reversed copy, backward; the two reads are averaged (BiMamba). Its gene embedding
is the token embedding table. mamba-ssm's fused kernels need CUDA and mambapy's Mamba-2 imports
them, so the state-space scan is written out here: a slow, obvious recurrence
(:func:`ssd_scan_reference`) beside the matrix form used for speed (:func:`ssd_scan`).

Glossary (code → Mamba-2 paper, Dao & Gu 2024):

====================  =========================================================================
``D``                 model width (d_model)
``ED``                inner width, ``expand × D``
``H``, ``P``          heads and head dimension, ``H × P = ED``
``N``                 state size (d_state)
``dt``                step Δ per position and head, ``softplus(raw + dt_bias)``
``A``                 per-head decay rate, ``-exp(A_log)`` (scalar-identity A of Mamba-2)
``B``, ``C``          input and output projections of the state, per position (one group)
``h``                 state per head, (P, N): ``h_t = exp(Δ_t A) h_{t-1} + Δ_t x_t B_tᵀ``
``y``                 ``y_t = h_t C_t + D_skip x_t``
====================  =========================================================================
"""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from helpers.models.torch_runtime import deterministic_torch
from helpers.progress import progress_bar

PAD, MASK, CLS = 0, 1, 2  # MASK is reserved in the vocabulary; the objective does not mask
N_SPECIAL_TOKENS = 3


def rank_tokens(X: np.ndarray, gene_token_ids: np.ndarray, context_length: int,
                block_rows: int = 2048) -> np.ndarray:
    """Rank tokenisation: per cell, ``<cls>`` then the tokens of its expressed genes from highest
    to lowest expression (ties broken by gene order), cut to ``context_length`` and padded.

    Args:
        X: cells × genes, normalised expression (dense or sparse; ranked ``block_rows`` cells at a
            time, so a large matrix is never sorted, or densified, whole).
        gene_token_ids: token id of each gene column (≥ ``N_SPECIAL_TOKENS``).
        context_length: tokens per cell, ``<cls>`` included.
    Returns:
        cells × context_length int64 token ids (``PAD`` = 0 after the last expressed gene).
    """
    if X.shape[1] != len(gene_token_ids):
        raise ValueError(f"X has {X.shape[1]} genes but {len(gene_token_ids)} token ids were given")
    if context_length < 2:
        raise ValueError("context_length must leave room for <cls> and one gene")
    ids = np.asarray(gene_token_ids)
    out = np.full((X.shape[0], context_length), PAD, dtype=np.int64)
    out[:, 0] = CLS
    for start in range(0, X.shape[0], block_rows):
        block = X[start:start + block_rows]
        block = block.toarray() if hasattr(block, "toarray") else np.asarray(block)
        order = np.argsort(-block, axis=1, kind="stable")[:, : context_length - 1]  # cells × (L-1)
        expressed = np.take_along_axis(block, order, axis=1) > 0
        out[start:start + len(block), 1: 1 + order.shape[1]] = np.where(expressed, ids[order], PAD)
    return out


def pretraining_cells(conditions: np.ndarray, train_conditions: list[str]) -> np.ndarray:
    """Mask of the cells GeneMamba may see: control cells and cells of training perturbations,
    never a validation or test perturbation."""
    return np.isin(np.asarray(conditions, dtype=str), list(train_conditions))


def ssd_scan_reference(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                       C: torch.Tensor) -> torch.Tensor:
    """The state-space recurrence, one position at a time (slow; the definition).

    Shapes: x (b, L, H, P), dt (b, L, H), A (H,), B and C (b, L, N) → y (b, L, H, P), without
    the skip term.
    """
    batch, length, heads, head_dim = x.shape
    h = x.new_zeros(batch, heads, head_dim, B.shape[-1])  # (b, H, P, N)
    ys = []
    for t in range(length):
        decay = torch.exp(dt[:, t] * A)[:, :, None, None]  # (b, H, 1, 1)
        h = decay * h + (dt[:, t, :, None] * x[:, t])[..., None] * B[:, t, None, None, :]
        ys.append((h * C[:, t, None, None, :]).sum(-1))  # (b, H, P)
    return torch.stack(ys, dim=1)


def ssd_scan(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
             C: torch.Tensor) -> torch.Tensor:
    """The same map in Mamba-2's matrix ("dual") form: ``y = (M ∘ C Bᵀ) (Δ x)`` with the causal
    decay matrix ``M[t, s] = exp(Σ_{s<r≤t} Δ_r A)`` for s ≤ t. Quadratic in L, but plain
    matrix products, which the CPU runs fast for the context lengths used here."""
    a = dt * A  # (b, L, H) log-decay per step
    cumulative = torch.cumsum(a, dim=1).transpose(1, 2)  # (b, H, L)
    log_decay = cumulative[:, :, :, None] - cumulative[:, :, None, :]  # (b, H, t, s)
    causal = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device).tril()
    decay = torch.exp(log_decay.masked_fill(~causal, float("-inf")))
    scores = (C @ B.transpose(1, 2))[:, None] * decay  # (b, H, t, s)
    values = (x * dt[..., None]).permute(0, 2, 1, 3)  # (b, H, s, P)
    return (scores @ values).permute(0, 2, 1, 3)  # (b, t, H, P)


def scan_for(device: torch.device):
    """The scan to use on ``device``: mamba-ssm's fused Triton kernel on CUDA when the optional
    ``gpu`` extra is installed, else :func:`ssd_scan` (CPU, or CUDA without mamba-ssm)."""
    if device.type != "cuda":
        return ssd_scan
    try:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    except ImportError:
        return ssd_scan

    def fused(x, dt, A, B, C):  # mamba-ssm wants a group axis on B and C
        return mamba_chunk_scan_combined(x, dt, A, B[:, :, None], C[:, :, None], chunk_size=256)

    return fused


class RMSNorm(nn.Module):
    def __init__(self, width: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


@dataclass(frozen=True)
class GeneMambaConfig:
    vocab_size: int
    d_model: int = 128
    n_layers: int = 2
    d_state: int = 16
    head_dim: int = 32
    expand: int = 2
    d_conv: int = 4

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def n_heads(self) -> int:
        if self.d_inner % self.head_dim:
            raise ValueError(f"expand × d_model = {self.d_inner} is not a multiple of head_dim {self.head_dim}")
        return self.d_inner // self.head_dim


class Mamba2Mixer(nn.Module):
    """One Mamba-2 mixer (causal): in-projection, short causal convolution, SSD scan, gated
    RMSNorm, out-projection. (b, L, D) → (b, L, D)."""

    def __init__(self, config: GeneMambaConfig):
        super().__init__()
        self.config = config
        ed, n, h = config.d_inner, config.d_state, config.n_heads
        self.in_proj = nn.Linear(config.d_model, 2 * ed + 2 * n + h, bias=False)
        self.conv1d = nn.Conv1d(ed + 2 * n, ed + 2 * n, config.d_conv, groups=ed + 2 * n,
                                padding=config.d_conv - 1)
        dt = torch.exp(torch.empty(h).uniform_(np.log(1e-3), np.log(1e-1)))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹(dt)
        self.A_log = nn.Parameter(torch.log(torch.empty(h).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(h))
        self.norm = RMSNorm(ed)
        self.out_proj = nn.Linear(ed, config.d_model, bias=False)

    def forward(self, u: torch.Tensor, scan=None) -> torch.Tensor:
        cfg = self.config
        scan = scan or scan_for(u.device)
        batch, length, _ = u.shape
        z, xBC, dt = torch.split(self.in_proj(u), [cfg.d_inner, cfg.d_inner + 2 * cfg.d_state, cfg.n_heads], -1)
        xBC = F.silu(self.conv1d(xBC.transpose(1, 2))[..., :length].transpose(1, 2))  # causal
        x, B, C = torch.split(xBC, [cfg.d_inner, cfg.d_state, cfg.d_state], -1)
        dt = F.softplus(dt + self.dt_bias)  # (b, L, H)
        x = x.reshape(batch, length, cfg.n_heads, cfg.head_dim)
        y = scan(x, dt, -torch.exp(self.A_log), B, C) + x * self.D[:, None]
        y = self.norm(y.reshape(batch, length, cfg.d_inner) * F.silu(z))
        return self.out_proj(y)


def reverse_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence's first ``lengths[b]`` positions, leaving its padding in place
    (an involution: applying it twice restores ``x``). x (b, L, ...)."""
    positions = torch.arange(x.shape[1], device=x.device)[None, :]
    index = torch.where(positions < lengths[:, None], lengths[:, None] - 1 - positions, positions)
    return torch.gather(x, 1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


class BiMambaBlock(nn.Module):
    """Pre-norm residual block whose mixer reads forward and padding-aware reversed, averaged."""

    def __init__(self, config: GeneMambaConfig):
        super().__init__()
        self.norm = RMSNorm(config.d_model)
        self.mixer = Mamba2Mixer(config)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        forward = self.mixer(h)
        backward = reverse_valid(self.mixer(reverse_valid(h, lengths)), lengths)
        return x + 0.5 * (forward + backward)


class GeneMamba(nn.Module):
    """Token embedding → BiMamba blocks → RMSNorm; ``gene_embeddings`` is the embedding table."""

    def __init__(self, config: GeneMambaConfig, seed: int | None = None):
        """``seed`` fixes the initial weights without touching the global random state."""
        super().__init__()
        self.config = config
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.embedding = nn.Embedding(config.vocab_size, config.d_model, padding_idx=PAD)
            # Small init (as GPT-2 for tied embeddings): with N(0, 1) rows the tied output layer
            # starts with logits of s.d. ~√D, a near-one-hot softmax and denormal gradients that
            # slow the CPU matmuls ~10×.
            with torch.no_grad():
                nn.init.normal_(self.embedding.weight, std=0.02)
                self.embedding.weight[PAD].zero_()
            self.blocks = nn.ModuleList(BiMambaBlock(config) for _ in range(config.n_layers))
            self.norm = RMSNorm(config.d_model)

    def causal_hidden(self, tokens: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """Hidden states of one direction only (every block's mixer reads causally): position t
        sees positions ≤ t of the forward read, or of the padding-aware reversed read."""
        lengths = (tokens != PAD).sum(dim=1)
        x = self.embedding(reverse_valid(tokens, lengths) if reverse else tokens)
        for block in self.blocks:
            x = x + block.mixer(block.norm(x))
        return self.norm(x)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Hidden states (b, L, D) of token ids (b, L) padded with ``PAD`` at the end."""
        lengths = (tokens != PAD).sum(dim=1)
        x = self.embedding(tokens)
        for block in self.blocks:
            x = block(x, lengths)
        return self.norm(x)

    @property
    def gene_embeddings(self) -> torch.Tensor:
        """The gene token embeddings (vocabulary without special tokens) × D."""
        return self.embedding.weight[N_SPECIAL_TOKENS:]


def language_model_loss(model: GeneMamba, tokens: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy taken on each direction's own causal read (forward: the next
    gene in rank order; reversed: the previous one), with the shared weights and the tied
    embedding as output layer. Averaging the two reads inside the blocks would let a position
    see the token it predicts, so the loss is computed before any mixing."""
    lengths = (tokens != PAD).sum(dim=1)
    losses = []
    for reverse in (False, True):
        target_tokens = (reverse_valid(tokens, lengths) if reverse else tokens)[:, 1:]
        keep = target_tokens != PAD
        hidden = model.causal_hidden(tokens, reverse)[:, :-1][keep]  # (positions, D)
        losses.append(F.cross_entropy(hidden @ model.embedding.weight.T, target_tokens[keep]))
    return 0.5 * (losses[0] + losses[1])


def coexpression_infonce(model: GeneMamba, anchors: torch.Tensor, partners: torch.Tensor,
                         temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE over gene pairs: each anchor gene's embedding should be closer to its
    co-expressed partner than to every other gene (indices into the gene vocabulary)."""
    genes = F.normalize(model.gene_embeddings, dim=-1)
    logits = genes[anchors] @ genes.T / temperature
    return F.cross_entropy(logits, partners)


@torch.no_grad()
def held_out_loss(model: GeneMamba, tokens: np.ndarray, batch_size: int = 32) -> float:
    """The next-token loss (:func:`language_model_loss`) on cells the model never trains on,
    averaged over batches of ``batch_size`` cells."""
    was_training = model.training
    model.eval()
    device = model.embedding.weight.device
    losses = [float(language_model_loss(model, torch.from_numpy(tokens[i:i + batch_size]).to(device)))
              for i in range(0, len(tokens), batch_size)]
    model.train(was_training)
    return float(np.mean(losses))


def split_held_out(n_cells: int, fraction: float = 0.05, max_cells: int = 128, seed: int = 0) -> np.ndarray:
    """Mask of the cells kept out of pretraining to measure :func:`held_out_loss` (a random
    ``fraction``, at most ``max_cells``, at least one)."""
    rng = np.random.default_rng(seed)
    n = min(max_cells, max(1, round(fraction * n_cells)))
    mask = np.zeros(n_cells, bool)
    mask[rng.choice(n_cells, n, replace=False)] = True
    return mask


@dataclass(frozen=True)
class PretrainingData:
    """What pretraining reads (:func:`pretraining_data`)."""

    tokens: np.ndarray  # cells × context length: rank tokens of the cells GeneMamba may see
    held_out: np.ndarray  # mask of those cells never trained on (the held-out loss curve)
    coexpressed: np.ndarray  # pairs × 2 gene indices: the InfoNCE's co-expressed gene pairs
    summary: pd.Series  # cells, held-out cells, conditions, context, genes per cell, pairs


def pretraining_data(adata, train_conditions: list[str], context_length: int,
                     threshold: float = 0.2) -> PretrainingData:
    """The rank tokens of the cells GeneMamba may see (:func:`pretraining_cells`: control and
    training perturbations of ``adata``, whose ``var.gene_name`` is the vocabulary), the
    held-out ones (:func:`split_held_out`) and the co-expressed gene pairs of those cells: each
    gene with its most correlated other gene where ``|r| > threshold``, as (target, source)."""
    from helpers.graphs import coexpression_edges

    genes = adata.var["gene_name"].astype(str).tolist()
    keep = pretraining_cells(adata.obs["condition"], train_conditions)
    X = adata.X[keep]  # sparse: ranked and correlated a block of cells at a time
    tokens = rank_tokens(X, np.arange(len(genes)) + N_SPECIAL_TOKENS, context_length)
    held_out = split_held_out(len(tokens))
    pairs = coexpression_edges(X, genes, k=1, threshold=threshold)
    pairs = pairs[pairs.source != pairs.target]
    position = {g: i for i, g in enumerate(genes)}
    coexpressed = np.column_stack([pairs.target.map(position), pairs.source.map(position)])
    summary = pd.Series({
        "cells": len(tokens),
        "held-out cells": int(held_out.sum()),
        "conditions": int(pd.Series(adata.obs["condition"][keep]).nunique()),
        "context length": context_length,
        "mean genes per cell (in context)": float((tokens[:, 1:] != PAD).sum(1).mean()),
        "co-expressed gene pairs": len(coexpressed),
    }, name="value")
    return PretrainingData(tokens, held_out, coexpressed, summary)


def pretrain(model: GeneMamba, tokens: np.ndarray, coexpressed: np.ndarray, steps: int,
             batch_size: int, seed: int, lr: float = 1e-3, infonce_weight: float = 0.1,
             device: str = "cpu", progress: bool = True, held_out: np.ndarray | None = None,
             eval_every: int = 100,
             on_eval: Callable[[int, GeneMamba], None] | None = None) -> pd.DataFrame:
    """Pretrain on ``tokens`` (cells × L) with the language-model loss plus ``infonce_weight`` ×
    the InfoNCE over ``coexpressed`` gene pairs (pairs × 2, gene indices). Returns the loss
    per step with the tokens per second; with ``held_out`` tokens (cells never trained on),
    every ``eval_every`` steps and at the last also ``held_out_lm_loss`` (NaN between), the
    curve that tells whether pretraining reached its plateau. ``on_eval(step, model)`` is
    called at the same steps (e.g. to keep checkpoints)."""
    rng = np.random.default_rng(seed)
    model.to(device).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    rows = []
    with deterministic_torch():
        for step in progress_bar(range(1, steps + 1), progress, desc="GeneMamba", unit="step",
                         mininterval=2):
            start = time.perf_counter()
            batch = torch.from_numpy(tokens[rng.integers(0, len(tokens), batch_size)]).to(device)
            pairs = torch.from_numpy(coexpressed[rng.integers(0, len(coexpressed), 4 * batch_size)]).to(device)
            lm = language_model_loss(model, batch)
            contrastive = coexpression_infonce(model, pairs[:, 0], pairs[:, 1])
            loss = lm + infonce_weight * contrastive
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            seconds = time.perf_counter() - start
            row = {"step": step, "loss": loss.item(), "lm_loss": lm.item(),
                   "infonce_loss": contrastive.item(),
                   "tokens_per_s": int((batch != PAD).sum()) / seconds, "held_out_lm_loss": np.nan}
            if step % eval_every == 0 or step == steps:
                if held_out is not None:
                    row["held_out_lm_loss"] = held_out_loss(model, held_out)
                if on_eval is not None:
                    on_eval(step, model)
            rows.append(row)
    return pd.DataFrame(rows)


def checkpoint(model: GeneMamba, genes: list[str]) -> dict:
    """``model`` as :func:`embedding_table` reads it back: its config, the gene of each gene token
    and its weights (saved with ``torch.save``)."""
    return {"config": model.config.__dict__, "genes": list(genes), "state_dict": model.state_dict()}


def loss_summary(history: pd.DataFrame, vocab_size: int, n: int = 10) -> str:
    """Two lines on a pretraining run (:func:`pretrain`'s table): the median throughput, and the
    next-token and InfoNCE losses of the first and last ``n`` steps beside the uniform guess
    ``log vocab_size``."""
    first, last = history.head(n).mean(), history.tail(n).mean()
    return (f"{history.tokens_per_s.median():,.0f} tokens/s (median over steps)\n"
            f"next-token loss {first.lm_loss:.2f} → {last.lm_loss:.2f} "
            f"(uniform guess: log V = {np.log(vocab_size):.2f}); "
            f"InfoNCE {first.infonce_loss:.2f} → {last.infonce_loss:.2f} (first and last {n} steps)")


def gene_embedding_table(model: GeneMamba, genes: list[str]) -> pd.DataFrame:
    """Gene symbol × dimension table of a model's gene token embeddings."""
    weights = model.gene_embeddings.detach().cpu().numpy()
    return pd.DataFrame(weights, index=genes, columns=[f"genemamba_{i}" for i in range(weights.shape[1])])


def embedding_table(checkpoint: Path | str) -> pd.DataFrame:
    """Gene symbol × dimension table of a GeneMamba checkpoint's gene token embeddings."""
    try:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
        weights = saved["state_dict"]["embedding.weight"][N_SPECIAL_TOKENS:].numpy()
        genes = saved["genes"]
    except Exception as error:  # torch/pickle/zip raise many types for damaged files
        raise ValueError(f"{checkpoint}: cannot be read as a GeneMamba checkpoint ({type(error).__name__}: "
                         f"{error}). What to do: it may be truncated or from another program; pretrain "
                         "again (notebooks/12_pretrain_genemamba.py with force=True)") from error
    if len(weights) != len(genes):
        raise ValueError(f"{checkpoint}: {len(weights)} gene embeddings for {len(genes)} genes; the "
                         "checkpoint is corrupt or from another gene set. What to do: pretrain again "
                         "(notebooks/12_pretrain_genemamba.py with force=True)")
    return pd.DataFrame(weights, index=genes, columns=[f"genemamba_{i}" for i in range(weights.shape[1])])


PUBLISHED_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
PUBLISHED_VOCAB_FILES = ("tokenizer.json", "gene_tokenizer.json", "vocab.json")


def _read_id_to_symbol(path: Path) -> dict[str, str]:
    if path.suffix == ".pkl":
        with open(path, "rb") as handle:
            return {str(k): str(v) for k, v in pickle.load(handle).items()}
    table = pd.read_csv(path, sep="\t" if path.suffix in (".tsv", ".txt") else ",", dtype=str)
    if table.shape[1] < 2:
        raise ValueError(f"{path}: needs two columns, Ensembl ID then gene symbol")
    return dict(zip(table.iloc[:, 0], table.iloc[:, 1]))


def published_embedding_table(directory: Path | str, id_to_symbol: Path | str | None = None) -> pd.DataFrame:
    """Gene symbol × dimension table of a published GeneMamba checkpoint folder (as on the
    Hugging Face hub, ``mineself2016/GeneMamba``): the token embedding table from
    ``model.safetensors`` (or ``pytorch_model.bin``), its rows named by the tokenizer's
    vocabulary (``tokenizer.json``: ``model.vocab`` token → id). Special tokens (``[PAD]``,
    ``<cls>``…) are dropped. The published vocabulary is Ensembl gene IDs: ``id_to_symbol`` (a
    two-column CSV/TSV, or the pickled dict GeneMamba ships as ``id2symbol.pkl``) names them;
    IDs without a symbol are dropped, and of several IDs with one symbol the first is kept."""
    directory = Path(directory)
    weights = next((directory / f for f in PUBLISHED_WEIGHT_FILES if (directory / f).is_file()), None)
    vocab_file = next((directory / f for f in PUBLISHED_VOCAB_FILES if (directory / f).is_file()), None)
    if weights is None or vocab_file is None:
        found = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else "no such folder"
        raise FileNotFoundError(f"{directory}: a GeneMamba checkpoint folder needs one of {PUBLISHED_WEIGHT_FILES} "
                                f"and one of {PUBLISHED_VOCAB_FILES}; found {found}. What to do: download "
                                "the model folder from the Hugging Face hub (mineself2016/GeneMamba)")
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(weights))
    else:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    keys = [k for k, v in state.items() if v.ndim == 2 and k.endswith(("embeddings.weight", "embed_tokens.weight"))]
    if len(keys) != 1:
        raise ValueError(f"{weights}: expected one token-embedding tensor (a key ending in 'embeddings.weight'), "
                         f"found {keys or 'none'} among {len(state)} tensors")
    table = state[keys[0]].float().numpy()
    vocab = json.loads(vocab_file.read_text())
    vocab = vocab.get("model", {}).get("vocab", vocab) if isinstance(vocab, dict) else vocab
    if not isinstance(vocab, dict):
        raise ValueError(f"{vocab_file}: no token → id vocabulary (expected model.vocab, as in a tokenizers file)")
    tokens = {str(t): int(i) for t, i in vocab.items()
              if not (t.startswith("[") or t.startswith("<")) and 0 <= int(i) < len(table)}
    if any(t.startswith("ENSG") for t in tokens):
        if id_to_symbol is None:
            raise ValueError(f"{vocab_file}: the vocabulary is Ensembl gene IDs. What to do: pass id_to_symbol, "
                             "a two-column CSV (Ensembl ID, symbol) or GeneMamba's id2symbol.pkl")
        names = _read_id_to_symbol(Path(id_to_symbol))
        tokens = {names[t]: i for t, i in sorted(tokens.items(), key=lambda item: item[1])[::-1] if t in names}
    order = sorted(tokens.items(), key=lambda item: item[1])
    return pd.DataFrame(table[[i for _, i in order]], index=[t for t, _ in order],
                        columns=[f"genemamba_{j}" for j in range(table.shape[1])])
