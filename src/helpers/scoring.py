"""Genetic-interaction scores of the truth and of each model's predictions, cached per model
and seed: what chapter 22 scores, here so that a workflow job can score one model-seed.

Each score is a :class:`helpers.runs.CachedRun` named ``22_analyse_interactions/scores/
<model>/seed=<k>`` and keyed on the GI genes, the Theil–Sen settings, the pairs and the content
of what it scores (the prepared data's fingerprint for the truth, the prediction file's SHA-256
for a model), so a chapter finds the scores a job made and reads them back::

    python -m helpers.scoring --profile default --model gears --seed 1
    python -m helpers.scoring --profile default --truth

The command takes :data:`SCORING_DEFAULTS` unless given ``-p NAME VALUE``; chapter 22's
``parameters`` cell holds the same defaults (tested), so a job scores exactly as the chapter would.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, dataclass, fields, replace
from typing import TYPE_CHECKING

import pandas as pd

from helpers import conditions, gi, pipeline, predictions, profiles, reference, roots, runs
from helpers.conditions import CONTROL, is_combo

if TYPE_CHECKING:
    import anndata as ad

    from helpers.data import Prepared

STEP = pipeline.ANALYSE_INTERACTIONS
SCORES = "scores.csv"
MIN_GI_GENES = 20  # fewer genes than this give no stable Theil-Sen fit of two coefficients
NORMAN_SCALE_MODEL = "truth_norman_scale"


def gi_genes_in(true_means: pd.DataFrame, gi_genes: list[str] | None = None) -> list[str]:
    """The genes GI is scored on: GEARS' high-mean genes (or ``gi_genes``) that are in the data."""
    genes = [g for g in (reference.high_mean_genes() if gi_genes is None else gi_genes)
             if g in true_means.columns]
    if len(genes) < MIN_GI_GENES:
        raise ValueError(f"only {len(genes)} GI genes are in the data; "
                         f"pass gi_genes with at least {MIN_GI_GENES} of its genes")
    return genes


@dataclass(frozen=True)
class Scoring:
    """What every score of one build shares: genes, pairs and Theil–Sen settings."""

    genes: list[str]
    pairs: list[str]  # the test pairs (what models are scored on)
    truth_pairs: list[str]  # the test pairs and every pair Norman fitted (the truth's fidelity)
    engine: str = "fast"
    max_subpopulation: int = 100_000
    random_state: int = 1000
    n_jobs: int = 1

    @classmethod
    def build(cls, test: list[str], true_means: pd.DataFrame, gi_genes: list[str] | None = None,
              engine: str = "fast", max_subpopulation: int = 100_000, random_state: int = 1000,
              n_jobs: int = 1) -> Scoring:
        """From the split's test conditions and the true condition means."""
        pairs = [c for c in test if is_combo(c)]
        fitted = [c for c in reference.gi_fits().condition
                  if c in true_means.index and c not in pairs]
        return cls(gi_genes_in(true_means, gi_genes), pairs, pairs + fitted, engine,
                   max_subpopulation, random_state, n_jobs)

    def settings(self) -> dict[str, object]:
        """What a score depends on besides its pairs and its means (``n_jobs`` does not count)."""
        return {"genes": hashlib.sha256(" ".join(self.genes).encode()).hexdigest()[:16],
                "engine": self.engine, "max_subpopulation": self.max_subpopulation,
                "random_state": self.random_state,
                "code": runs.code_digest("helpers.gi")}  # a change to the scoring rescores

    def _run(self, model: str, seed: int, source: str, means: pd.DataFrame,
             pairs: list[str]) -> runs.CachedRun:
        key = {**self.settings(), "pairs": pairs, "source": source}
        return runs.CachedRun(f"{STEP}/scores/{model}/seed={seed}", key,
                              (means, pairs, {"model": model, "seed": seed}))

    def truth_run(self, means: pd.DataFrame, data_fingerprint: str,
                  name: str = "truth") -> runs.CachedRun:
        """The truth (``means``: true condition means, or the simulator's noise-free ones)."""
        return self._run(name, 0, data_fingerprint, means, self.truth_pairs)

    def model_run(self, model: str, seed: int, true_means: pd.DataFrame) -> runs.CachedRun:
        """A model's stored predictions, as changes over the true control."""
        path = predictions.prediction_path(model, seed)
        predicted = predictions.read_predictions(model, seed)
        predicted.loc[CONTROL] = true_means.loc[CONTROL, predicted.columns]
        return self._run(model, seed, hashlib.sha256(path.read_bytes()).hexdigest(), predicted,
                         self.pairs)

    def compute(self, pending: list[runs.CachedRun]) -> Iterator[dict[str, pd.DataFrame]]:
        """``compute`` for :func:`helpers.runs.reuse_or_compute`."""
        for run in pending:
            means, pairs, labels = run.task
            genes = self.genes
            if callable(means):  # Norman's scale: its genes are those his bar keeps
                means = means()
                genes = list(means.columns)
                if len(genes) < MIN_GI_GENES:  # nothing to fit on: no pairs scored
                    yield {SCORES: pd.DataFrame(columns=["perturbation", *gi.SCORE_COLUMNS, *labels])}
                    continue
            scores = gi.interaction_scores(means, pairs, genes, self.engine,
                                           self.max_subpopulation, self.random_state,
                                           self.n_jobs, progress=True)
            yield {SCORES: scores.assign(**labels)}

    def scores(self, cached_runs: list[runs.CachedRun], force: bool = False,
               describe: str = "GI scores") -> list[pd.DataFrame]:
        """Each run's scores, reused or computed."""
        results = runs.reuse_or_compute(cached_runs, [SCORES], self.compute, force, describe)
        return [result[SCORES] for result in results]

    def score_all(self, prepared: Prepared, stored: pd.DataFrame, true_means: pd.DataFrame,
                  force: bool = False) -> InteractionScores:
        """The truth from the cells and every model-seed of ``stored`` (``model, seed``), each
        reused or computed (the noise-free truth: :meth:`with_noise_free_truth`)."""
        jobs = [self.truth_run(true_means, prepared.fingerprint)]
        jobs += [self.model_run(model, seed, true_means)
                 for model, seed in stored.itertuples(index=False)]
        truth, *models = self.scores(jobs, force)
        scores = pd.concat([truth[truth.perturbation.isin(self.pairs)], *models],
                           ignore_index=True)
        scores["subgroup"] = scores.perturbation.map(prepared.split.subgroup_of)
        return InteractionScores(scores, {"cells": truth})

    def with_noise_free_truth(self, scored: InteractionScores, prepared: Prepared,
                              force: bool = False) -> InteractionScores:
        """``scored`` with, on simulated data, the truth scored from the simulator's noise-free
        means beside the cells' (``truths["noise-free"]``); unchanged on real data."""
        if prepared.truth is None:
            return scored
        run = self.truth_run(prepared.truth.to_df(), prepared.fingerprint, "truth_noise_free")
        noise_free = self.scores([run], force, "noise-free truth")[0]
        return replace(scored, truths={**scored.truths, "noise-free": noise_free})

    def normans_scale_run(self, adata: ad.AnnData, data_fingerprint: str) -> runs.CachedRun:
        """The cells' truth measured as Norman measured his (:func:`helpers.gi.norman_scale_means`:
        z-scores over the genes above 0.5 UMI per cell), on every pair of :attr:`truth_pairs`.
        Its genes follow from the data and his bar, so the run is keyed on those, and the means
        (about 10 s on the full panel) are computed only when the scores are (:meth:`compute`)."""
        key = {**self.settings(), "genes": f"above {gi.NORMAN_MIN_MEAN_UMIS} UMI per cell, untargeted",
               "pairs": self.truth_pairs, "source": data_fingerprint}
        return runs.CachedRun(f"{STEP}/scores/{NORMAN_SCALE_MODEL}/seed=0", key,
                              (lambda: gi.norman_scale_means(adata), self.truth_pairs,
                               {"model": NORMAN_SCALE_MODEL, "seed": 0}))

    def with_normans_scale(self, scored: InteractionScores, prepared: Prepared,
                           force: bool = False) -> InteractionScores:
        """``scored`` with the cells' truth on Norman's own scale beside it (for the truth's
        fidelity to his fits only: a model predicts means, not cells to z-score); unchanged where
        the cells' UMI totals are unknown (``obs['total_counts']``, which simulated data has) and,
        with a warning, where fewer than 20 genes pass his bar (too shallow or too small a panel
        to fit on)."""
        if "total_counts" not in prepared.adata.obs:
            return scored
        run = self.normans_scale_run(prepared.adata, prepared.fingerprint)
        on_his = self.scores([run], force, "truth on Norman's scale")[0]
        if on_his.empty:
            warnings.warn(f"fewer than {MIN_GI_GENES} genes are above {gi.NORMAN_MIN_MEAN_UMIS} UMI per "
                          "cell: the cells are not scored on Norman's scale", stacklevel=2)
            return scored
        return replace(scored, normans_scale=on_his)

    def analyse(self, scored: InteractionScores, prepared: Prepared, stored: pd.DataFrame,
                top_k: int, record: Mapping[str, object], force: bool = False) -> InteractionAnalysis:
        """Chapter 22's tables from ``scored`` (:meth:`score_all`, maybe
        :meth:`with_noise_free_truth`) of ``stored``'s model-seeds: a run in chapter 22's own
        folder (``runs.reuse_or_compute``) keyed on ``record`` (the chapter's parameters), the
        scoring settings, the prepared data, every prediction file's digest, the shipped
        reference files and this module's code, so unchanged inputs are read back."""
        fits, verified = reference.gi_fits(), gi.verified_pairs(reference.gi_types())
        sources = list(scored.truths)
        key = {**record, **self.settings(), "pairs": self.pairs, "truth_pairs": self.truth_pairs,
               "truths": sources, "fidelity_truths": list(scored.fidelity_truths), "top_k": top_k, "data_run": prepared.fingerprint,
               "predictions": predictions.fingerprints(stored),
               "reference": reference.reference_digest(),
               "analysis_code": runs.code_digest("helpers.scoring")}  # beside the scores' "code"

        def compute(pending: list[runs.CachedRun]) -> Iterator[dict[str, pd.DataFrame]]:
            predicted = scored.predicted
            yield {**scored.tables(),
                   "truth_fidelity.csv": gi.fidelity_to_norman(scored.fidelity_truths, fits).table,
                   **gi.magnitude_correlations(scored.truths, predicted).tables(),
                   **gi.top_pair_lists(scored.scores, scored.truth, verified, top_k).tables(),
                   "gi_types.csv": gi.type_precision_table(scored.scores, verified),
                   **gi.detection(scored.truths, predicted, self.pairs).tables()}

        (tables,) = runs.reuse_or_compute([runs.CachedRun(STEP, key)],
                                          InteractionAnalysis.files(sources, top_k), compute, force, "GI tables")
        correlation_files = gi.magnitude_correlation_files(sources)
        return InteractionAnalysis(
            scored,
            gi.TruthFidelity(tables["truth_fidelity.csv"], gi.fidelity_points(scored.fidelity_truths, fits)),
            gi.MagnitudeCorrelations(
                {source: tables[name] for source, name in correlation_files.items()},
                gi.pooled_magnitude_correlation(scored.truths[sources[0]], scored.predicted)),
            gi.top_pairs_of(top_k, tables[f"top{top_k}.csv"], tables["precision.csv"],
                            scored.truth, verified),
            tables["gi_types.csv"],
            gi.Detection(tables["detection_curves.csv"], tables["detection.csv"]))


@dataclass(frozen=True)
class InteractionScores:
    """The GI scores of one build (:meth:`Scoring.score_all`).

    Attributes:
        scores: the truth's (``model == "truth"``, from the cells) and every model-seed's scores
            of the test pairs, with each pair's test ``subgroup``.
        truths: each truth's source (``cells``; ``noise-free`` on simulated data once
            :meth:`Scoring.with_noise_free_truth` added it) → its scores of the test pairs and
            of every pair Norman fitted.
        normans_scale: the cells' truth on Norman's own scale (``normans_scale`` of
            :meth:`Scoring.with_normans_scale`), for the truth's fidelity only.
    """

    scores: pd.DataFrame
    truths: dict[str, pd.DataFrame]
    normans_scale: pd.DataFrame | None = None

    @property
    def fidelity_truths(self) -> dict[str, pd.DataFrame]:
        """The truths whose magnitudes are set beside Norman's fits: :attr:`truths` and, where
        :meth:`Scoring.with_normans_scale` added it, the cells' truth on his scale."""
        if self.normans_scale is None:
            return dict(self.truths)
        cells, *others = self.truths.items()  # the cells' two views side by side
        return dict([cells, (gi.NORMAN_SCALE_SOURCE, self.normans_scale), *others])

    @property
    def truth(self) -> pd.DataFrame:
        """The truth's scores of the test pairs (from the cells)."""
        return self.scores[self.scores.model == "truth"]

    @property
    def predicted(self) -> pd.DataFrame:
        """Every model-seed's scores of the test pairs."""
        return self.scores[self.scores.model != "truth"]

    @property
    def magnitude(self) -> pd.DataFrame:
        """``magnitude.csv``: ``model, seed, perturbation, subgroup`` and every score."""
        return self.scores[["model", "seed", "perturbation", "subgroup", *gi.SCORE_COLUMNS]]

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"magnitude.csv": self.magnitude}


@dataclass(frozen=True)
class InteractionAnalysis:
    """What chapter 22 shows of one build's scores (:meth:`Scoring.analyse`); its tables are
    those of :attr:`files`, read back from chapter 22's folder."""

    scored: InteractionScores
    fidelity: gi.TruthFidelity  # each truth's magnitudes against Norman's fits
    correlations: gi.MagnitudeCorrelations  # predicted against true magnitudes
    top: gi.TopPairs  # each model-seed's top synergistic and suppressive pairs
    types: pd.DataFrame  # precision of each interaction type's calls (gi_types.csv)
    detection: gi.Detection  # each model-seed ranking each truth's interacting pairs

    @staticmethod
    def files(sources: list[str], top_k: int) -> list[str]:
        """The tables, for truth ``sources`` (``cells``, maybe ``noise-free``) and lists of
        ``top_k`` pairs."""
        return ["magnitude.csv", "truth_fidelity.csv", *gi.magnitude_correlation_files(sources).values(),
                f"top{top_k}.csv", "precision.csv", "gi_types.csv", "detection.csv",
                "detection_curves.csv"]


# what a score is computed with unless a chapter or job says otherwise (chapter 22's parameters):
# Scoring's own defaults, every GI gene, and no forced rescoring
SCORING_DEFAULTS = {"gi_genes": None, "force": False,
                    **{f.name: f.default for f in fields(Scoring) if f.default is not MISSING}}


def main(argv: list[str] | None = None) -> int:
    from helpers import book, data

    parser = argparse.ArgumentParser(description="Score genetic interactions of one model-seed "
                                                 "(or the truth) as chapter 22 does, cached.")
    parser.add_argument("--profile", default="default", choices=sorted(profiles.PROFILES))
    parser.add_argument("--data", default=None, metavar="SOURCE",
                        help="the book's data source (default: the profile's); picks the results")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--truth", action="store_true", help="the truth (and the noise-free one)")
    which.add_argument("--model", help="a model with stored predictions, e.g. gears+go_svd")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help=f"one of {sorted(SCORING_DEFAULTS)}")
    args = parser.parse_args(argv)
    parameters = dict(SCORING_DEFAULTS)
    for name, value in args.parameter:
        if name not in parameters:
            parser.error(f"unknown parameter {name!r}; scoring takes {sorted(parameters)}")
        parameters[name] = book.parse_value(value)
    source = roots.resolve_data_source(args.data, args.profile)
    os.environ["HELPERS_RESULTS_DIR"] = str(roots.results_root_for(source))

    prepared = data.load_prepared()
    if not prepared.dataset.pairs:
        parser.error(f"the prepared data is {prepared.dataset.title}: it has no two-gene perturbations, "
                     "so there are no genetic interactions to score")
    true_means = conditions.condition_means(prepared.adata)
    scoring = Scoring.build(prepared.split.test, true_means, parameters["gi_genes"],
                            parameters["engine"], parameters["max_subpopulation"],
                            parameters["random_state"], parameters["n_jobs"])
    if args.truth:
        jobs = [scoring.truth_run(true_means, prepared.fingerprint)]
        if prepared.truth is not None:
            jobs.append(scoring.truth_run(prepared.truth.to_df(), prepared.fingerprint,
                                          "truth_noise_free"))
    else:
        jobs = [scoring.model_run(args.model, args.seed, true_means)]
    scored = list(zip(jobs, scoring.scores(jobs, parameters["force"])))
    if args.truth and "total_counts" in prepared.adata.obs:
        run = scoring.normans_scale_run(prepared.adata, prepared.fingerprint)
        scored += zip([run], scoring.scores([run], parameters["force"], "truth on Norman's scale"))
    for run, table in scored:
        print(f"{run.name}: {len(table)} pairs scored, median magnitude "
              f"{table.magnitude.median():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
