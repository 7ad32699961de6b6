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

from helpers import conditions, de_genes, lenses, metrics
from helpers.conditions import CONTROL
from helpers.progress import progress_bar

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


# The headline table's metrics (chapter 20, section 2), in its order.
HEADLINE_TABLE = ("mse_de", "mse_top20_de_non_dropout", "mse", "pearson_delta",
                  "frac_correct_direction_top20_non_dropout")


@dataclass(frozen=True)
class EvaluationResults:
    """What chapter 20 computes and writes: every score, its summaries and the data's
    systematic variation (the step's own folder, ``pipeline.folder("metrics")``)."""

    per_perturbation: pd.DataFrame  # COLUMNS
    summary: pd.DataFrame  # model, subgroup, metric, mean, ci_low, ci_high, n
    spread: pd.DataFrame  # over seeds
    calibrated: pd.DataFrame  # (u − b) / (r − b)
    systematic: pd.DataFrame  # each perturbation's cosine with the average change

    def interval_table(self, names: tuple[str, ...] = HEADLINE_TABLE) -> pd.DataFrame:
        """``mean [ci_low, ci_high]`` per metric and model (rows) and subgroup (columns, easiest
        first, then ``all``)."""
        from helpers.splits import SUBGROUPS_BY_DIFFICULTY

        chosen = self.summary[self.summary.metric.isin(names)]
        text = (chosen["mean"].map("{:.3f}".format) + " [" + chosen.ci_low.map("{:.3f}".format) + ", "
                + chosen.ci_high.map("{:.3f}".format) + "]")
        table = chosen.assign(value=text).pivot(index=["metric", "model"], columns="subgroup", values="value")
        return table[[s for s in (*SUBGROUPS_BY_DIFFICULTY, "all") if s in table.columns]]

    def lens_table(self) -> pd.DataFrame:
        """Every lens (rows) of every model and the replicate (columns), over all test
        perturbations."""
        from helpers.models.registry import ordered

        everything = self.summary[self.summary.subgroup == "all"]
        table = everything.pivot(index="model", columns="metric", values="mean")
        models = [*ordered(m for m in everything.model.unique() if m != REPLICATE), REPLICATE]
        return table.reindex(columns=list(lenses.LENSES), index=models).T


# what chapter 20 writes into its folder (``pipeline.folder("metrics")``)
TABLES = ("per_perturbation.csv", "summary.csv", "seed_spread.csv", "calibrated.csv",
          "systematic_variation.csv")


def _key(record: Mapping[str, object], prepared, stored: pd.DataFrame) -> dict[str, object]:
    """The cache key of a run that reads predictions: the chapter's parameters, the prepared
    data, every prediction file's digest and this module's code."""
    from helpers import predictions, runs

    return {**record, "data_run": prepared.fingerprint, "predictions": predictions.fingerprints(stored),
            "code": runs.code_digest("helpers.evaluation")}


def evaluate(prepared, stored: pd.DataFrame, n_bootstrap: int, ceiling_seed: int,
             calibration_baseline: str, record: Mapping[str, object], force: bool = False) -> EvaluationResults:
    """Score every stored prediction (``stored``: model, seed) of ``prepared`` data on every test
    perturbation, with the replicate; summarise and calibrate (:data:`TABLES`). A run keyed on
    ``record`` (the chapter's parameters), the prepared data and every prediction file's digest
    (``runs.reuse_or_compute``): unchanged inputs are read back, not scored again."""
    from helpers import pipeline, predictions, runs

    parameters = _key(record, prepared, stored)

    def compute(pending: list[runs.CachedRun]):
        adata, split = prepared.adata, prepared.split
        evaluation = Evaluation.build(
            conditions.cells_by_condition(adata), adata.var_names, list(split.test), list(split.train),
            {c: split.subgroup_of(c) for c in split.test},
            de_genes.rank_de_positions(adata),  # GEARS' mse_de genes
            de_genes.top_de_positions(adata),  # its non-drop-out DE genes
            ceiling_seed)
        pairs = list(stored.itertuples(index=False))
        scored = [evaluation.score(model, seed, predictions.read_predictions(model, seed))
                  for model, seed in progress_bar(pairs, desc="scoring", unit="model-seed")]
        per_perturbation = pd.concat([*scored, evaluation.score_replicate()], ignore_index=True)
        means = conditions.condition_means(adata)
        yield {"per_perturbation.csv": per_perturbation,
               "summary.csv": metrics.summarise(per_perturbation, n_boot=n_bootstrap),
               "seed_spread.csv": metrics.seed_spread(per_perturbation),
               "calibrated.csv": lenses.calibrate(per_perturbation, calibration_baseline),
               "systematic_variation.csv": lenses.systematic_variation(
                   means, [c for c in means.index if c != CONTROL], CONTROL)}

    (run,) = runs.reuse_or_compute([runs.CachedRun(pipeline.EVALUATE_PERTURBATIONS, parameters)], list(TABLES),
                                   compute, force, "scores")
    return EvaluationResults(per_perturbation=run["per_perturbation.csv"], summary=run["summary.csv"],
                             spread=run["seed_spread.csv"], calibrated=run["calibrated.csv"],
                             systematic=run["systematic_variation.csv"])


def export_for_cell_eval(prepared, stored: pd.DataFrame, models: list[str]) -> list:
    """Write the predictions of ``models`` (every stored seed) in cell-eval's layout
    (:func:`helpers.predictions.cell_eval_anndata`); returns the folders written."""
    from helpers import data, pipeline, predictions

    unknown = sorted(set(models) - set(stored.model))
    if unknown:
        raise ValueError(f"cell_eval_models {unknown} have no predictions; stored: {sorted(set(stored.model))}")
    folders = []
    for model, seed in stored[stored.model.isin(models)].itertuples(index=False):
        predicted_cells, real_cells = predictions.cell_eval_anndata(
            predictions.read_predictions(model, seed), prepared.adata, list(prepared.split.test), seed=seed)
        export = pipeline.folder("cell_eval") / model / f"seed={seed}"
        export.mkdir(parents=True, exist_ok=True)
        data.write_h5ad(predicted_cells, export / "adata_pred.h5ad")
        data.write_h5ad(real_cells, export / "adata_real.h5ad")
        folders.append(export)
    return folders


@dataclass(frozen=True)
class CombinationView:
    """One test perturbation up close (chapter 21): its true cells' changes over control on its
    top DE genes, every model-seed's predicted change on them, and the long table of both."""

    true_delta: pd.DataFrame  # cells × genes
    predicted: pd.DataFrame  # model, seed, gene, delta
    table: pd.DataFrame  # predicted rows with the truth's mean and quartiles per gene


def inspect_combination(prepared, stored: pd.DataFrame, condition: str, n_genes: int,
                        record: Mapping[str, object], force: bool = False) -> CombinationView:
    """``condition``'s view, its table a run keyed on ``record``, the prepared data and every
    prediction file's digest (``runs.reuse_or_compute``, folder ``<step>/<condition>``)."""
    from helpers import pipeline, predictions, runs

    adata = prepared.adata
    genes = de_genes.top_de_genes(adata, condition, n_genes)
    cells = conditions.cells_by_condition(adata)
    control = pd.Series(metrics.mean_expression(cells[CONTROL]), index=adata.var_names)[genes]
    true_delta = pd.DataFrame(cells[condition], columns=adata.var_names)[genes] - control
    predicted = pd.concat(
        [pd.DataFrame({"model": model, "seed": seed, "gene": genes,
                       "delta": (predictions.read_predictions(model, seed).loc[condition, genes] - control).to_numpy()})
         for model, seed in stored.itertuples(index=False)], ignore_index=True)
    parameters = _key(record, prepared, stored)

    def compute(pending):
        summary = true_delta.agg(["mean", lambda d: d.quantile(0.25), lambda d: d.quantile(0.75)]).T
        summary.columns = ["true_mean_delta", "true_q25", "true_q75"]
        yield {"predicted_vs_true.csv": predicted.merge(summary, left_on="gene", right_index=True)
               .assign(perturbation=condition)}

    job = runs.CachedRun(f"{pipeline.INSPECT_COMBINATION}/{condition}", parameters)
    (run,) = runs.reuse_or_compute([job], ["predicted_vs_true.csv"], compute, force, "the combination's table")
    return CombinationView(true_delta, predicted, run["predicted_vs_true.csv"])
