"""The book runs headlessly through papermill on the quick profile."""

import json

import anndata
import numpy as np
import pandas as pd
import pytest

from helpers import book, conditions, data, pipeline, predictions, splits


def test_toc_lists_the_data_chapter_first():
    assert book.toc_notebooks()[0] == "01_prepare_data"


def test_every_notebook_has_literal_defaults_and_a_profile():
    """Read from the text, the parameters are those of the cell jupytext (and so papermill) tags;
    a second tagged cell is refused."""
    import ast

    import jupytext

    for name in book.toc_notebooks():
        source = book.NOTEBOOK_DIR / f"{name}.py"
        parameters = book.notebook_parameters(source)
        assert parameters["profile"] == "default", name
        tagged = [c for c in jupytext.read(source).cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, name
        names = [t.id for node in ast.parse(tagged[0].source).body if isinstance(node, ast.Assign)
                 for t in node.targets]
        assert list(parameters) == names and len(names) >= 2, name


def test_a_second_parameters_cell_is_refused(tmp_path):
    source = book.NOTEBOOK_DIR / "10_train_baselines.py"
    twice = tmp_path / "twice.py"
    twice.write_text(source.read_text() + '\n# %% tags=["parameters"]\nseed = 1\n')
    with pytest.raises(ValueError, match="exactly one cell tagged 'parameters', found 2"):
        book.notebook_parameters(twice)


CODE_WIDTH = 85  # characters; _static/custom.css sizes code so that this fits the page


def test_every_code_line_fits_the_page():
    """A reader never scrolls sideways through code: every line of every code cell (prose cells
    wrap by themselves) is at most ``CODE_WIDTH`` characters; the browser test checks the
    rendered result."""
    import jupytext

    too_wide = [f"{name}.py: {line.strip()[:60]}… ({len(line)} characters)"
                for name in book.toc_notebooks()
                for cell in jupytext.read(book.NOTEBOOK_DIR / f"{name}.py").cells if cell.cell_type == "code"
                for line in cell.source.splitlines() if len(line) > CODE_WIDTH]
    assert not too_wide, "\n".join(too_wide)


CODE_LINES = 120  # per chapter: the computing lives in helpers, a chapter holds prose and calls


def code_lines(source: str) -> int:
    """Lines of code as a reader counts them: the non-blank lines of code cells that are not
    comments (prose cells, blank lines and comments are free)."""
    import jupytext

    return sum(1 for cell in jupytext.reads(source, fmt="py:percent").cells if cell.cell_type == "code"
               for line in cell.source.splitlines() if line.strip() and not line.strip().startswith("#"))


def test_code_lines_are_counted_as_a_reader_counts_them():
    source = ('# %% [markdown]\n# # Title\n# prose\n\n# %% tags=["parameters"]\nprofile = "default"  # why\n\n'
              "# %%\n# a comment\nx = [\n    1,\n]\n\nprint(x)\n")
    assert code_lines(source) == 5


def test_every_chapter_has_at_most_120_lines_of_code():
    counts = {name: code_lines((book.NOTEBOOK_DIR / f"{name}.py").read_text()) for name in book.toc_notebooks()}
    too_long = {name: n for name, n in counts.items() if n > CODE_LINES}
    assert not too_long, f"chapters over {CODE_LINES} lines of code (move the computing into helpers): {too_long}"
    assert min(counts.values()) > 10  # the counter reads code at all


def test_unknown_parameter_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown parameter.*profil"):
        book.execute("01_prepare_data", {"profil": "quick"}, executed_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_quick_book_runs_end_to_end(quick_book, tmp_path, monkeypatch):
    """Every chapter ran headlessly on the quick profile (the fixture) and wrote what later
    chapters and users read."""
    first = quick_book / "results"
    monkeypatch.setenv("HELPERS_RESULTS_DIR", str(first))
    out = first / "01_prepare_data"
    composition = pd.read_csv(out / "split_composition.csv")
    assert composition.columns.tolist() == ["subgroup", "n_perturbations"]
    assert dict(zip(composition.subgroup, composition.n_perturbations)) == {
        "combo_seen0": 9, "combo_seen1": 43, "combo_seen2": 19, "unseen_single": 36}
    split = splits.SimulationSplit.from_json(out / "split.json")
    assert len(split.test) == 107
    record = json.loads((out / "run.json").read_text())
    assert record["parameters"]["max_cells_per_condition"] == 10  # the quick profile's cap
    for figure in ("split_composition.png", "gene_venn.png", "cells_per_condition.png",
                   "simulation_recovery.png"):
        assert (out / figure).stat().st_size > 10_000, figure

    per_perturbation = pd.read_csv(pipeline.folder("metrics", first) / "per_perturbation.csv")
    assert per_perturbation.columns.tolist() == ["model", "seed", "perturbation", "subgroup", "metric", "value"]
    assert set(per_perturbation.model) == {"no_change", "train_mean", "non_control_mean", "matching_mean",
                                           "additive", "latent_additive", "linear", "gears",
                                           "gears+go_svd", "gears+genemamba", "noise_ceiling"}
    assert per_perturbation.groupby("model").perturbation.nunique().eq(107).all()
    # every model, the noise ceiling included, is seen through every lens on every test perturbation
    from helpers import lenses

    lens_rows = per_perturbation[per_perturbation.metric.isin(lenses.LENSES)]
    assert lens_rows.groupby("model").size().eq(107 * len(lenses.LENSES)).all()
    assert lens_rows.groupby("model").size().index.nunique() == per_perturbation.model.nunique()
    calibrated = pd.read_csv(pipeline.folder("metrics", first) / "calibrated.csv")
    assert calibrated.columns.tolist() == ["model", "seed", "subgroup", "metric", "value", "model_mean",
                                           "baseline_mean", "replicate_mean", "n"]
    assert "noise_ceiling" not in set(calibrated.model)
    # the calibration's baseline scores exactly 0 on every metric it defines
    baseline = calibrated[calibrated.model == "non_control_mean"].value.dropna()
    assert len(baseline) > 50 and np.allclose(baseline, 0.0)
    # every lens on which the baseline itself has a score is calibrated (on the quick profile the
    # non-control mean is the perturbed centroid itself, so its centroid Pearson delta is undefined)
    scored_by_baseline = set(lens_rows[(lens_rows.model == "non_control_mean") & lens_rows.value.notna()].metric)
    assert len(scored_by_baseline) >= len(lenses.LENSES) - 2
    assert scored_by_baseline <= set(calibrated.metric)
    summary = pd.read_csv(pipeline.folder("metrics", first) / "summary.csv")
    assert summary.columns.tolist() == ["model", "subgroup", "metric", "mean", "ci_low", "ci_high", "n"]
    no_change = summary.query("model == 'no_change' and metric == 'mse_de'").set_index("subgroup")
    additive = summary.query("model == 'additive' and metric == 'mse_de'").set_index("subgroup")
    # knowing both single effects must beat predicting no change on pairs seen as singles
    assert additive.at["combo_seen2", "mean"] < no_change.at["combo_seen2", "mean"]
    assert (first / "20_evaluate_perturbations" / "mse_de_by_subgroup.png").stat().st_size > 10_000
    # one combination up close, GI analysis and the summary read those predictions
    assert (first / "21_inspect_combination" / "ETS2+CEBPE" / "boxplot.png").stat().st_size > 10_000
    correlation = pd.read_csv(pipeline.folder("gi", first) / "magnitude_correlation.csv")
    assert correlation.columns.tolist() == ["model", "seed", "r", "p", "n"]
    assert "no_change" not in set(correlation.model) and correlation.n.eq(71).all()  # every test pair
    top = pd.read_csv(pipeline.folder("gi", first) / "top20.csv")
    assert top.columns.tolist() == ["model", "seed", "kind", "rank", "perturbation", "verified", "in_true_top20"]
    fidelity = pd.read_csv(pipeline.folder("gi", first) / "truth_fidelity.csv")
    assert fidelity.columns.tolist() == ["source", "r", "slope", "n", "agreement", "median", "above",
                                         "norman_median", "norman_above"]
    assert fidelity.source.tolist() == ["cells", "cells, Norman's scale", "noise-free"]
    assert fidelity.n.gt(100).all() and fidelity.notna().all().all()
    assert top.groupby(["model", "seed", "kind"]).size().eq(20).all()
    detection = pd.read_csv(pipeline.folder("gi", first) / "detection.csv")
    assert detection.columns.tolist() == ["truth", "model", "seed", "kind", "average_precision", "base_rate",
                                          "n_positive", "n"]
    assert set(detection.truth) == {"cells", "noise-free"} and detection.n.eq(71).all()
    assert (first / "30_summarise_results" / "calibrated_lenses.png").stat().st_size > 10_000
    glance = pd.read_csv(first / "30_summarise_results" / "glance.csv")
    assert {"gears", "gears+genemamba", "noise_ceiling"} <= set(glance.model)
    assert glance.query("model == 'gears' and column == 'magnitude_r'").n_seeds.item() == 1


@pytest.mark.slow
def test_a_rerun_reuses_the_data_and_exports_for_cell_eval(finished_results, tmp_path):
    """On a private copy of the quick book's results (the shared book stays as it was built):
    a second run of the data chapter with the same parameters reuses the cached dataset, and the
    evaluation exports predictions for cell-eval on request."""
    out = finished_results / "01_prepare_data"
    before = (out / "perturb_processed.h5ad").stat().st_mtime_ns
    book.execute("01_prepare_data", {"profile": "quick"}, executed_dir=tmp_path)
    assert (out / "perturb_processed.h5ad").stat().st_mtime_ns == before
    scores = pipeline.folder("metrics", finished_results) / "per_perturbation.csv"
    scored_at = scores.stat().st_mtime_ns
    book.execute("20_evaluate_perturbations", {"profile": "quick", "cell_eval_models": ["additive"]},
                 executed_dir=tmp_path)
    exported = anndata.read_h5ad(pipeline.folder("cell_eval", finished_results) / "additive" / "seed=0" / "adata_pred.h5ad")
    assert exported.obs.condition.nunique() == 108 and "ctrl" in set(exported.obs.condition)
    assert scores.stat().st_mtime_ns == scored_at  # nothing it reads changed: the scores are read back
    # a prediction file that changes is scored again
    mse_before = pd.read_csv(scores).query("model == 'linear' and metric == 'mse'").value.mean()
    linear = predictions.prediction_path("linear", 0)
    stored = anndata.read_h5ad(linear)
    stored.X = stored.X + 0.5
    stored.write_h5ad(linear)
    book.execute("20_evaluate_perturbations", {"profile": "quick"}, executed_dir=tmp_path)
    mse_after = pd.read_csv(scores).query("model == 'linear' and metric == 'mse'").value.mean()
    assert scores.stat().st_mtime_ns != scored_at and mse_after > mse_before + 0.1  # every gene off by 0.5


@pytest.mark.slow
@pytest.mark.long(1)
def test_the_prior_target_benchmark_trains_the_candidates_and_the_chapter_can_too(finished_results, tmp_path):
    """``benchmarks/prior_target.py`` on the quick book's results: the three candidates on one
    seed, each with its best validation error and plateau verdict, the lowest one chosen (the
    chapter's own choice on those runs); chapter 14 given the candidates reuses those runs."""
    import importlib.util

    from helpers.models.priors import PRIOR_TARGETS
    from helpers.reference import REPO_ROOT

    spec = importlib.util.spec_from_file_location("prior_target", REPO_ROOT / "benchmarks" / "prior_target.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    assert benchmark.main(["--profile", "quick", "--seeds", "2", "--root", str(finished_results),
                           "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "prior_target_selection.csv")
    assert sorted(table.target) == sorted(PRIOR_TARGETS) and set(table.seed) == {2}
    assert table.chosen.sum() == 1 and table.val_mse_top20_de.notna().all()
    assert table.loc[table.chosen, "val_mse_top20_de"].item() == table.val_mse_top20_de.min()
    assert table.converged.dtype == bool
    about = json.loads((tmp_path / "prior_target_selection.json").read_text())
    assert about["profile"] == "quick" and about["seeds"] == [2] and len(about["data_run"]) == 16
    with book._environment({"HELPERS_RESULTS_DIR": str(finished_results)}):
        prepared = data.load_prepared()
        # the data it trained on, as the data step recorded them and as they are in the files
        assert about["data_content"] == prepared.content_signature
        assert prepared.recorded_content is not None
        assert prepared.content_signature == data.content_signature(prepared.adata, prepared.split)
    # the chapter asked for the same candidates on the same seed trains nothing new
    trained = {p: p.stat().st_mtime_ns for p in (finished_results / "14_train_gears_priors").rglob("history.csv")}
    book.execute("14_train_gears_priors", {"profile": "quick", "prior_targets": list(PRIOR_TARGETS),
                                           "selection_seed": 2, "seeds": [2], "prior_names": ["genemamba"]},
                 executed_dir=tmp_path)
    assert {p: p.stat().st_mtime_ns for p in trained} == trained
    chosen = pd.read_csv(finished_results / "14_train_gears_priors" / "prior_target_selection.csv")
    assert chosen.query("chosen").target.item() == table.query("chosen").target.item()


def _repository_with_own_package(tmp_path, monkeypatch):
    """A copy of the repository whose ``src/`` a test may edit (the rest linked), imported by
    every kernel the test starts (``PYTHONPATH``)."""
    import shutil

    from helpers.reference import REPO_ROOT

    repository = tmp_path / "repository"
    repository.mkdir()
    for entry in REPO_ROOT.iterdir():
        if entry.name not in ("src", "results", ".git", ".venv"):
            (repository / entry.name).symlink_to(entry)
    shutil.copytree(REPO_ROOT / "src", repository / "src", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("PYTHONPATH", str(repository / "src"))
    return repository


@pytest.mark.slow
@pytest.mark.long(1)
def test_a_new_model_and_one_trained_elsewhere_reach_every_table(finished_results, tmp_path, monkeypatch):
    """A toy model in one file plus one registration, and a prediction file dropped into the
    documented folder, are scored by evaluation (20), drawn by the combination chapter (21),
    scored for interactions (22) and summarised (30); a file that misses a test condition stops
    evaluation with an error that names it."""
    repository = _repository_with_own_package(tmp_path, monkeypatch)
    models = repository / "src" / "helpers" / "models"
    (models / "toy.py").write_text(
        "from helpers.models import baselines\n\n\n"
        "def predict(inputs, shrink):\n"
        "    additive = baselines.additive(inputs.means, inputs.train, inputs.conditions)\n"
        "    control = inputs.means.loc['ctrl'].to_numpy()\n"
        "    return control + shrink * (additive - control)\n")
    with open(models / "registry.py", "a") as handle:
        handle.write('register(Model("toy", "half additive", "#123456", "baseline", '
                     '"helpers.models.toy:predict", {"shrink": 0.5}))\n')
    additive = predictions.read_predictions("additive", 0)
    elsewhere = finished_results / "predictions" / "elsewhere" / "seed=0" / "predictions.h5ad"
    elsewhere.parent.mkdir(parents=True)
    anndata.AnnData(X=(additive * 0.9).to_numpy(np.float32), obs=pd.DataFrame(index=additive.index),
                    var=pd.DataFrame(index=additive.columns)).write_h5ad(elsewhere)
    for chapter in ("10_train_baselines", "20_evaluate_perturbations", "21_inspect_combination",
                    "22_analyse_interactions", "30_summarise_results"):
        book.execute(chapter, {"profile": "quick"}, executed_dir=tmp_path / "executed")

    from helpers import data

    control = conditions.condition_means(data.load_prepared().adata).loc["ctrl"]
    toy = predictions.read_predictions("toy", 0)
    pd.testing.assert_frame_equal(toy, (control + 0.5 * (additive - control)).astype(np.float32),
                                  check_dtype=False, atol=1e-6)
    tables = {
        "20": pd.read_csv(pipeline.folder("metrics", finished_results) / "per_perturbation.csv"),
        "21": pd.concat(pd.read_csv(p) for p in
                        (finished_results / "21_inspect_combination").glob("*/predicted_vs_true.csv")),
        "22": pd.read_csv(pipeline.folder("gi", finished_results) / "magnitude.csv"),
        "30": pd.read_csv(finished_results / "30_summarise_results" / "glance.csv"),
    }
    for chapter, table in tables.items():
        assert {"toy", "elsewhere"} <= set(table.model), (chapter, sorted(set(table.model)))
    summary = pd.read_csv(pipeline.folder("metrics", finished_results) / "summary.csv").set_index(["model", "subgroup", "metric"])
    # halving every change over control doubles no error: the toy's own numbers, not a copy's
    assert summary.loc[("toy", "all", "mse_de"), "mean"] != summary.loc[("additive", "all", "mse_de"), "mean"]

    tested = splits.SimulationSplit.from_json(finished_results / "01_prepare_data" / "split.json").test[0]
    partial = additive.drop(index=tested)
    anndata.AnnData(X=partial.to_numpy(np.float32), obs=pd.DataFrame(index=partial.index),
                    var=pd.DataFrame(index=partial.columns)).write_h5ad(elsewhere)
    with pytest.raises(Exception) as stopped:
        book.execute("20_evaluate_perturbations", {"profile": "quick"}, executed_dir=tmp_path / "executed")
    said = str(stopped.value)
    assert str(elsewhere) in said and "no prediction for 1 condition" in said and tested in said, said[-2000:]


@pytest.mark.slow
def test_a_code_change_reruns_exactly_the_steps_that_compute_with_it(finished_results, tmp_path, monkeypatch):
    """A user pulls a fix and reruns a chapter: the chapter recomputes when the fix touches code
    it computes with, and reuses its results when the fix is elsewhere. The chapter runs in a
    kernel that imports a copy of the package (the rest of the repository linked), which the
    test edits as a pull would."""
    import nbformat

    repository = _repository_with_own_package(tmp_path, monkeypatch)

    def rerun_after(edited: str) -> bool:
        """Append a line to ``edited`` (under helpers/), rerun the baselines; did they refit?
        (The chapter says how many of its runs it reused.)"""
        with open(repository / "src" / "helpers" / edited, "a") as handle:
            handle.write("\nEDITED_BY_A_PULL = True\n")
        executed = book.execute("10_train_baselines", {"profile": "quick"}, executed_dir=tmp_path / "executed")
        said = "".join(output.get("text", "") for cell in nbformat.read(executed, as_version=4).cells
                       for output in cell.get("outputs", []))
        assert "baseline fits: " in said and "reused from results/" in said, said[-2000:]
        return "baseline fits: 0 of 1 reused" in said

    assert not rerun_after("gi.py")  # the baselines never import the GI code: reused
    assert not rerun_after("plots.py")  # figures are drawn again, results are not recomputed
    assert rerun_after("conditions.py")  # imported by the baselines: refitted
    assert not rerun_after("models/genemamba.py")  # and the refit is reused in turn


@pytest.mark.slow
@pytest.mark.long(1.5)
def test_interrupted_book_resumes_and_a_changed_parameter_reruns_only_its_dependents(finished_results, tmp_path):
    results, executed = finished_results, tmp_path / "executed"

    def stamps(*paths):
        return [(results / p).stat().st_mtime_ns for p in paths]

    data_file, gears = "01_prepare_data/perturb_processed.h5ad", "predictions/gears/seed=1/predictions.h5ad"
    linear = "predictions/linear/seed=0/predictions.h5ad"
    # the book was stopped inside chapter 14, before one prior's run recorded itself
    choice = pd.read_csv(results / "14_train_gears_priors" / "prior_target_selection.csv")
    target = choice.query("chosen").target.item()
    interrupted = f"14_train_gears_priors/gears+go_svd/{target}/seed=1"
    (results / interrupted / "run.json").unlink()
    finished = f"14_train_gears_priors/gears+genemamba/{target}/seed=1/history.csv"
    reused = [data_file, gears, finished]
    before, redone = stamps(*reused), stamps(f"{interrupted}/history.csv")
    for name in ("01_prepare_data", "11_train_gears", "14_train_gears_priors"):
        book.execute(name, {"profile": "quick"}, executed_dir=executed)
    assert stamps(*reused) == before  # finished steps and seeds were reused...
    assert stamps(f"{interrupted}/history.csv") != redone  # ...the unfinished run was redone
    assert (results / interrupted / "run.json").is_file()

    # a new ridge reruns the baselines; GEARS does not depend on it and is reused
    before_linear, before_gears = stamps(linear), stamps(gears)
    book.execute("10_train_baselines", {"profile": "quick", "ridge": 0.5}, executed_dir=executed)
    book.execute("11_train_gears", {"profile": "quick"}, executed_dir=executed)
    assert stamps(linear) != before_linear and stamps(gears) == before_gears
    # a new simulator seed changes the data, so GEARS must train again
    book.execute("01_prepare_data", {"profile": "quick", "simulator_seed": 1}, executed_dir=executed)
    book.execute("11_train_gears", {"profile": "quick"}, executed_dir=executed)
    assert stamps(data_file) != before[:1] and stamps(gears) != before_gears


@pytest.mark.slow
def test_executed_chapters_hold_no_progress_bars(quick_book):
    """Progress bars (tqdm's ``42%|████▏ | 5/12 [00:01<00:02, 3.1it/s]``) never reach a page, nor
    a stray value with a machine path (``PosixPath('/…/results/…/run.json')``)."""
    import re

    import nbformat

    bar = re.compile(r"\d+%\|.*\|\s*\d+/\d+")
    for path in sorted((quick_book / "book" / "executed").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            for output in cell.get("outputs", []):
                text = output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
                assert not bar.search(text), f"{path.name}: a progress bar in its output: {text[:120]!r}"
                assert "PosixPath(" not in text and str(quick_book) not in text, \
                    f"{path.name}: a machine path in its output: {text[:120]!r}"


@pytest.mark.slow
def test_the_books_headline_metrics_are_cell_gears_own(quick_book, monkeypatch):
    """Chapter 20's mse_de, pearson_de, mse and pearson of a stored prediction equal what
    cell-gears' ``gears.inference.compute_metrics`` computes from the same cells and predictions,
    with its DE genes read from the data's ``rank_genes_groups_cov_all`` (catches an off-by-one in
    the DE genes, or the chapter passing the non-drop-out list where the t-test ranking belongs)."""
    from gears.inference import compute_metrics

    from helpers import data, predictions

    monkeypatch.setenv("HELPERS_RESULTS_DIR", str(quick_book / "results"))
    prepared = data.load_prepared()
    adata = prepared.adata
    scored = pd.read_csv(pipeline.folder("metrics", quick_book / "results") / "per_perturbation.csv")
    for model, seed in (("additive", 0), ("gears", 1)):
        predicted = predictions.read_predictions(model, seed)
        labels = adata.obs["condition"].astype(str).to_numpy()
        name_of = dict(zip(adata.obs["condition"].astype(str), adata.obs["condition_name"].astype(str)))
        position = {g: i for i, g in enumerate(adata.var_names)}
        cells = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
        truth, pred, truth_de, pred_de, pert_cat = [], [], [], [], []
        for condition in prepared.split.test:
            rows = cells[labels == condition]
            de = [position[g] for g in adata.uns["rank_genes_groups_cov_all"][name_of[condition]][:20]]
            mean = np.tile(predicted.loc[condition, adata.var_names].to_numpy(), (len(rows), 1))
            truth.append(rows), pred.append(mean), truth_de.append(rows[:, de]), pred_de.append(mean[:, de])
            pert_cat += [condition] * len(rows)
        _, theirs = compute_metrics({"pert_cat": np.array(pert_cat), "truth": np.vstack(truth),
                                     "pred": np.vstack(pred), "truth_de": np.vstack(truth_de),
                                     "pred_de": np.vstack(pred_de)})
        ours = scored[(scored.model == model) & (scored.seed == seed)].pivot(
            index="perturbation", columns="metric", values="value")
        for metric in ("mse_de", "mse", "pearson", "pearson_de"):
            expected = pd.Series({c: theirs[c][metric] for c in prepared.split.test})
            got = ours.loc[expected.index, metric]
            defined = got.notna()  # cell-gears scores an undefined r as 0; the book leaves it out
            assert defined.sum() > 50, (model, metric)
            np.testing.assert_allclose(got[defined], expected[defined], atol=1e-6, err_msg=f"{model} {metric}")


_ONE_CELL_RUN = """
import sys, tempfile
from pathlib import Path
import nbformat, papermill
from helpers.book import _kernel_sockets
notebook = nbformat.v4.new_notebook()
notebook.cells = [nbformat.v4.new_code_cell("import os\\nprint(os.getpid())")]
with tempfile.TemporaryDirectory() as folder:
    source = Path(folder) / "in.ipynb"
    nbformat.write(notebook, source)
    papermill.execute_notebook(str(source), sys.argv[1], kernel_name="python3", progress_bar=False,
                               config=_kernel_sockets(Path(folder)))
"""


def test_kernels_started_side_by_side_each_answer_on_sockets_of_their_own(tmp_path):
    """Chapters run side by side (the workflow's jobs, the test processes) each start a kernel.
    On TCP two could take the same port and one never answered; on the sockets
    helpers.book gives each run (files in its own folder) four kernels started at once all run
    their notebook, each in a process of its own."""
    import subprocess
    import sys

    import nbformat

    outputs = [tmp_path / f"run{i}.ipynb" for i in range(4)]
    started = [subprocess.Popen([sys.executable, "-c", _ONE_CELL_RUN, str(path)], stderr=subprocess.PIPE,
                                text=True) for path in outputs]
    errors = [process.communicate(timeout=240)[1] for process in started]
    assert [process.returncode for process in started] == [0] * 4, errors
    printed = {nbformat.read(path, as_version=4).cells[0].outputs[0]["text"].strip() for path in outputs}
    assert len(printed) == 4 and all(pid.isdigit() for pid in printed)
