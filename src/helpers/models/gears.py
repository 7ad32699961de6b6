"""GEARS on GEARS-format AnnData: data preparation, training and prediction (the edges).

The pure PyTorch module lives in :mod:`helpers.models.gears_module`; this module feeds it cells,
seeds, devices and the training loop of cell-gears 0.1.2's ``GEARS.train``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import multiprocessing
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn as nn

from helpers.conditions import CONTROL, condition_by_name, condition_genes
from helpers.data import Prepared, load_prepared
from helpers.de_genes import rank_de_positions
from helpers.graphs import coexpression_edges, edge_tensors
from helpers.models.gears_module import DenseGEARS, GearsConfig, gears_loss
from helpers.models.priors import PRIOR_TARGETS, align_embeddings
from helpers.models.torch_runtime import available_cores, deterministic_torch, resolve_device
from helpers.reference import aliases
from helpers.runs import CachedRun
from helpers.profiles import Profile, resolve_parameters
from helpers.progress import progress_bar
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
    X: np.ndarray  # training cells (control included) × genes
    conditions: np.ndarray  # condition per row of X
    control_mean: np.ndarray  # genes
    coexpress_graph: tuple[torch.Tensor, torch.Tensor]
    go_graph: tuple[torch.Tensor, torch.Tensor]
    retain: dict[str, np.ndarray]  # condition → genes kept by the loss (non-zero mean)
    rank_de: dict[str, np.ndarray]  # condition → first 20 genes of the DE ranking (validation)
    means: dict[str, np.ndarray]  # condition → observed mean expression (every condition)

    @classmethod
    def from_adata(cls, adata: ad.AnnData, split: SimulationSplit, go_edges: pd.DataFrame,
                   config: GearsConfig = GearsConfig()) -> GearsData:
        genes = adata.var["gene_name"].astype(str).tolist()
        all_conditions = adata.obs["condition"].astype(str).to_numpy()
        # only the training cells (control included) are kept as a dense matrix: training and
        # prediction read nothing else, validation reads the means (at Norman's size the other
        # cells would add ~0.8 GB)
        keep = np.isin(all_conditions, split.train)
        X, conditions = _dense(adata.X[keep]), all_conditions[keep]
        means = {c: _dense(adata.X[all_conditions == c]).mean(axis=0) for c in np.unique(all_conditions)}
        pert_names = sorted(set(go_edges.target) | set(go_edges.source))
        train = set(split.train)
        coexpress_cells = np.isin(conditions, [c for c in train if CONTROL in c])
        coexpress = coexpression_edges(X[coexpress_cells], genes,
                                       k=config.num_similar_genes_co_express_graph,
                                       threshold=config.coexpress_threshold)
        go = go_edges.groupby("target", sort=True).head(config.num_similar_genes_go_graph + 1)
        name_to_condition = condition_by_name(adata.obs)
        retain = {name_to_condition[k]: np.asarray(v) for k, v in adata.uns["non_zeros_gene_idx"].items()}
        rank_de = {c: np.sort(positions) for c, positions in rank_de_positions(adata).items()}
        coexpress_index, coexpress_weight = edge_tensors(coexpress, genes)
        go_index, go_weight = edge_tensors(go, pert_names)
        return cls(genes=genes, pert_names=pert_names, X=X, conditions=conditions,
                   control_mean=X[conditions == CONTROL].mean(axis=0),
                   coexpress_graph=(torch.from_numpy(coexpress_index), torch.from_numpy(coexpress_weight)),
                   go_graph=(torch.from_numpy(go_index), torch.from_numpy(go_weight)),
                   retain=retain, rank_de=rank_de, means=means)

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


def prior_tensors(table: pd.DataFrame, data: GearsData, aliases: pd.DataFrame,
                  target: str) -> dict[str, torch.Tensor | None]:
    """A gene-embedding table (symbols × dimensions) aligned to GEARS' genes and GO-graph nodes,
    as the ``gene_prior`` / ``pert_prior`` arguments of :func:`build_model` and :func:`train_gears`
    for a prior entering ``target`` (see :data:`PRIOR_TARGETS`); genes without a vector get zeros."""
    if target not in PRIOR_TARGETS:
        raise ValueError(f"prior target must be one of {PRIOR_TARGETS}, got {target!r}")
    gene = align_embeddings(table, data.genes, aliases)[0] if target in ("gene", "both") else None
    pert = align_embeddings(table, data.pert_names, aliases)[0] if target in ("perturbation", "both") else None
    return {"gene_prior": None if gene is None else torch.from_numpy(gene),
            "pert_prior": None if pert is None else torch.from_numpy(pert)}


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


@dataclass(frozen=True)
class TrainingBudget:
    """How long GEARS trains and how its learning rate follows, in optimisation steps.

    cell-gears trains for whole epochs (a pass over every training cell, ``batch_size`` cells a
    step) and halves the learning rate after each. Here the budget is a number of steps and the
    learning rate halves every ``lr_halving_steps`` steps, so a budget of ``steps`` is the first
    ``steps`` steps of a cell-gears run whose epoch is ``lr_halving_steps`` long: a smaller budget
    truncates the run, it never reshapes it. ``lr_halving_steps=None`` takes the epoch of the data
    being trained (exactly cell-gears). Validation runs every ``eval_every`` steps and at the end.
    """

    steps: int
    lr_halving_steps: int | None = None
    eval_every: int = 100

    def __post_init__(self) -> None:
        if self.steps < 1 or self.eval_every < 1 or (self.lr_halving_steps is not None and self.lr_halving_steps < 1):
            raise ValueError(f"a training budget needs positive steps, eval_every and lr_halving_steps, got {self}")

    @classmethod
    def from_profile(cls, profile: Profile) -> TrainingBudget:
        return cls(profile.gears_steps, profile.gears_lr_halving_steps, profile.gears_eval_every)

    def schedule(self, epoch_steps: int) -> str:
        """The learning-rate schedule in words, against cell-gears' on data whose epoch is
        ``epoch_steps`` steps."""
        halving = self.lr_halving_steps or epoch_steps
        if halving == epoch_steps:
            how = ("after every epoch of this data's training cells, as cell-gears does: this budget "
                   f"is the first {self.steps:,} steps of cell-gears' own run on this data.")
        else:
            faster = epoch_steps / halving
            how = (f"{faster:.1f} times per epoch of this data's training cells ({epoch_steps:,} steps); "
                   f"cell-gears halves once per epoch, so this run decays {faster:.1f}× faster than "
                   f"cell-gears' and reaches its final learning rate (1/{2 ** (self.steps // halving):,} of "
                   f"the start) after {self.steps / epoch_steps:.1f} epochs.")
        return f"Schedule: the learning rate halves every {halving:,} steps, {how}"


@dataclass(frozen=True)
class GearsSetup:
    """What every GEARS training chapter starts from: the profile's values with the chapter's
    overrides, the training budget, GEARS' settings, the prepared data, GEARS' view of it (graphs,
    cells) and the conditions every run predicts (every non-control condition of the split)."""

    settings: Profile
    budget: TrainingBudget
    config: GearsConfig
    prepared: Prepared
    data: GearsData
    targets: list[str]

    @classmethod
    def load(cls, profile: str, seeds: Sequence[int] | None = None, steps: int | None = None,
             lr_halving_steps: int | None = None, eval_every: int | None = None,
             gears_config: Mapping[str, Any] | None = None) -> GearsSetup:
        """From a chapter's parameters (``None``: the profile's) and the data step's results."""
        settings = resolve_parameters(profile, seeds=seeds, gears_steps=steps,
                                      gears_lr_halving_steps=lr_halving_steps, gears_eval_every=eval_every)
        config = GearsConfig.from_settings(settings.gears_config, gears_config)
        prepared = load_prepared()
        split = prepared.split
        data = GearsData.from_adata(prepared.adata, split, prepared.go_graph, config)
        targets = [c for c in split.train + split.val + split.test if c != CONTROL]
        return cls(settings, TrainingBudget.from_profile(settings), config, prepared, data, targets)


def steps_per_epoch(data: GearsData, split: SimulationSplit, batch_size: int) -> int:
    """Full batches in one pass over the training cells (cell-gears drops the last partial one)."""
    return int(np.isin(data.conditions, split.train).sum()) // batch_size


ON_STEP_EVERY = 10  # steps between progress reports from a worker


@deterministic_torch()
def train_gears(data: GearsData, split: SimulationSplit, config: GearsConfig, budget: TrainingBudget,
                seed: int, device: str = "auto", gene_prior: torch.Tensor | None = None,
                pert_prior: torch.Tensor | None = None, progress: bool = True,
                on_step: Callable[[int], None] | None = None) -> tuple[DenseGEARS, pd.DataFrame]:
    """Train GEARS as cell-gears' ``GEARS.train`` does, for ``budget.steps`` steps, and return the
    best-validation model with its learning curve.

    Each training cell is paired once with a random control cell (control cells with
    themselves); every epoch is a fresh shuffle of all training cells (last partial batch
    dropped), and training runs through as many epochs as the budget takes. Adam with weight
    decay, gradients clipped at 1.0 by value, the learning rate halved every
    ``budget.lr_halving_steps`` steps (see :class:`TrainingBudget`); the model with the lowest
    validation MSE on the top-20 DE genes (checked every ``budget.eval_every`` steps, where
    cell-gears checks once per epoch) is kept. The curve has one row per validation: ``step``,
    ``epoch`` (passes over the training cells so far), ``lr``, the mean training loss since the
    previous row, both validation errors and the seconds since the previous row. Kernels are
    deterministic, so the same seed gives the same model bit for bit. ``on_step(n)`` is told
    every ``n`` steps done (progress from a worker process).
    """
    torch_device = resolve_device(device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(data, config, gene_prior, pert_prior).to(torch_device)

    in_train = np.isin(data.conditions, split.train)
    # batches are gathered from the one expression matrix by row (target cell, input cell), never
    # copied whole: two full copies tripled a worker's memory (2.4 GB at 91,205 × 3,051)
    expression = torch.from_numpy(data.X)
    target_rows = torch.from_numpy(np.flatnonzero(in_train))
    cell_conditions = data.conditions[in_train]
    control_rows = np.flatnonzero(data.conditions == CONTROL)
    is_control = cell_conditions == CONTROL
    partner = np.where(is_control, np.flatnonzero(in_train),
                       rng.choice(control_rows, in_train.sum()))  # input cell for each target
    input_rows = torch.from_numpy(partner)
    names = sorted(set(cell_conditions))
    codes_all = torch.tensor([names.index(c) for c in cell_conditions])
    # genes each condition's loss keeps, one row per condition code
    retain_masks = torch.from_numpy(np.stack([
        np.ones(len(data.genes), bool) if c == CONTROL else np.isin(np.arange(len(data.genes)), data.retain[c])
        for c in names])).to(torch_device)
    nodes = {c: data.pert_nodes(c) for c in names}
    control_mean = torch.from_numpy(data.control_mean).to(torch_device)

    val_truth = condition_means(data, split.val)
    n_batches = steps_per_epoch(data, split, config.batch_size)
    if n_batches == 0:
        raise ValueError(f"{int(in_train.sum())} training cells make no batch of {config.batch_size}")
    halving = budget.lr_halving_steps or n_batches
    # fused: one kernel for all parameters (same update as the per-tensor loop, ~2× faster on CPU)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=halving, gamma=0.5)  # stepped per batch
    generator = torch.Generator().manual_seed(seed)
    history, best_state, best_val, losses = [], None, np.inf, []
    bar = progress_bar(None, progress, total=budget.steps, desc="GEARS", unit="step", mininterval=2)
    start, order = time.perf_counter(), None
    model.train()
    for step in range(1, budget.steps + 1):
        b = (step - 1) % n_batches
        if b == 0:
            order = torch.randperm(len(target_rows), generator=generator)
        idx = order[b * config.batch_size:(b + 1) * config.batch_size]
        batch_conditions = [cell_conditions[i] for i in idx.tolist()]
        x, y = expression[input_rows[idx]].to(torch_device), expression[target_rows[idx]].to(torch_device)
        codes = codes_all[idx].to(torch_device)
        lr = optimiser.param_groups[0]["lr"]
        optimiser.zero_grad()
        pred = model(x, [nodes[c] for c in batch_conditions])
        loss = gears_loss(pred, y, control_mean, codes, retain_masks[codes], config.direction_lambda)
        loss.backward()
        nn.utils.clip_grad_value_(model.parameters(), clip_value=1.0)
        optimiser.step()
        scheduler.step()
        losses.append(loss.item())
        bar.update()
        if on_step is not None and step % ON_STEP_EVERY == 0:
            on_step(ON_STEP_EVERY)
        if step % budget.eval_every == 0 or step == budget.steps:
            val_mse_de, val_mse = validation_mse(model, data, split.val, seed, val_truth)
            model.train()
            history.append({"step": step, "epoch": step / n_batches, "lr": lr,
                            "train_loss": float(np.mean(losses)), "val_mse_top20_de": val_mse_de,
                            "val_mse_all": val_mse, "seconds": time.perf_counter() - start})
            bar.set_postfix(loss=f"{np.mean(losses):.4f}", val_mse_de=f"{val_mse_de:.4f}")
            if val_mse_de < best_val:
                best_val, best_state = val_mse_de, copy.deepcopy(model.state_dict())
            start, losses = time.perf_counter(), []
    bar.close()
    model.load_state_dict(best_state)
    return model, pd.DataFrame(history)


@dataclass(frozen=True)
class GearsRun:
    """One GEARS training run: a seed and, optionally, a fixed gene embedding (symbols ×
    dimensions) entering GEARS at ``prior_target`` (see :func:`prior_tensors`)."""

    seed: int
    prior: pd.DataFrame | None = None
    prior_target: str | None = None
    prior_name: str = "prior"
    model: str = "gears"  # the stored model's name (helpers.models.registry.prior_model_name)

    @property
    def labels(self) -> dict[str, str | int]:
        """The columns that name this run in a learning curve."""
        if self.prior is None:
            return {"model": self.model, "seed": self.seed}
        return {"model": self.model, "prior": self.prior_name,
                "target": str(self.prior_target), "seed": self.seed}


_WORKER: dict = {}  # what each worker process trains on, set once by _start_worker


def _start_worker(data: GearsData, expression_file: str, split: SimulationSplit, config: GearsConfig,
                  budget: TrainingBudget, queue) -> None:
    torch.set_num_threads(1)  # every CPU run trains on one thread (train_gears_runs)
    # the training cells' matrix is mapped from the file the parent wrote, not sent to each worker:
    # the workers share its pages (copy-on-write), and nothing is pickled three times
    data = dataclasses.replace(data, X=np.load(expression_file, mmap_mode="c"))
    _WORKER.update(data=data, split=split, config=config, budget=budget, queue=queue)


def _train_in_worker(run: GearsRun) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:
    w = _WORKER
    model, history = _train_run(w["data"], w["split"], w["config"], w["budget"], run, "cpu",
                                progress=False, on_step=w["queue"].put)
    return model.state_dict(), history


def _train_run(data: GearsData, split: SimulationSplit, config: GearsConfig, budget: TrainingBudget,
               run: GearsRun, device: str, progress: bool = True,
               on_step: Callable[[int], None] | None = None) -> tuple[DenseGEARS, pd.DataFrame]:
    priors = {} if run.prior is None else prior_tensors(run.prior, data, aliases(), run.prior_target)
    return train_gears(data, split, config, budget, run.seed, device, progress=progress, on_step=on_step, **priors)


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    """PyTorch's intra-op threads set to ``count`` for the block, restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# a worker process takes ~3 s to start (it imports torch and this engine; ~6 s for two side by
# side, against ~1 s to train both quick-profile runs in this process): a run shorter than this
# trains one after another here, with the same numbers (one thread either way)
SIDE_BY_SIDE_MIN_STEPS = 100


def train_gears_runs(data: GearsData, split: SimulationSplit, config: GearsConfig, budget: TrainingBudget,
                     gears_runs: list[GearsRun], device: str = "auto", workers: int | None = None,
                     progress: bool = True) -> list[tuple[DenseGEARS, pd.DataFrame]]:
    """Train independent GEARS runs (seeds, priors) and return ``(model, learning curve)`` per run,
    in order.

    On a CPU every run gets its own process (``workers``: default one per run, at most four per
    available core; runs shorter than :data:`SIDE_BY_SIDE_MIN_STEPS` all in this process) and
    trains on one thread, whether beside other runs or alone in this
    process: GEARS' many small operations scale poorly over threads (a step took 0.15 s on one
    thread and 0.09–0.14 s on two, 2 cores), so runs side by side train at least as many steps per
    second as one run on every core, the operating system shares the cores between more runs than
    cores without idle gaps (3 runs on 2 cores take ~1.5 runs' time, not 2), and a
    single-threaded run never spins OpenMP threads against a busy machine. Numbers can differ in
    the last bits between thread counts (BLAS blocking); with one thread always, a run gives the
    same numbers however runs are grouped (a chapter's runs side by side, one job per run on a
    cluster) and on any core count. On a GPU, or with one worker, the runs train one after another
    in this process.
    """
    torch_device = resolve_device(device)
    cores = available_cores()
    if workers is None:  # short runs (tests, the quick profile) are not worth a process each
        workers = 1 if budget.steps < SIDE_BY_SIDE_MIN_STEPS else 4 * cores
    workers = min(len(gears_runs), workers) if torch_device.type == "cpu" else 1
    if workers <= 1:
        with _threads(1) if torch_device.type == "cpu" else contextlib.nullcontext():
            return [_train_run(data, split, config, budget, run, str(torch_device), progress)
                    for run in gears_runs]
    context = multiprocessing.get_context("spawn")  # never fork a process whose OpenMP pool has started
    with tempfile.TemporaryDirectory() as scratch, context.Manager() as manager, \
            progress_bar(None, progress, total=budget.steps * len(gears_runs), unit="step", mininterval=2,
                         desc=f"GEARS × {len(gears_runs)} ({workers} at a time)") as bar:
        queue = manager.Queue()
        expression_file = Path(scratch) / "training_expression.npy"
        np.save(expression_file, data.X)
        view = dataclasses.replace(data, X=np.empty((0, data.X.shape[1]), data.X.dtype))
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                 initargs=(view, str(expression_file), split, config, budget,
                                           queue)) as pool:
            futures = [pool.submit(_train_in_worker, run) for run in gears_runs]
            while not all(f.done() for f in futures):
                try:
                    bar.update(queue.get(timeout=1))
                except Empty:
                    pass
            trained = [f.result() for f in futures]
    models = []
    for run, (state, history) in zip(gears_runs, trained):
        priors = {} if run.prior is None else prior_tensors(run.prior, data, aliases(), run.prior_target)
        model = build_model(data, config, **priors).to(torch_device)
        model.load_state_dict(state)
        models.append((model, history))
    return models


RUN_OUTPUTS = ["history.csv", "predicted_means.parquet"]  # what a finished run hands on


def trainer(data: GearsData, split: SimulationSplit, config: GearsConfig, budget: TrainingBudget,
            conditions: list[str], device: str = "auto"
            ) -> Callable[[list[CachedRun]], Iterator[dict[str, object]]]:
    """``compute`` for :func:`helpers.runs.reuse_or_compute`: trains the pending runs (their
    ``task`` a :class:`GearsRun`) side by side (:func:`train_gears_runs`) and yields, per run,
    its learning curve labelled with :attr:`GearsRun.labels`, its predicted mean expression of
    ``conditions`` and its weights (``model.pt``)."""
    def train(pending: list[CachedRun]) -> Iterator[dict[str, object]]:
        gears_runs = [run.task for run in pending]
        trained = train_gears_runs(data, split, config, budget, gears_runs, device)
        for run, (model, history) in zip(gears_runs, trained):
            yield {"history.csv": history.assign(**run.labels),
                   "predicted_means.parquet": predict_means(model, data, conditions, run.seed,
                                                            config.n_control_samples),
                   "model.pt": model.state_dict()}
    return train


def validation_mse(model: DenseGEARS, data: GearsData, conditions: list[str], seed: int,
                   truth: np.ndarray | None = None) -> tuple[float, float]:
    """Mean over ``conditions`` of the MSE of the mean prediction on the top-20 DE genes of the
    ranking (cell-gears' ``mse_de`` selection criterion) and on all genes. ``truth`` (conditions ×
    genes) saves recomputing the observed means when validating many times."""
    predicted = predict_means(model, data, list(conditions), seed).to_numpy()
    if truth is None:
        truth = condition_means(data, conditions)
    error = (predicted - truth) ** 2
    de = [row[data.rank_de[c]].mean() for row, c in zip(error, conditions)]
    return float(np.mean(de)), float(error.mean(axis=1).mean())


def condition_means(data: GearsData, conditions: list[str]) -> np.ndarray:
    """Observed mean expression of each condition (conditions × genes)."""
    return np.vstack([data.means[c] for c in conditions])
