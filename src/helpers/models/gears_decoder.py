"""GEARS' decoder over the B × G rows of a batch in training mode, as one fused autograd step.

After the perturbation term is added, GEARS (cell-gears' ``GEARS_Model.forward``) pushes every
(cell, gene) row through

    x0 = bn_pert_base(...)      # (rows, H), an affine map of the rows here: u[variant, g] + q[cell]
    r  = relu(x0)                                            # (rows, H)
    a  = relu(BN1(r @ W1ᵀ + b1))                             # (rows, 2H)   recovery_w, block 1
    y2 = BN2(a @ W2ᵀ + b2)                                   # (rows, H)    recovery_w, block 2
    f[cell, g] = Σ_h y2[cell, g, h] · w1[g, h]               # indv_w1 (indv_b1 is added outside)

with both BatchNorms in training mode (statistics over all B · G rows). Written as separate
PyTorch operations, each step reads and writes the whole (rows × 2H) activation: on a CPU those
memory-bound passes, not the matrix products, take most of a training step. Here the rows are
processed in chunks that stay in the processor's cache, and each BatchNorm's statistics come
from sums gathered on the way; the backward pass is written out by hand in the same chunks.

BN1 needs no pass of its own in either direction. Its input ``r @ W1ᵀ`` has mean ``W1 · mean(r)``
and variance ``diag(W1 Cov(r) W1ᵀ)``, so the Gram matrix of ``[r, 1]`` gives its statistics and
BN1 folds into the weights of one matrix product with ``[r, 1]``. Backward, x̂1 is linear in
``r``, so the two BatchNorm terms of dz1 = s1 (dy1 − mean(dy1) − x̂1 mean(dy1 x̂1)) reach dW1
through ``Σ dy1ᵀ [r, 1]`` and Cov(r) (small matrices), and reach dr as ``[r, 1]`` times an
(H + 1) × H matrix.

Three exact savings on top:

- Rows that are equal are computed once. ``f`` depends on a cell only through its perturbation
  (and on whether it is the first cell of the batch, see :mod:`gears_module`), so a batch of B
  cells holds K ≤ B distinct "variants", the k-th with ``copies[k]`` cells. Every batch
  statistic and every gradient is the copy-weighted one, so the result equals the B-row version.
- ``b1`` and ``b2`` cancel in training-mode BatchNorm: they enter only the running means, and
  their gradient is exactly zero (the B-row version gets rounding noise of ~1e-9 instead).
- The buffers of stored activations are reused from step to step (:class:`Workspace`).

Outputs, gradients and running statistics equal the unfused layers to rounding
(``tests/test_gears_decoder.py`` in float64, ``tests/test_gears_equivalence.py`` against
cell-gears). Sums are gathered about a shift (the first variant's mean), so the E[x²] − E[x]²
form loses nothing, and the small matrices built from them are handled in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from helpers.models.torch_runtime import cpu_cache_bytes

def cpu_chunk_rows(hidden: int) -> int:
    """Rows per chunk on a CPU: as many as keep one (rows × 2·hidden) float32 buffer within one
    core's L2 cache (4,096 at hidden 64 with 2 MiB of L2; 2,048 with 1 MiB; 1,024 with 512 kB),
    so each chunk's passes stay in cache. 4,096 where the cache size is unknown."""
    l2 = cpu_cache_bytes(2)
    if l2 is None:
        return 4096
    return int(min(16384, max(256, l2 // (2 * hidden * 4))))


@dataclass(frozen=True)
class BatchStatistics:
    """Batch mean and biased variance of BN1 and BN2's inputs (without the linear biases)."""

    mean1: torch.Tensor
    var1: torch.Tensor
    mean2: torch.Tensor
    var2: torch.Tensor


class Workspace:
    """Buffers reused from one training step to the next. Allocating the ~100 MB of stored
    activations afresh each step costs a page fault per 4 kB, ~15% of a step on the CPU. A
    buffer saved for a backward pass that has not run yet is never silently overwritten: the next
    forward writes into it in place, which bumps its version, and autograd then refuses that
    backward with its "modified by an inplace operation" error."""

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, rows: int, columns: int, like: torch.Tensor) -> torch.Tensor:
        buffer = self._buffers.get(name)
        if (buffer is None or buffer.shape[0] < rows or buffer.shape[1] != columns
                or buffer.dtype != like.dtype or buffer.device != like.device):
            buffer = torch.empty(rows, columns, dtype=like.dtype, device=like.device)
            self._buffers[name] = buffer
        return buffer[:rows]


def _chunks(copies: list[int], n_genes: int, chunk_rows: int) -> list[tuple[slice, int]]:
    """Runs of consecutive variants with the same copy count, each at most ``chunk_rows`` rows
    (and at least one variant): (variants, copies of each)."""
    per_chunk = max(1, chunk_rows // n_genes)
    chunks, start = [], 0
    for k in range(1, len(copies) + 1):
        if k == len(copies) or copies[k] != copies[start] or k - start == per_chunk:
            chunks.append((slice(start, k), copies[start]))
            start = k
    return chunks


def _relu_backward(grad: torch.Tensor, relu_out: torch.Tensor) -> torch.Tensor:
    """grad · 1[x > 0] given relu(x) (0 exactly where x ≤ 0), in place, by PyTorch's own
    ReLU-backward kernel (a comparison and ``masked_fill_`` are ~10× slower on the CPU)."""
    return torch.ops.aten.threshold_backward.grad_input(grad, relu_out, 0, grad_input=grad)


class _FusedDecoder(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, q, which, W1, b1, gamma1, beta1, W2, b2, gamma2, beta2, w1,
                copies, eps1, eps2, chunk_rows, workspace, stats_out):
        n_genes, hidden = u.shape[1], u.shape[2]
        n_variants, wide = q.shape[0], W1.shape[0]
        chunks = _chunks(copies, n_genes, chunk_rows)
        n_rows = float(sum(copies) * n_genes)  # B · G: the rows BatchNorm averages over
        most = max(ks.stop - ks.start for ks, _ in chunks) * n_genes
        which_list = which.tolist()
        # r with a column of ones: [r, 1] @ [Wᵀ; b] is a matrix product plus bias in one GEMM
        r_ext = workspace.get("r_ext", n_variants * n_genes, hidden + 1, u)
        r_ext[:, hidden].fill_(1)
        a_all = workspace.get("a", n_variants * n_genes, wide, u)
        z2_all = workspace.get("z2", n_variants * n_genes, hidden, u)
        scratch_ext = workspace.get("scratch_ext", most, hidden + 1, u)
        scratch_h = workspace.get("scratch_h", most, hidden, u)

        # Pass A: r = relu(u[which] + q) (stored); the copy-weighted Gram matrix of [r − shift, 1]
        # (shift: the first variant's mean) gives r's weighted mean and covariance (then in float64).
        shift_ext = torch.zeros(hidden + 1, dtype=u.dtype, device=u.device)
        gram = torch.zeros(hidden + 1, hidden + 1, dtype=u.dtype, device=u.device)
        for ks, n_k in chunks:
            for k in range(ks.start, ks.stop):
                r = r_ext[k * n_genes:(k + 1) * n_genes, :hidden]
                torch.add(u[which_list[k]], q[k], out=r).clamp_(min=0)
            rows = slice(ks.start * n_genes, ks.stop * n_genes)
            if ks.start == 0:
                shift_ext[:hidden] = r_ext[:n_genes, :hidden].mean(dim=0)
            centred = torch.sub(r_ext[rows], shift_ext, out=scratch_ext[:rows.stop - rows.start])
            gram.addmm_(centred.T, centred, alpha=n_k)
        gram = gram.double()
        mean_rc = gram[:hidden, hidden] / n_rows  # mean of r − shift
        cov_r = gram[:hidden, :hidden] / n_rows - torch.outer(mean_rc, mean_rc)  # (H, H)
        mean_r = mean_rc + shift_ext[:hidden].double()
        W1d = W1.double()
        mean1 = W1d @ mean_r  # (2H,) BN1's batch mean of r @ W1ᵀ
        var1 = ((W1d @ cov_r) * W1d).sum(dim=1).clamp(min=0)  # (2H,)
        inv1 = (var1 + eps1).rsqrt()
        scale1 = gamma1.double() * inv1

        # Pass B: a = relu(γ1 (r W1ᵀ − mean1) / σ1 + β1) = relu([r, 1] @ W1_ext), z2 = a W2ᵀ
        # (both stored); copy-weighted sums of z2 − shift and of their squares for BN2.
        W1_ext = torch.cat([(W1d * scale1[:, None]).T, (beta1.double() - mean1 * scale1)[None]]).to(u.dtype)
        W2_t = W2.T.contiguous()  # (2H, H)
        shift_2 = None
        sum_2 = torch.zeros(hidden, dtype=u.dtype, device=u.device)
        square_2 = torch.zeros(hidden, dtype=u.dtype, device=u.device)
        for ks, n_k in chunks:
            rows = slice(ks.start * n_genes, ks.stop * n_genes)
            a = torch.mm(r_ext[rows], W1_ext, out=a_all[rows]).clamp_(min=0)
            z = torch.mm(a, W2_t, out=z2_all[rows])
            if shift_2 is None:
                shift_2 = z[:n_genes].mean(dim=0)
            centred = torch.sub(z, shift_2, out=scratch_h[:z.shape[0]])
            sum_2.add_(centred.sum(dim=0), alpha=n_k)
            square_2.add_(centred.square_().sum(dim=0), alpha=n_k)
        mean_2 = sum_2.double() / n_rows
        var2 = (square_2.double() / n_rows - mean_2 * mean_2).clamp(min=0)
        mean2 = (mean_2 + shift_2.double()).to(u.dtype)
        inv2 = (var2 + eps2).rsqrt().to(u.dtype)

        # f[k, g] = Σ_h w1[g, h] (γ2 (z2 − mean2) / σ2 + β2)_h = Σ_h z2 · ω + const[g]
        omega = w1 * (gamma2 * inv2)  # (G, H)
        const = w1 @ (beta2 - gamma2 * mean2 * inv2)  # (G,)
        out = torch.empty(n_variants, n_genes, dtype=u.dtype, device=u.device)
        for ks, _ in chunks:
            rows = slice(ks.start * n_genes, ks.stop * n_genes)
            product = torch.mul(z2_all[rows].view(-1, n_genes, hidden), omega,
                                out=scratch_h[:rows.stop - rows.start].view(-1, n_genes, hidden))
            torch.sum(product, dim=-1, out=out[ks])
        out += const

        ctx.save_for_backward(u, q, W1, gamma1, W2, gamma2, beta2, w1, r_ext, a_all, z2_all, mean2, inv2)
        ctx.chunks, ctx.n_rows, ctx.workspace, ctx.which_list = chunks, n_rows, workspace, which_list
        ctx.bn1 = (mean1, inv1, mean_r, cov_r)  # float64, small
        stats_out.append(BatchStatistics(mean1.to(u.dtype), var1.to(u.dtype), mean2.detach(), var2.to(u.dtype)))
        return out

    @staticmethod
    def backward(ctx, grad_out):
        u, q, W1, gamma1, W2, gamma2, beta2, w1, r_ext, a_all, z2_all, mean2, inv2 = ctx.saved_tensors
        chunks, n_rows, workspace, which_list = ctx.chunks, ctx.n_rows, ctx.workspace, ctx.which_list
        mean1, inv1, mean_r, cov_r = ctx.bn1
        n_variants, n_genes, hidden = q.shape[0], u.shape[1], u.shape[2]
        wide = W1.shape[0]
        grad_out = grad_out.contiguous()  # (K, G), each variant's gradient summed over its copies
        z2_v = z2_all.view(n_variants, n_genes, hidden)
        most = max(ks.stop - ks.start for ks, _ in chunks) * n_genes
        scratch_h = workspace.get("scratch_h", most, hidden, u)
        scratch_2h = workspace.get("scratch_2h", most, wide, u)
        grad_r_all = workspace.get("grad_r", n_variants * n_genes, hidden, u)

        # BN2 and indv_w1: every reduction needs Σ_k grad[k, g] · z2[k, g, :] (G, H).
        weighted_z2 = torch.zeros(n_genes, hidden, dtype=u.dtype, device=u.device)
        for k in range(n_variants):
            weighted_z2.addcmul_(z2_v[k], grad_out[k, :, None])
        grad_sum = grad_out.sum(dim=0)  # (G,)
        centred = (weighted_z2 - grad_sum[:, None] * mean2) * inv2  # Σ_k grad · x̂2 (G, H)
        grad_gamma2 = (w1 * centred).sum(dim=0)  # (H,) = Σ_rows dy2 · x̂2
        grad_beta2 = grad_sum @ w1  # (H,) = Σ_rows dy2
        grad_w1 = gamma2 * centred + grad_sum[:, None] * beta2  # (G, H) = Σ_k grad · y2
        scale2 = gamma2 * inv2
        omega = w1 * scale2
        # dz2 = s2 (grad w1 − n_k mean(dy2) − n_k x̂2 mean(dy2 x̂2)) = grad ω − n_k (α + z2 β)
        alpha = scale2 * (grad_beta2 - mean2 * inv2 * grad_gamma2) / n_rows
        beta_coef = scale2 * inv2 * grad_gamma2 / n_rows

        # Pass C: dz2 → dW2; dy1 = (dz2 W2) · 1[y1 > 0]; Σ dy1ᵀ [r, 1] (for dW1, dγ1, dβ1);
        # the data term of dr, dy1 · diag(s1) W1 (stored).
        scale1 = gamma1.double() * inv1
        W1d = W1.double()
        W1_scaled = (W1d * scale1[:, None]).to(u.dtype)  # (2H, H)
        grad_W2 = torch.zeros_like(W2)
        dy1_r_ext = torch.zeros(wide, hidden + 1, dtype=u.dtype, device=u.device)
        coefficients = {n_k: (-n_k * alpha, -n_k * beta_coef) for n_k in {n_k for _, n_k in chunks}}
        for ks, n_k in chunks:
            rows = slice(ks.start * n_genes, ks.stop * n_genes)
            n = rows.stop - rows.start
            alpha_k, beta_k = coefficients[n_k]
            dz2 = torch.addcmul(alpha_k, grad_out[ks, :, None], omega, out=scratch_h[:n].view(-1, n_genes, hidden))
            dz2 = dz2.addcmul_(z2_v[ks], beta_k).view(n, hidden)
            a = a_all[rows]
            grad_W2.addmm_(dz2.T, a)
            dy1 = _relu_backward(torch.mm(dz2, W2, out=scratch_2h[:n]), a)
            dy1_r_ext.addmm_(dy1.T, r_ext[rows])
            torch.mm(dy1, W1_scaled, out=grad_r_all[rows])
        dy1_r_ext = dy1_r_ext.double()

        # BN1's backward from those sums: with x̂1 = (r W1ᵀ − mean1) / σ1 linear in r,
        # dz1 = s1 (dy1 − n_k R1 / N − n_k x̂1 R2 / N) needs no pass over the rows for dW1, and
        # contributes to dr a term linear in [r, 1].
        sum_dy1 = dy1_r_ext[:, hidden]  # R1 = Σ dy1 = dβ1
        dy1_r = dy1_r_ext[:, :hidden]  # Σ dy1ᵀ r
        sum_dy1_xhat1 = inv1 * ((W1d * dy1_r).sum(dim=1) - mean1 * sum_dy1)  # R2 = dγ1
        kappa = scale1 * sum_dy1_xhat1 * inv1 / n_rows
        grad_W1 = (scale1[:, None] * dy1_r - torch.outer(scale1 * sum_dy1, mean_r)
                   - (kappa * n_rows)[:, None] * (W1d @ cov_r))
        linear_term = W1d.T @ (kappa[:, None] * W1d)  # (H, H)
        constant_term = (scale1 * sum_dy1 / n_rows - mean1 * kappa) @ W1d  # (H,)
        correction = torch.cat([linear_term, constant_term[None]]).to(u.dtype)  # (H + 1, H)

        # Pass D: dr = data term − n_k [r, 1] @ correction; dx0 = dr · 1[x0 > 0] → du, dq.
        grad_u = torch.zeros_like(u)
        grad_q = torch.empty_like(q)
        for ks, n_k in chunks:
            rows = slice(ks.start * n_genes, ks.stop * n_genes)
            dr = grad_r_all[rows].addmm_(r_ext[rows], correction, alpha=-n_k)
            dr = _relu_backward(dr, r_ext[rows, :hidden]).view(-1, n_genes, hidden)
            for k in range(ks.start, ks.stop):
                grad_u[which_list[k]] += dr[k - ks.start]
            torch.sum(dr, dim=1, out=grad_q[ks])

        zeros = torch.zeros_like
        return (grad_u, grad_q, None, grad_W1.to(u.dtype), zeros(W1[:, 0]), sum_dy1_xhat1.to(u.dtype),
                sum_dy1.to(u.dtype), grad_W2, zeros(W2[:, 0]), grad_gamma2, grad_beta2, grad_w1,
                None, None, None, None, None, None)


def fused_decoder(u: torch.Tensor, q: torch.Tensor, which: torch.Tensor, copies: list[int],
                  recovery_w: torch.nn.Sequential, w1: torch.Tensor, workspace: Workspace | None = None,
                  chunk_rows: int | None = None) -> tuple[torch.Tensor, BatchStatistics]:
    """GEARS' decoder f (K, G) for the K row variants ``u[which[k]] + q[k]`` (u: (V, G, H),
    q: (K, H)), the k-th standing for ``copies[k]`` cells, with ``recovery_w`` (Linear,
    BatchNorm1d, ReLU, Linear, BatchNorm1d) in training mode. Variants with equal copy counts
    should be adjacent (chunks hold one count). Returns f and the batch statistics, for the
    caller to update the BatchNorms' running statistics. The backward pass may run once.
    ``chunk_rows``: rows per chunk (None: :func:`cpu_chunk_rows` on a CPU, every row at once on
    a GPU, which wants few, large kernels)."""
    linear1, bn1, _, linear2, bn2 = recovery_w
    if chunk_rows is None:
        chunk_rows = cpu_chunk_rows(u.shape[-1]) if u.device.type == "cpu" else q.shape[0] * u.shape[1]
    stats: list[BatchStatistics] = []
    out = _FusedDecoder.apply(u, q, which, linear1.weight, linear1.bias, bn1.weight, bn1.bias,
                              linear2.weight, linear2.bias, bn2.weight, bn2.bias, w1,
                              [int(c) for c in copies], bn1.eps, bn2.eps, chunk_rows,
                              workspace or Workspace(), stats)
    return out, stats[0]
