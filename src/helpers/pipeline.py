"""The book's steps declared once: each step's name (its chapter's notebook, and the folder of
its own results), the named tables it writes and the named tables it reads.

This is the one place that knows where a table lives (a folder under the results root,
:func:`helpers.roots.results_root`), and the workflow's DAG (``workflow/Snakefile``) is derived
from it: a step runs after every step that writes a table it reads (:func:`needs`). A chapter
reads another step's results through :func:`folder` (``pipeline.folder("metrics")``), never by
spelling a folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from helpers.roots import results_root

PREPARE_DATA = "01_prepare_data"
TRAIN_BASELINES = "10_train_baselines"
TRAIN_GEARS = "11_train_gears"
PRETRAIN_GENEMAMBA = "12_pretrain_genemamba"
GENE_EMBEDDINGS = "13_gene_embeddings"
TRAIN_GEARS_PRIORS = "14_train_gears_priors"
EVALUATE_PERTURBATIONS = "20_evaluate_perturbations"
INSPECT_COMBINATION = "21_inspect_combination"
ANALYSE_INTERACTIONS = "22_analyse_interactions"
SUMMARISE_RESULTS = "30_summarise_results"

# table → its folder under the results root. Every step writes only into its own folder (its
# figures, run.json and caches too); the one shared folder is `predictions/`, the format every
# model ends in (helpers.predictions), in which each model's folder has one writer.
SHARED = ("predictions",)
TABLES = {
    "prepared_data": PREPARE_DATA,  # the AnnData in GEARS' format, split, DE genes, GO graph
    "baselines": TRAIN_BASELINES,
    "gears_runs": TRAIN_GEARS,  # learning curves and convergence of every GEARS seed
    "genemamba": PRETRAIN_GENEMAMBA,  # the pretrained checkpoint and its losses
    "embeddings": GENE_EMBEDDINGS,  # every prior's gene embedding
    "prior_runs": TRAIN_GEARS_PRIORS,  # learning curves and convergence of GEARS + each prior
    "predictions": "predictions",  # every model's predicted means (helpers.predictions)
    "evaluation": EVALUATE_PERTURBATIONS,
    # per-perturbation scores of every model and their summaries
    "metrics": EVALUATE_PERTURBATIONS,
    "cell_eval": f"{EVALUATE_PERTURBATIONS}/cell_eval",  # predictions exported for cell-eval, on request
    "combination": INSPECT_COMBINATION,
    "interactions": ANALYSE_INTERACTIONS,
    "gi": ANALYSE_INTERACTIONS,  # GI scores of the truth and of every model, and what they show
    "summary": SUMMARISE_RESULTS,
}


@dataclass(frozen=True)
class Step:
    name: str
    writes: tuple[str, ...]
    reads: tuple[str, ...] = ()
    # the step's question where it needs two-gene perturbations: on data without pairs its
    # chapter says so in one sentence instead of running (helpers.book)
    pairs_question: str | None = None


STEPS = (
    Step(PREPARE_DATA, ("prepared_data",)),
    Step(TRAIN_BASELINES, ("baselines", "predictions"), ("prepared_data",)),
    Step(TRAIN_GEARS, ("gears_runs", "predictions"), ("prepared_data",)),
    Step(PRETRAIN_GENEMAMBA, ("genemamba",), ("prepared_data",)),
    Step(GENE_EMBEDDINGS, ("embeddings",), ("prepared_data", "genemamba")),
    Step(TRAIN_GEARS_PRIORS, ("prior_runs", "predictions"), ("prepared_data", "embeddings")),
    Step(EVALUATE_PERTURBATIONS, ("evaluation", "metrics", "cell_eval"),
         ("prepared_data", "predictions", "gears_runs", "prior_runs")),
    Step(INSPECT_COMBINATION, ("combination",), ("prepared_data", "predictions"),
         pairs_question="how each model's prediction for one two-gene combination compares with its cells"),
    Step(ANALYSE_INTERACTIONS, ("interactions", "gi"), ("prepared_data", "predictions"),
         pairs_question="which pairs of genes interact (synergy, suppression, epistasis) and whether "
                        "the models find them"),
    Step(SUMMARISE_RESULTS, ("summary",), ("prepared_data", "metrics", "gi", "gears_runs", "prior_runs")),
)
_BY_NAME = {step.name: step for step in STEPS}
STEP_NAMES = tuple(_BY_NAME)


def step(name: str) -> Step:
    if name not in _BY_NAME:
        raise ValueError(f"unknown step {name!r}; the book's steps: {list(_BY_NAME)}")
    return _BY_NAME[name]


def folder(table: str, root: Path | None = None) -> Path:
    """Where ``table`` lives under ``root`` (default: the current results root); not created."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; the book's tables: {sorted(TABLES)}")
    if root is None:
        root = results_root()
    return Path(root) / TABLES[table]


def writers(table: str) -> list[str]:
    """The steps that write ``table``, in the book's order."""
    return [s.name for s in STEPS if table in s.writes]


def needs(name: str) -> list[str]:
    """The steps that must run before step ``name``: those that write a table it reads."""
    wanted = set(step(name).reads)
    return [s.name for s in STEPS if s.name != name and wanted & set(s.writes)]


def _check() -> None:
    for s in STEPS:
        unknown = sorted(set(s.writes + s.reads) - set(TABLES))
        if unknown:
            raise ValueError(f"step {s.name} names unknown tables {unknown}")
    for table in TABLES:
        if not writers(table):
            raise ValueError(f"no step writes table {table!r}")
        owner = TABLES[table].split("/")[0]
        strangers = [w for w in writers(table) if w != owner and table not in SHARED]
        if strangers:
            raise ValueError(f"step(s) {strangers} would write table {table!r} into another step's folder")


_check()
