"""GEARS through the real cell-gears 0.1.2 package, run fully offline (the reference engine).

cell-gears' sharp edges, handled here: its ``device`` defaults to CUDA; ``import gears``
silences every warning process-wide (imported inside ``warnings.catch_warnings`` so the filter
is undone); it downloads ``gene2go_all.pkl`` unless a copy exists (pre-seeded from the shipped
GO table) and reads the GO graph from ``./data/go_essential_<name>.csv`` relative to the working
directory (written there, inside ``workdir``); it pairs cells with random control cells from
NumPy's global generator (seeded); it stores a dense pickle of every cell, so keep it small on
a CPU. Conditions whose genes lack GO are dropped first, as GEARS' own loader does.
"""

from __future__ import annotations

import contextlib
import pickle
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import torch

from helpers import reference
from helpers.conditions import condition_genes
from helpers.graphs import write_gears_go_csv
from helpers.models.torch_runtime import resolve_device
from helpers.models.gears_module import GearsConfig
from helpers.runs import CachedRun
from helpers.roots import step_dir
from helpers.splits import SimulationSplit

DATASET_NAME = "norman_helpers"


def _import_gears():
    with warnings.catch_warnings():  # `import gears` calls warnings.filterwarnings("ignore")
        from gears import GEARS, PertData
    return GEARS, PertData


def build_cell_gears(adata: ad.AnnData, split: SimulationSplit, go_edges: pd.DataFrame,
                     config: GearsConfig, seed: int, device: str, workdir: Path):
    """A cell-gears ``GEARS`` object ready to train on ``split``, built offline in ``workdir``.

    Call its methods inside ``contextlib.chdir(workdir)``: cell-gears reads relative paths.
    """
    GEARS, PertData = _import_gears()
    workdir = Path(workdir).resolve()
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "gene2go_all.pkl", "wb") as handle:
        pickle.dump({g: set(t) for g, t in reference.gene2go().items()}, handle)
    write_gears_go_csv(go_edges, data_dir / f"go_essential_{DATASET_NAME}.csv")
    keep = adata.obs["condition"].astype(str).isin(set(split.train) | set(split.val) | set(split.test))
    subset = adata[keep].copy()
    subset.obs = subset.obs[["condition", "cell_type"]].astype(str)
    split_path = workdir / "split.pkl"
    with open(split_path, "wb") as handle:
        pickle.dump({"train": split.train, "val": split.val, "test": split.test}, handle)
    with contextlib.chdir(workdir), warnings.catch_warnings():
        np.random.seed(seed)  # cell-gears pairs cells with control cells from the global generator
        torch.manual_seed(seed)
        pert_data = PertData(str(data_dir), default_pert_graph=False)
        pert_data.new_data_process(dataset_name=DATASET_NAME, adata=subset)
        pert_data.prepare_split(split="custom", seed=seed, split_dict_path=str(split_path))
        pert_data.get_dataloader(batch_size=config.batch_size, test_batch_size=128)
        model = GEARS(pert_data, device=str(resolve_device(device)))
        model.model_initialize(hidden_size=config.hidden_size, num_go_gnn_layers=config.num_go_gnn_layers,
                               num_gene_gnn_layers=config.num_gene_gnn_layers,
                               num_similar_genes_go_graph=config.num_similar_genes_go_graph,
                               num_similar_genes_co_express_graph=config.num_similar_genes_co_express_graph,
                               coexpress_threshold=config.coexpress_threshold,
                               direction_lambda=config.direction_lambda)
    return model


def train_and_predict_cell_gears(adata: ad.AnnData, split: SimulationSplit, go_edges: pd.DataFrame,
                                 config: GearsConfig, epochs: int, seed: int, device: str,
                                 conditions: list[str], workdir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train cell-gears on ``split`` and predict the mean expression of ``conditions``.

    Returns ``(predictions (conditions × genes), history)``; history holds the wall time only
    (cell-gears prints its metrics instead of returning them).
    """
    start = time.perf_counter()
    model = build_cell_gears(adata, split, go_edges, config, seed, device, workdir)
    with contextlib.chdir(Path(workdir).resolve()), warnings.catch_warnings():
        model.train(epochs=epochs, lr=config.lr, weight_decay=config.weight_decay)
        np.random.seed(seed)  # predict() draws its control cells from the global generator
        queries = [list(condition_genes(c)) for c in conditions]
        predicted = model.predict(queries)
    table = pd.DataFrame(np.vstack([predicted["_".join(q)] for q in queries]), index=conditions,
                         columns=list(model.gene_list))
    history = pd.DataFrame({"epoch": [epochs], "seconds": [time.perf_counter() - start]})
    return table, history


def trainer(adata: ad.AnnData, split: SimulationSplit, go_edges: pd.DataFrame, config: GearsConfig,
            epochs: int, device: str, conditions: list[str]
            ) -> Callable[[list[CachedRun]], Iterator[dict[str, object]]]:
    """``compute`` for :func:`helpers.runs.reuse_or_compute`: trains each pending run (its
    ``task`` a :class:`~helpers.models.gears.GearsRun` without a prior) with cell-gears, one
    after another, in the run's own results folder, and yields its history (wall time) and
    predicted mean expression of ``conditions``."""
    def train(pending: list[CachedRun]) -> Iterator[dict[str, object]]:
        for run in pending:
            if run.task.prior is not None:
                raise ValueError(f"{run.name}: the cell-gears engine takes no gene-embedding prior")
            predicted, history = train_and_predict_cell_gears(
                adata, split, go_edges, config, epochs, run.task.seed, device, conditions,
                step_dir(run.name))
            yield {"history.csv": history.assign(**run.task.labels),
                   "predicted_means.parquet": predicted}
    return train
