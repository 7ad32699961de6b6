"""Scoring stored predictions: GEARS' metrics (:mod:`helpers.metrics`) and the field's lenses
(:mod:`helpers.lenses`) for every test perturbation, and the split-half replicate (noise
ceiling) through the same lenses.

The truth is set up once per data set (:meth:`Evaluation.build`); each model-seed is then one
call to :meth:`Evaluation.score`, which returns the long rows of ``per_perturbation.csv``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers import lenses, metrics
from helpers.conditions import CONTROL

COLUMNS = ["model", "seed", "perturbation", "subgroup", "metric", "value"]
REPLICATE = "noise_ceiling"


@dataclass(frozen=True)
class Evaluation:
    """The test perturbations' truth, set up once.

    Attributes:
        truth: the lenses' view of the true test profiles (all cells).
        cells: condition → its cells (cells × genes), for GEARS' per-cell metrics.
        de, non_dropout_de: condition → positions of its top-20 DE genes (GEARS' ``mse_de``
            genes, and those that are not drop-outs).
        subgroup: test condition → its test subgroup.
        replicate: the split-half replicate: the mean of a random half of each test
            perturbation's cells (P × G) and ...
        replicate_truth: ... the truth of the other halves it is scored against.
        replicate_metrics: GEARS' metrics of the replicate (rows as :meth:`score`'s).
    """

    truth: lenses.Truth
    cells: Mapping[str, np.ndarray]
    de: Mapping[str, np.ndarray]
    non_dropout_de: Mapping[str, np.ndarray]
    subgroup: Mapping[str, str]
    replicate: np.ndarray
    replicate_truth: lenses.Truth
    replicate_metrics: pd.DataFrame

    @classmethod
    def build(cls, cells: Mapping[str, np.ndarray], genes: pd.Index, test: list[str],
              train: list[str], subgroup: Mapping[str, str], de: Mapping[str, np.ndarray],
              non_dropout_de: Mapping[str, np.ndarray], ceiling_seed: int = 0) -> Evaluation:
        """Set up the truth of the ``test`` perturbations from their cells; the perturbed
        centroid is that of the ``train`` perturbations (what a model may know). The replicate
        draws its halves with ``ceiling_seed``, test perturbation by test perturbation, in
        ``test``'s order."""
        control_cells = cells[CONTROL]
        control_mean = metrics.mean_expression(control_cells)
        trained = [c for c in train if c != CONTROL and c in cells]
        centroid = np.mean([metrics.mean_expression(cells[c]) for c in trained], axis=0)
        truth = lenses.Truth.from_cells(cells, control_cells, test, genes, centroid, de)
        rng = np.random.default_rng(ceiling_seed)
        halves = {c: metrics.split_halves(cells[c], rng) for c in test}
        replicate = np.vstack([metrics.mean_expression(halves[c][0]) for c in test])
        replicate_truth = lenses.Truth.from_cells({c: halves[c][1] for c in test}, control_cells, test,
                                                  genes, centroid, de)
        rows = []
        for i, c in enumerate(test):
            scores = metrics.perturbation_metrics(replicate[i], halves[c][1], control_mean, de[c],
                                                  non_dropout_de[c])
            rows += [(REPLICATE, ceiling_seed, c, subgroup[c], m, v) for m, v in scores.items()]
        return cls(truth=truth, cells=cells, de=de, non_dropout_de=non_dropout_de, subgroup=dict(subgroup),
                   replicate=replicate, replicate_truth=replicate_truth,
                   replicate_metrics=pd.DataFrame(rows, columns=COLUMNS))

    def score(self, model: str, seed: int, predicted: pd.DataFrame) -> pd.DataFrame:
        """Every metric of one model-seed's predicted means (conditions × genes; must hold every
        test perturbation and gene) on every test perturbation: rows ``COLUMNS``."""
        missing = [c for c in self.truth.conditions if c not in predicted.index]
        if missing:
            raise ValueError(f"{model} (seed {seed}) has no prediction for {len(missing)} test "
                             f"perturbation(s), e.g. {missing[:3]}")
        pred = predicted.loc[self.truth.conditions, self.truth.genes].to_numpy(float)
        rows = []
        for i, c in enumerate(self.truth.conditions):
            scores = metrics.perturbation_metrics(pred[i], self.cells[c], self.truth.control_mean, self.de[c],
                                                  self.non_dropout_de[c])
            rows += [(model, seed, c, self.subgroup[c], m, v) for m, v in scores.items()]
        gears_metrics = pd.DataFrame(rows, columns=COLUMNS)
        return pd.concat([gears_metrics, self._lens_rows(model, seed, pred, self.truth)], ignore_index=True)

    def score_replicate(self) -> pd.DataFrame:
        """The split-half replicate (``noise_ceiling``) through every metric."""
        seed = int(self.replicate_metrics.seed.iloc[0])
        return pd.concat([self.replicate_metrics,
                          self._lens_rows(REPLICATE, seed, self.replicate, self.replicate_truth)],
                         ignore_index=True)

    def _lens_rows(self, model: str, seed: int, pred: np.ndarray, truth: lenses.Truth) -> pd.DataFrame:
        table = lenses.score_lenses(pred, truth)
        return table.assign(model=model, seed=seed,
                            subgroup=table.perturbation.map(self.subgroup))[COLUMNS]
