"""GEARS on GEARS-format AnnData: data preparation, training and prediction (the edges).

The pure PyTorch module lives in :mod:`helpers.models.gears_module`; this module feeds it cells,
seeds, devices and the training loop of cell-gears 0.1.2's ``GEARS.train``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn as nn
from tqdm import tqdm

from helpers.conditions import CONTROL, condition_genes
from helpers.graphs import coexpression_edges, edge_tensors
from helpers.models.gears_module import DenseGEARS, GearsConfig, gears_loss
from helpers.models.torch_runtime import deterministic_torch, resolve_device
from helpers.splits import SimulationSplit


def _dense(X) -> np.ndarray:
    return np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float32)


@dataclass
class GearsData:
    """Everything GEARS needs from a processed dataset, as dense arrays.

    ``pert_names`` are the GO-graph nodes (genes with GO annotation among the dataset's genes and
    the perturbed genes: cell-gears' ``default_pert_graph=False``), sorted as in cell-gears.
    """

    genes: list[str]
    pert_names: list[str]
    X: np.ndarray  # cells × genes
    conditions: np.ndarray  # condition per cell
    control_mean: np.ndarray  # genes
    coexpress_graph: tuple[torch.Tensor, torch.Tensor]
    go_graph: tuple[torch.Tensor, torch.Tensor]
    retain: dict[str, np.ndarray]  # condition → genes kept by the loss (non-zero mean)
    rank_de: dict[str, np.ndarray]  # condition → first 20 genes of the DE ranking (validation)

    @classmethod
    def from_adata(cls, adata: ad.AnnData, split: SimulationSplit, go_edges: pd.DataFrame,
                   config: GearsConfig = GearsConfig()) -> GearsData:
        genes = adata.var["gene_name"].astype(str).tolist()
        conditions = adata.obs["condition"].astype(str).to_numpy()
        X = _dense(adata.X)
        pert_names = sorted(set(go_edges.target) | set(go_edges.source))
        train = set(split.train)
        coexpress_cells = np.isin(conditions, [c for c in train if CONTROL in c])
        coexpress = coexpression_edges(X[coexpress_cells], genes,
                                       k=config.num_similar_genes_co_express_graph,
                                       threshold=config.coexpress_threshold)
        go = go_edges.groupby("target", sort=True).head(config.num_similar_genes_go_graph + 1)
        name_to_condition = dict(zip(adata.obs["condition_name"].astype(str), conditions))
        var_position = pd.Series(np.arange(adata.n_vars), index=adata.var_names)
        retain = {name_to_condition[k]: np.asarray(v) for k, v in adata.uns["non_zeros_gene_idx"].items()}
        rank_de = {name_to_condition[k]: np.sort(var_position[list(v[:20])].to_numpy())
                   for k, v in adata.uns["rank_genes_groups_cov_all"].items()}
        coexpress_index, coexpress_weight = edge_tensors(coexpress, genes)
        go_index, go_weight = edge_tensors(go, pert_names)
        return cls(genes=genes, pert_names=pert_names, X=X, conditions=conditions,
                   control_mean=X[conditions == CONTROL].mean(axis=0),
                   coexpress_graph=(torch.from_numpy(coexpress_index), torch.from_numpy(coexpress_weight)),
                   go_graph=(torch.from_numpy(go_index), torch.from_numpy(go_weight)),
                   retain=retain, rank_de=rank_de)

    def pert_nodes(self, condition: str) -> list[int]:
        """GO-graph nodes a condition perturbs (``[-1]`` for control)."""
        index = {g: i for i, g in enumerate(self.pert_names)}
        genes = condition_genes(condition)
        missing = [g for g in genes if g not in index]
        if missing:
            raise KeyError(f"{condition!r}: gene(s) {missing} are not in the GO graph, so GEARS "
                           "cannot perturb them (conditions without GO are dropped by the split)")
        return [index[g] for g in genes] or [-1]


def build_model(data: GearsData, config: GearsConfig, gene_prior: torch.Tensor | None = None,
                pert_prior: torch.Tensor | None = None) -> DenseGEARS:
    return DenseGEARS(len(data.genes), len(data.pert_names), data.coexpress_graph, data.go_graph,
                      hidden_size=config.hidden_size, num_go_gnn_layers=config.num_go_gnn_layers,
                      num_gene_gnn_layers=config.num_gene_gnn_layers,
                      gene_prior=gene_prior, pert_prior=pert_prior)


PREDICT_CONDITIONS_PER_CALL = 4  # eval-mode rows are independent; 4 conditions (8 rows) per call is fastest on a CPU


@torch.no_grad()
@deterministic_torch()
def predict_means(model: DenseGEARS, data: GearsData, conditions: list[str], seed: int,
                  n_control_samples: int = 300) -> pd.DataFrame:
    """Mean predicted expression per condition (conditions × genes), as cell-gears' ``predict``:
    ``n_control_samples`` random control cells perturbed in one batch and averaged.

    In eval mode GEARS' output is ``f(perturbation) + x`` (the control cell enters only at the
    end), with one ``f`` for the first cell of a batch and one for the rest (see the module
    docstring), so the mean is computed exactly from two rows per condition, for many conditions
    per call.
    """
    model.eval()
    device = model.indv_w1.device
    rng = np.random.default_rng(seed)
    control = data.X[data.conditions == CONTROL]
    sample_means = [control[rng.integers(0, len(control), n_control_samples)].mean(axis=0) for _ in conditions]
    rows = []
    for start in range(0, len(conditions), PREDICT_CONDITIONS_PER_CALL):
        nodes = [data.pert_nodes(c) for c in conditions[start:start + PREDICT_CONDITIONS_PER_CALL]]
        first_cell = torch.tensor([True] * len(nodes) + [False] * len(nodes))
        f = model(torch.zeros(2 * len(nodes), len(data.genes), device=device), nodes + nodes, first_cell)
        f = f.cpu().numpy()
        rows.append((f[:len(nodes)] + (n_control_samples - 1) * f[len(nodes):]) / n_control_samples)
    return pd.DataFrame(np.vstack(rows) + np.vstack(sample_means), index=conditions, columns=data.genes)


@deterministic_torch()
def train_gears(data: GearsData, split: SimulationSplit, config: GearsConfig, epochs: int,
                seed: int, device: str = "auto", cells_per_epoch: int | None = None,
                gene_prior: torch.Tensor | None = None,
                pert_prior: torch.Tensor | None = None,
                progress: bool = True) -> tuple[DenseGEARS, pd.DataFrame]:
    """Train GEARS as cell-gears' ``GEARS.train`` does and return the best-validation model.

    Each training cell is paired once with a random control cell (control cells with
    themselves); batches are shuffled each epoch (last partial batch dropped); Adam with weight
    decay, gradients clipped at 1.0 by value, the learning rate halved after every epoch; the
    model with the lowest validation MSE on the top-20 DE genes is kept.

    ``cells_per_epoch`` (None = all, as cell-gears) makes each epoch a fresh random subset of the
    training cells: the one deviation from cell-gears, used to fit CPU budgets. Kernels are
    deterministic, so the same seed gives the same model bit for bit.
    """
    torch_device = resolve_device(device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(data, config, gene_prior, pert_prior).to(torch_device)

    in_train = np.isin(data.conditions, split.train)
    y_all = torch.from_numpy(data.X[in_train])
    cell_conditions = data.conditions[in_train]
    control_rows = np.flatnonzero(data.conditions == CONTROL)
    is_control = cell_conditions == CONTROL
    partner = np.where(is_control, np.flatnonzero(in_train),
                       rng.choice(control_rows, in_train.sum()))  # input cell for each target
    x_all = torch.from_numpy(data.X[partner])
    names = sorted(set(cell_conditions))
    codes_all = torch.tensor([names.index(c) for c in cell_conditions])
    # genes each condition's loss keeps, one row per condition code
    retain_masks = torch.from_numpy(np.stack([
        np.ones(len(data.genes), bool) if c == CONTROL else np.isin(np.arange(len(data.genes)), data.retain[c])
        for c in names])).to(torch_device)
    nodes = {c: data.pert_nodes(c) for c in names}
    control_mean = torch.from_numpy(data.control_mean).to(torch_device)

    # fused: one kernel for all parameters (same update as the per-tensor loop, ~2× faster on CPU)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=1, gamma=0.5)
    generator = torch.Generator().manual_seed(seed)
    epoch_size = len(y_all) if cells_per_epoch is None else min(cells_per_epoch, len(y_all))
    n_batches = epoch_size // config.batch_size
    if n_batches == 0:
        raise ValueError(f"{epoch_size} training cells per epoch make no batch of {config.batch_size}")
    history, best_state, best_val = [], None, np.inf
    bar = tqdm(total=epochs * n_batches, desc="GEARS", disable=not progress, mininterval=2)
    for epoch in range(1, epochs + 1):
        model.train()
        start, losses = time.perf_counter(), []
        order = torch.randperm(len(y_all), generator=generator)
        for b in range(n_batches):
            idx = order[b * config.batch_size:(b + 1) * config.batch_size]
            batch_conditions = [cell_conditions[i] for i in idx.tolist()]
            x, y = x_all[idx].to(torch_device), y_all[idx].to(torch_device)
            codes = codes_all[idx].to(torch_device)
            optimiser.zero_grad()
            pred = model(x, [nodes[c] for c in batch_conditions])
            loss = gears_loss(pred, y, control_mean, codes, retain_masks[codes],
                              config.direction_lambda)
            loss.backward()
            nn.utils.clip_grad_value_(model.parameters(), clip_value=1.0)
            optimiser.step()
            losses.append(loss.item())
            bar.update()
        scheduler.step()
        val_mse_de, val_mse = validation_mse(model, data, split.val, seed)
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_mse_top20_de": val_mse_de,
                        "val_mse_all": val_mse, "seconds": time.perf_counter() - start})
        bar.set_postfix(epoch=epoch, loss=f"{np.mean(losses):.4f}", val_mse_de=f"{val_mse_de:.4f}")
        if val_mse_de < best_val:
            best_val, best_state = val_mse_de, copy.deepcopy(model.state_dict())
    bar.close()
    model.load_state_dict(best_state)
    return model, pd.DataFrame(history)


def validation_mse(model: DenseGEARS, data: GearsData, conditions: list[str], seed: int) -> tuple[float, float]:
    """Mean over ``conditions`` of the MSE of the mean prediction on the top-20 DE genes of the
    ranking (cell-gears' ``mse_de`` selection criterion) and on all genes."""
    predicted = predict_means(model, data, list(conditions), seed)
    de, full = [], []
    for condition in conditions:
        truth = data.X[data.conditions == condition].mean(axis=0)
        error = (predicted.loc[condition].to_numpy() - truth) ** 2
        de.append(error[data.rank_de[condition]].mean())
        full.append(error.mean())
    return float(np.mean(de)), float(np.mean(full))
