"""GEARS (Roohani, Huang & Leskovec 2023) as a dense PyTorch module, equal to cell-gears 0.1.2.

cell-gears' ``GEARS_Model`` runs on PyTorch-Geometric batches in which every cell is a graph of
all genes, so it recomputes the same gene embeddings for each of the B cells of a batch. Here
they are computed once per batch and the per-cell perturbation term is broadcast, which is the
same maths; batch normalisation over the B identical copies is computed from one copy with the
copy count (:func:`_repeated_batch_norm`), and the batch statistics of ``bn_pert_base`` follow
from per-gene and per-cell terms (:func:`_broadcast_batch_norm`), so outputs, gradients and
running statistics agree with cell-gears (``tests/test_gears_equivalence.py`` loads a cell-gears
state dict and checks).

In training mode the decoder over the B × G rows (``bn_pert_base`` → ``recovery_w`` →
``indv_w1``), which is most of the work, runs as one fused step with a hand-written backward
(:mod:`helpers.models.gears_decoder`); ``use_fused_decoder = False`` selects the reference
branch, one PyTorch operation after another, that ``tests/test_gears_decoder.py`` compares it
with. The SGConvs propagate with their normalised graph precomputed as a sparse matrix
(:func:`_propagation_matrix`), and the GO-graph one only to the nodes a batch perturbs. Neither
needs PyTorch Geometric (:class:`SGConv` and :func:`gcn_normalised` repeat its arithmetic, a test
checks them against it): importing it costs ~1.6 s in every process that trains or predicts.

Glossary (code → paper / cell-gears):

- ``gene_emb`` → gene embedding h_g; ``emb_pos`` + ``layers_emb_pos`` → co-expression GNN
  (SGConv on the gene co-expression graph); ``emb_trans_v2`` → MLP after adding 0.2 × GNN term.
- ``pert_emb`` + ``sim_layers`` → perturbation embedding z_p from the GO-graph GNN;
  ``pert_fuse`` → MLP that fuses the embeddings of the (one or two) perturbed genes of a cell.
- ``recovery_w`` → shared decoder MLP; ``indv_w1``/``indv_b1`` → gene-specific layer;
  ``cross_gene_state`` → MLP over all genes' outputs; ``indv_w2``/``indv_b2`` → final
  gene-specific layer that sees the cross-gene state. The output is added to the control cell.

One cell-gears quirk is kept on purpose: its co-expression graph indexes the genes of the first
graph of a batch only, so the GNN term reaches the first cell of each batch and every other cell
sees ``emb_pos`` through the SGConv's linear map alone (its graph has only self-loops).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from helpers.models.gears_decoder import Workspace, fused_decoder


@dataclass(frozen=True)
class GearsConfig:
    """GEARS hyper-parameters; the defaults are cell-gears' ``model_initialize`` / ``train``."""

    hidden_size: int = 64
    num_go_gnn_layers: int = 1
    num_gene_gnn_layers: int = 1
    num_similar_genes_go_graph: int = 20
    num_similar_genes_co_express_graph: int = 20
    coexpress_threshold: float = 0.4
    direction_lambda: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 5e-4
    batch_size: int = 32
    n_control_samples: int = 300  # control cells averaged per prediction (cell-gears' predict)

    @classmethod
    def from_settings(cls, *layers: Mapping[str, Any] | None) -> GearsConfig:
        """cell-gears' defaults overridden by each of ``layers`` in turn (a profile's settings,
        then a chapter's ``gears_config``); a name GEARS does not have is refused."""
        known = {f.name for f in fields(cls)}
        merged: dict[str, Any] = {}
        for layer in layers:
            unknown = sorted(set(layer or {}) - known)
            if unknown:
                raise ValueError(f"unknown GEARS setting(s) {unknown}; GearsConfig has {sorted(known)}")
            merged.update(layer or {})
        return cls(**merged)


class MLP(nn.Module):
    """cell-gears' MLP: Linear → BatchNorm → ReLU blocks, without the last ReLU."""

    def __init__(self, sizes: Sequence[int]):
        super().__init__()
        layers: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU(inplace=True)]
        self.network = nn.Sequential(*layers[:-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


def _track_running_stats(bn: nn.BatchNorm1d, mean: torch.Tensor, var: torch.Tensor, n: int) -> None:
    """Update ``bn``'s running statistics as its own training-mode forward would, from the batch
    ``mean`` and biased ``var`` of ``n`` rows (the running variance is the unbiased one)."""
    with torch.no_grad():
        momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked + 1)
        bn.running_mean.mul_(1 - momentum).add_(momentum * mean)
        bn.running_var.mul_(1 - momentum).add_(momentum * var * n / max(n - 1, 1))
        bn.num_batches_tracked.add_(1)


def _variance_and_mean(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Biased variance and mean over dim 1 of (V, G, H), two-pass (``torch.var_mean`` is ~10×
    slower on the CPU for this layout)."""
    mean = x.mean(dim=1, keepdim=True)
    return ((x - mean) ** 2).mean(dim=1), mean[:, 0]


class _WeightedBatchNorm(torch.autograd.Function):
    """Training-mode BatchNorm of rows that stand for ``weights[v]`` copies of ``x[v]`` (V, G, H),
    forward and backward written out (a few passes instead of autograd's ~20)."""

    @staticmethod
    def forward(ctx, x, weight, bias, copies, eps):
        n_rows = float(copies.sum()) * x.shape[1]
        var_v, mean_v = _variance_and_mean(x)  # (V, H), per variant
        share = (copies.to(x.dtype) / copies.sum())[:, None]  # (V, 1)
        mean = (share * mean_v).sum(dim=0)
        var = (share * (var_v + (mean_v - mean) ** 2)).sum(dim=0)  # law of total variance
        inv = torch.rsqrt(var + eps)
        xhat = (x - mean).mul_(inv)
        ctx.save_for_backward(xhat, weight, inv, copies.to(x.dtype))
        ctx.n_rows = n_rows
        return torch.addcmul(bias, xhat, weight), mean, var

    @staticmethod
    def backward(ctx, grad, _grad_mean, _grad_var):
        xhat, weight, inv, copies = ctx.saved_tensors
        # grad[v] is summed over the copies of variant v, so sums over grad count every row
        grad_bias = grad.sum(dim=(0, 1))
        grad_weight = (grad * xhat).sum(dim=(0, 1))
        # dx = γ/σ (dy − mean(dy) − x̂ mean(dy x̂)), each of variant v's copies subtracting the means
        scale = weight * inv
        n = copies[:, None, None]
        grad_x = (grad * scale).sub_(n * (scale * grad_bias / ctx.n_rows))
        grad_x.sub_(xhat * (n * (scale * grad_weight / ctx.n_rows)))
        return grad_x, grad_weight, grad_bias, None, None


def _repeated_batch_norm(bn: nn.BatchNorm1d, variants: torch.Tensor,
                         copies: torch.Tensor) -> torch.Tensor:
    """BatchNorm of a batch holding ``copies[v]`` copies of each ``variants[v]`` (V, G, H),
    without materialising the copies. In eval mode it is the ordinary row-wise map."""
    n_variants, n_rows, hidden = variants.shape
    if not bn.training:
        return bn(variants.reshape(-1, hidden)).reshape(n_variants, n_rows, hidden)
    out, mean, var = _WeightedBatchNorm.apply(variants, bn.weight, bn.bias, copies, bn.eps)
    _track_running_stats(bn, mean.detach(), var.detach(), int(copies.sum()) * n_rows)
    return out


def _broadcast_batch_norm_statistics(variants: torch.Tensor, which: torch.Tensor,
                                     per_cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch mean and biased variance (H,) of the rows ``variants[which[b], g] + per_cell[b]``
    over all cells b and genes g, by the law of total variance: the within-cell variance is the
    variant's variance over genes, the between-cell term comes from the cells' means."""
    var_v, mean_v = _variance_and_mean(variants)  # (V, H)
    cell_mean = mean_v[which] + per_cell  # (B, H)
    mean = cell_mean.mean(dim=0)
    var = var_v[which].mean(dim=0) + ((cell_mean - mean) ** 2).mean(dim=0)
    return mean, var


def _broadcast_batch_norm_affine(bn: nn.BatchNorm1d, variants: torch.Tensor, which: torch.Tensor,
                                 per_cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``bn`` on the rows ``variants[which[b], g] + per_cell[b]`` (all cells b, genes g) as the
    per-feature map ``rows · scale + shift`` (H,), (H,): batch statistics in training mode (the
    running ones updated, as ``bn`` itself does), running statistics in eval mode."""
    if bn.training:
        mean, var = _broadcast_batch_norm_statistics(variants, which, per_cell)
        _track_running_stats(bn, mean, var, per_cell.shape[0] * variants.shape[1])
    else:
        mean, var = bn.running_mean, bn.running_var
    scale = bn.weight / torch.sqrt(var + bn.eps)
    return scale, bn.bias - mean * scale


def _broadcast_batch_norm(bn: nn.BatchNorm1d, variants: torch.Tensor, which: torch.Tensor,
                          per_cell: torch.Tensor) -> torch.Tensor:
    """BatchNorm of the rows ``variants[which[b], g] + per_cell[b]`` over all cells b and genes g,
    returned as (B, G, H) without forming the un-normalised rows first (their statistics come
    from per-variant and per-cell terms). Same maths as ``bn`` on the (B·G, H) rows, running
    statistics included."""
    scale, shift = _broadcast_batch_norm_affine(bn, variants, which, per_cell)
    rows = (variants * scale + shift)[which]  # (B, G, H), a fresh tensor
    return rows.add_((per_cell * scale)[:, None, :])  # in place: one (B, G, H) buffer, not two


def gcn_normalised(edge_index: torch.Tensor, edge_weight: torch.Tensor,
                   n_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PyG 2.8's ``gcn_norm`` (``add_self_loops=True``, ``improved=False``, flow source → target),
    operation for operation, so the weights are the same to the bit: every node gets a self-loop
    of weight 1 (a node that has one keeps its weight), then w_ij / sqrt(deg_i deg_j) with the
    degrees summed over each edge's target."""
    is_loop = edge_index[0] == edge_index[1]
    loop_weight = edge_weight.new_full((n_nodes,), 1.0)
    loop_weight[edge_index[0][is_loop]] = edge_weight[is_loop]
    loops = torch.arange(n_nodes, device=edge_index.device).view(1, -1).repeat(2, 1)
    index = torch.cat([edge_index[:, ~is_loop], loops], dim=1)
    weight = torch.cat([edge_weight[~is_loop], loop_weight])
    source, target = index[0], index[1]
    inv_sqrt = weight.new_zeros(n_nodes).scatter_add_(0, target, weight).pow_(-0.5)
    inv_sqrt.masked_fill_(inv_sqrt == float("inf"), 0)
    return index, inv_sqrt[source] * weight * inv_sqrt[target]


def _propagation_matrix(edge_index: torch.Tensor, edge_weight: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """SGConv's (K = 1) propagation Â = D^-1/2 (A + I) D^-1/2 as a sparse (n, n) matrix, so that
    ``SGConv(x) == lin(Â @ x)``. PyG recomputes this normalisation of the fixed graph in every
    forward and propagates by gather/scatter; one sparse product is ~3× faster on the CPU."""
    index, weight = gcn_normalised(edge_index.long(), edge_weight.float(), n_nodes)
    # source_to_target: row i (target) sums the messages of its sources j
    return torch.sparse_coo_tensor(index.flip(0), weight, (n_nodes, n_nodes),
                                   check_invariants=True).coalesce()


class _Linear(nn.Module):
    """``y = x Wᵀ + b`` with PyG's initialisation (:class:`SGConv`); ``nn.Linear`` would draw
    its own initial weights first and so shift every later draw of the seed."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features))

    def reset_parameters(self) -> None:
        """PyG's ``Linear.reset_parameters``: Kaiming-uniform weights (fan = inputs, a = √5) and
        uniform biases in ±1/√inputs, each bound computed as PyG computes it."""
        a = math.sqrt(5)
        bound = math.sqrt(6 / ((1 + a**2) * self.in_features))
        self.weight.data.uniform_(-bound, bound)
        bound = 1.0 / math.sqrt(self.in_features)
        self.bias.data.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class SGConv(nn.Module):
    """The parameters of PyG's ``SGConv(in, out, K=1)``: its linear map ``lin`` (the propagation
    is :func:`_propagation_matrix`, applied by :class:`DenseGEARS`). Initialised as PyG does it,
    twice (PyG's ``Linear`` initialises itself, then ``SGConv`` resets it), so a seed gives
    cell-gears' initial weights and the same draws for every parameter created after it."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.lin = _Linear(in_channels, out_channels)
        self.lin.reset_parameters()
        self.lin.reset_parameters()


def _renormed_table(embedding: nn.Embedding) -> torch.Tensor:
    """The whole table of an ``nn.Embedding(max_norm=...)``, renormalised in place the way a
    lookup of every row renormalises it (rows with norm > max_norm scaled to max_norm), in one
    vectorised step instead of torch's per-row loop."""
    with torch.no_grad():
        norms = embedding.weight.norm(p=embedding.norm_type, dim=1, keepdim=True)
        scale = torch.where(norms > embedding.max_norm, embedding.max_norm / (norms + 1e-7),
                            torch.ones_like(norms))
        embedding.weight.mul_(scale)
    return embedding.weight


def _repeated_mlp(mlp: MLP, variants: torch.Tensor, copies: torch.Tensor) -> torch.Tensor:
    for layer in mlp.network:
        variants = (_repeated_batch_norm(layer, variants, copies)
                    if isinstance(layer, nn.BatchNorm1d) else layer(variants))
    return variants


class DenseGEARS(nn.Module):
    """GEARS on dense tensors. Parameter names match cell-gears' ``GEARS_Model``.

    Args:
        num_genes, num_perts: genes of the expression matrix; nodes of the GO graph.
        coexpress_graph, go_graph: ``(edge_index (2, E), edge_weight (E,))``.
        gene_prior: optional fixed embedding per gene (G, D); it enters the gene embedding
            through a trainable projection, beside the trainable ``gene_emb`` (a residual).
        pert_prior: the same for the perturbation embedding (P, D).
    """

    def __init__(self, num_genes: int, num_perts: int,
                 coexpress_graph: tuple[torch.Tensor, torch.Tensor],
                 go_graph: tuple[torch.Tensor, torch.Tensor], hidden_size: int = 64,
                 num_go_gnn_layers: int = 1, num_gene_gnn_layers: int = 1,
                 gene_prior: torch.Tensor | None = None, pert_prior: torch.Tensor | None = None):
        super().__init__()
        self.num_genes, self.num_perts = num_genes, num_perts
        h = hidden_size
        self.pert_w = nn.Linear(1, h)  # unused by cell-gears' forward; kept so state dicts match
        self.gene_emb = nn.Embedding(num_genes, h, max_norm=True)
        self.pert_emb = nn.Embedding(num_perts, h, max_norm=True)
        self.emb_trans_v2 = MLP([h, h, h])
        self.pert_fuse = MLP([h, h, h])
        self.emb_pos = nn.Embedding(num_genes, h, max_norm=True)
        self.layers_emb_pos = nn.ModuleList(SGConv(h, h) for _ in range(num_gene_gnn_layers))
        self.sim_layers = nn.ModuleList(SGConv(h, h) for _ in range(num_go_gnn_layers))
        self.recovery_w = MLP([h, 2 * h, h])
        self.indv_w1 = nn.Parameter(torch.empty(num_genes, h, 1))
        self.indv_b1 = nn.Parameter(torch.empty(num_genes, 1))
        self.cross_gene_state = MLP([num_genes, h, h])
        self.indv_w2 = nn.Parameter(torch.empty(1, num_genes, h + 1))
        self.indv_b2 = nn.Parameter(torch.empty(1, num_genes))
        for weight in (self.indv_w1, self.indv_b1, self.indv_w2, self.indv_b2):
            nn.init.xavier_normal_(weight)
        self.bn_emb = nn.BatchNorm1d(h)
        self.bn_pert_base = nn.BatchNorm1d(h)
        self.bn_pert_base_trans = nn.BatchNorm1d(h)  # unused by cell-gears' forward, as above
        self.use_fused_decoder = True  # training mode: the fused decoder; False: the reference path
        self.chunk_rows: int | None = None  # decoder rows per chunk (None: from the CPU cache, or all on a GPU)
        self._workspace = Workspace()  # the fused decoder's buffers, reused between steps
        self.register_buffer("coexpress_matrix", _propagation_matrix(*coexpress_graph, num_genes), persistent=False)
        self.register_buffer("go_matrix", _propagation_matrix(*go_graph, num_perts), persistent=False)
        self.gene_prior_proj = self.pert_prior_proj = None
        if gene_prior is not None:
            self.register_buffer("gene_prior", gene_prior.float())
            self.gene_prior_proj = nn.Linear(gene_prior.shape[1], h)
        if pert_prior is not None:
            self.register_buffer("pert_prior", pert_prior.float())
            self.pert_prior_proj = nn.Linear(pert_prior.shape[1], h)

    def _gene_variants(self, batch_size: int) -> torch.Tensor:
        """Gene embeddings after ``emb_trans_v2``: (2, G, H) = [first cell, every other cell]."""
        emb = _renormed_table(self.gene_emb)  # (G, H)
        if self.gene_prior_proj is not None:
            emb = emb + self.gene_prior_proj(self.gene_prior)
        batch = torch.tensor([batch_size], device=emb.device)
        base = F.relu(_repeated_batch_norm(self.bn_emb, emb[None], batch)[0])
        pos_first = pos_rest = _renormed_table(self.emb_pos)
        for i, layer in enumerate(self.layers_emb_pos):
            pos_first = layer.lin(torch.sparse.mm(self.coexpress_matrix, pos_first))  # SGConv, K = 1
            pos_rest = layer.lin(pos_rest)  # a graph with self-loops only: Â = I
            if i < len(self.layers_emb_pos) - 1:
                pos_first, pos_rest = pos_first.relu(), pos_rest.relu()
        variants = torch.stack([base + 0.2 * pos_first, base + 0.2 * pos_rest])
        copies = torch.tensor([1, batch_size - 1], device=emb.device)
        if batch_size == 1:
            variants, copies = variants[:1], copies[:1]
        return _repeated_mlp(self.emb_trans_v2, variants, copies)

    def _pert_embeddings(self, table: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
        """GO-graph perturbation embeddings (len(nodes), H) of the GO-graph ``nodes`` from the
        renormalised ``pert_emb`` table; the last SGConv propagates to those rows only (the same
        numbers, ~10× less work than all P)."""
        emb = table  # (P, H)
        if self.pert_prior_proj is not None:
            emb = emb + self.pert_prior_proj(self.pert_prior)
        for i, layer in enumerate(self.sim_layers):
            last = i == len(self.sim_layers) - 1
            matrix = self.go_matrix.index_select(0, nodes) if last else self.go_matrix
            emb = layer.lin(torch.sparse.mm(matrix, emb))  # SGConv, K = 1
            if not last:
                emb = emb.relu()
        return emb

    def _fused_decoder(self, variants: torch.Tensor, which: torch.Tensor, per_cell: torch.Tensor,
                       perts: Sequence[Sequence[int]]) -> torch.Tensor:
        """bn_pert_base → ReLU → recovery_w → indv_w1 in training mode, by
        :func:`fused_decoder`: cells with the same rows (same gene-embedding variant and
        perturbation) computed once. Same maths as the reference branch of :meth:`forward`."""
        keys = [(int(v), tuple(sorted(i for i in p if i != -1))) for v, p in zip(which.tolist(), perts)]
        first = {key: b for b, key in reversed(list(enumerate(keys)))}  # key → its first cell
        count = Counter(keys)
        unique = sorted(first.values(), key=lambda b: (-count[keys[b]], b))  # equal counts adjacent
        position = {keys[b]: k for k, b in enumerate(unique)}
        inverse = torch.tensor([position[key] for key in keys], device=which.device)  # (B,)
        copies = [count[keys[b]] for b in unique]  # (K,)
        # bn_pert_base is affine per feature: rows = variants · scale + shift + per_cell · scale
        scale, shift = _broadcast_batch_norm_affine(self.bn_pert_base, variants, which, per_cell)
        u = variants * scale + shift  # (V, G, H)
        q = per_cell[unique] * scale  # (K, H)
        f, stats = fused_decoder(u, q, which[unique], copies, self.recovery_w.network, self.indv_w1[..., 0],
                                 self._workspace, self.chunk_rows)
        n_rows = per_cell.shape[0] * variants.shape[1]
        linear1, bn1, _, linear2, bn2 = self.recovery_w.network
        _track_running_stats(bn1, stats.mean1 + linear1.bias.detach(), stats.var1, n_rows)
        _track_running_stats(bn2, stats.mean2 + linear2.bias.detach(), stats.var2, n_rows)
        return f[inverse]  # (B, G)

    def forward(self, x: torch.Tensor, perts: Sequence[Sequence[int]],
                first_cell: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted expression (B, G) of B control cells ``x`` (B, G) after perturbing, in cell
        b, the GO-graph nodes ``perts[b]`` (empty or ``[-1]`` for a control cell).

        ``first_cell`` (B,) bool, eval mode only: which cells get the gene embeddings of the
        first cell of a cell-gears batch (default: cell 0 only, as cell-gears). In eval mode
        every row is computed on its own, so one call can stand for many cell-gears batches."""
        batch_size, n_genes = x.shape
        if first_cell is None:
            which = torch.ones(batch_size, dtype=torch.long, device=x.device)
            which[0] = 0
        elif self.training:
            raise ValueError("first_cell is for eval mode: in training the batch statistics "
                             "assume cell 0 alone is the first cell")
        else:
            which = (~first_cell).long().to(x.device)
        variants = self._gene_variants(batch_size)  # (V, G, H)
        which = which.clamp(max=variants.shape[0] - 1)  # cell b's gene embeddings: variants[which[b]]

        hidden = variants.shape[-1]
        per_cell = torch.zeros(batch_size, hidden, dtype=variants.dtype, device=x.device)  # (B, H)
        # renormalised in every forward, as cell-gears' lookup of all rows does, perturbed or not
        pert_table = _renormed_table(self.pert_emb)
        cells = [b for b, p in enumerate(perts) if any(i != -1 for i in p)]
        if cells:
            nodes = sorted({i for b in cells for i in perts[b] if i != -1})
            row = {node: j for j, node in enumerate(nodes)}
            pert_nodes = self._pert_embeddings(pert_table, torch.tensor(nodes, device=x.device))  # (nodes, H)
            tracks = torch.stack([pert_nodes[[row[i] for i in perts[b] if i != -1]].sum(dim=0) for b in cells])
            # BatchNorm needs two rows: cell-gears feeds a lone perturbed cell twice
            fused = self.pert_fuse(tracks if len(cells) > 1 else tracks.repeat(2, 1))[: len(cells)]
            per_cell = per_cell.index_add(0, torch.tensor(cells, device=x.device), fused)

        if self.training and self.use_fused_decoder:
            out = self._fused_decoder(variants, which, per_cell, perts)
        else:  # the reference: one PyTorch operation after another over all B × G rows
            # bn_pert_base over the B × G rows variants[which[b], g] + per_cell[b]
            base = _broadcast_batch_norm(self.bn_pert_base, variants, which, per_cell)  # (B, G, H)
            h = self.recovery_w(F.relu(base.reshape(-1, hidden), inplace=True))
            out = torch.einsum("bgh,gh->bg", h.reshape(batch_size, n_genes, hidden), self.indv_w1[..., 0])
        out = out + self.indv_b1[:, 0]  # (B, G)
        cross = self.cross_gene_state(out)  # (B, H)
        w2 = self.indv_w2[0]  # (G, H + 1)
        out = out * w2[:, 0] + cross @ w2[:, 1:].T + self.indv_b2[0]
        return out + x


def gears_loss(pred: torch.Tensor, y: torch.Tensor, control_mean: torch.Tensor,
               condition_codes: torch.Tensor, retain_mask: torch.Tensor,
               direction_lambda: float = 0.1) -> torch.Tensor:
    """cell-gears' training loss: per condition in the batch, the mean 4th power of the error
    plus ``direction_lambda`` × the mean squared sign disagreement of the change over control,
    over the genes that are non-zero in that condition (all genes for control), averaged over
    the conditions of the batch. Not an evaluation metric (see ``helpers.metrics``).

    ``condition_codes`` (B,) labels each cell's condition; ``retain_mask`` (B, G) marks the
    genes each cell's condition keeps.
    """
    _, codes, counts = torch.unique(condition_codes, return_inverse=True, return_counts=True)
    mask = retain_mask.to(pred.dtype)
    per_cell_weight = 1.0 / (counts[codes] * mask.sum(dim=1))  # 1 / (cells × genes) of its group
    error = (pred - y) ** 4
    direction = (torch.sign(y - control_mean) - torch.sign(pred - control_mean)) ** 2
    per_cell = ((error + direction_lambda * direction) * mask).sum(dim=1) * per_cell_weight
    return per_cell.sum() / len(counts)
