"""The step registry (helpers.pipeline): the one place that names steps, tables and their folders, and the source of
the workflow's DAG; and the model registry's hold on model names."""

import ast
import re

import pytest

from helpers import book, pipeline
from helpers.reference import REPO_ROOT


def test_each_step_runs_after_the_steps_that_write_what_it_reads():
    assert pipeline.needs(pipeline.PREPARE_DATA) == []
    assert pipeline.needs(pipeline.TRAIN_GEARS_PRIORS) == [pipeline.PREPARE_DATA, pipeline.GENE_EMBEDDINGS]
    # every model's predictions come from three steps, and evaluation waits for all of them
    assert pipeline.writers("predictions") == [pipeline.TRAIN_BASELINES, pipeline.TRAIN_GEARS, pipeline.TRAIN_GEARS_PRIORS]
    assert set(pipeline.needs(pipeline.EVALUATE_PERTURBATIONS)) >= set(pipeline.writers("predictions"))
    assert pipeline.needs(pipeline.SUMMARISE_RESULTS)[-2:] == [pipeline.EVALUATE_PERTURBATIONS, pipeline.ANALYSE_INTERACTIONS]
    assert [s.name for s in pipeline.STEPS] == book.toc_notebooks()  # one step per chapter, in the book's order


def test_a_table_is_found_by_name_and_an_unknown_one_is_refused(tmp_path, isolated_results):
    assert pipeline.folder("metrics") == isolated_results / pipeline.EVALUATE_PERTURBATIONS
    assert pipeline.folder("prepared_data", tmp_path) == tmp_path / pipeline.PREPARE_DATA
    with pytest.raises(ValueError, match="unknown table 'metric'; the book's tables"):
        pipeline.folder("metric")
    with pytest.raises(ValueError, match="unknown step '15_train'"):
        pipeline.needs("15_train")


def _code_strings(path):
    """Every string constant in a Python file's code, docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value
        if isinstance(node, ast.JoinedStr):  # an f-string's literal parts
            yield "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)


def test_no_step_folder_or_prior_model_name_is_spelled_outside_its_registry():
    """A path to a step's results, or a GEARS + prior model's name, is built only by
    helpers.pipeline and helpers.models.registry: code elsewhere that spells one would silently
    diverge when either changes."""
    names = [s.name for s in pipeline.STEPS]
    sources = [p for p in (REPO_ROOT / "src" / "helpers").rglob("*.py")
               if p.name not in ("pipeline.py", "registry.py")] + sorted((REPO_ROOT / "notebooks").glob("*.py"))
    sources += sorted((REPO_ROOT / "benchmarks").glob("*.py"))
    spelled = [f"{p.relative_to(REPO_ROOT)}: {text!r}" for p in sources for text in _code_strings(p)
               if any(text == n or text.startswith(f"{n}/") for n in names) or text.startswith("gears+")]
    snakefile = (REPO_ROOT / "workflow" / "Snakefile").read_text()
    spelled += [f"workflow/Snakefile: {m}" for m in re.findall(r"""["'](?:\d\d_[a-z_]+|gears\+[^"']*)["']""", snakefile)]
    assert not spelled, "\n".join(spelled)


def test_every_step_writes_only_into_its_own_folder():
    """Each table lies in the folder of the step that writes it (the shared `predictions/` aside,
    in which each model's folder has one writer); the registry refuses any other layout."""
    for table, folder in pipeline.TABLES.items():
        if table in pipeline.SHARED:
            continue
        assert pipeline.writers(table) == [folder.split("/")[0]], table
    assert pipeline.folder("cell_eval").parent == pipeline.folder("metrics")


@pytest.mark.slow
def test_the_quick_books_results_are_the_steps_own_folders(quick_book):
    tops = {p.name for p in (quick_book / "results").iterdir() if p.is_dir()}
    assert tops == {s.name for s in pipeline.STEPS} | set(pipeline.SHARED)
