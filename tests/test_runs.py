"""Profiles, parameters, atomic writes and run records."""

import json

import pandas as pd
import pytest

from helpers import files, profiles, runs
from helpers.progress import PROGRESS_FILE_VARIABLE, progress_bar


def test_profiles_keep_every_condition_and_shrink_the_rest():
    quick, default, full = (profiles.get_profile(n) for n in ("quick", "default", "full"))
    assert quick.n_high_mean_genes < 1000 and quick.max_cells_per_condition <= 10 and quick.gears_steps == 8
    assert default.n_high_mean_genes is None and default.data_source == "simulated"
    assert default.max_cells_per_condition is None and default.max_control_cells is None  # Norman's counts
    assert full.data_source == "dataverse" and full.max_cells_per_condition is None


def test_explicit_parameters_win_and_unknown_ones_are_rejected():
    settings = profiles.resolve_parameters("quick", max_cells_per_condition=5, gears_steps=None)
    assert settings.max_cells_per_condition == 5 and settings.gears_steps == 8
    with pytest.raises(ValueError, match="unknown profile 'fast'.*quick"):
        profiles.get_profile("fast")
    with pytest.raises(ValueError, match="max_cell_per_condition"):
        profiles.resolve_parameters("quick", max_cell_per_condition=5)


def test_atomic_write_leaves_nothing_when_writing_fails(tmp_path):
    target = tmp_path / "table.csv"

    def explode(path):
        path.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        files.atomic_write(target, explode)
    assert list(tmp_path.iterdir()) == []
    files.atomic_write_csv(pd.DataFrame({"a": [1]}), target)
    assert pd.read_csv(target).a.tolist() == [1] and oct(target.stat().st_mode)[-3:] != "600"


def test_run_json_records_parameters_versions_and_commit(isolated_results):
    assert runs.write_run_json("99_example", {"settings": profiles.get_profile("quick"), "seed": 3}, ["a.csv"]) is None
    path = isolated_results / "99_example" / "run.json"
    record = json.loads(path.read_text())
    assert path.parent == isolated_results / "99_example"
    assert record["parameters"]["seed"] == 3 and record["parameters"]["settings"]["name"] == "quick"
    assert record["versions"]["numpy"] and record["versions"]["helpers"]
    # the tests run in a git checkout: the commit is HEAD's (marked when files differ from it)
    import subprocess

    from helpers.reference import REPO_ROOT

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    assert record["git_commit"] in (head, head + "+dirty")


def test_cache_hit_needs_same_parameters_and_outputs(isolated_results):
    params = {"seed": 1}
    runs.write_run_json("98_cached", params, ["out.csv"])
    assert not runs.is_cached("98_cached", params, ["out.csv"])  # output missing
    files.atomic_write_text(isolated_results / "98_cached" / "out.csv", "x\n")
    assert runs.is_cached("98_cached", params, ["out.csv"])
    assert not runs.is_cached("98_cached", {"seed": 2}, ["out.csv"])


def test_a_rerun_forgets_the_old_record_until_it_finishes(isolated_results):
    """A step rerun with new parameters (or forced) drops its run.json before writing, so if it
    stops half-way its mix of old and new files is never reused; the same parameters reuse."""
    files.atomic_write_text(isolated_results / "97_step" / "out.csv", "old\n")
    runs.write_run_json("97_step", {"seed": 1}, ["out.csv"])
    record = isolated_results / "97_step" / "run.json"
    assert runs.reuse_or_restart("97_step", {"seed": 1}, ["out.csv"]) and record.is_file()
    assert not runs.reuse_or_restart("97_step", {"seed": 1}, ["out.csv"], force=True)
    assert not record.exists()
    runs.write_run_json("97_step", {"seed": 1}, ["out.csv"])
    assert not runs.reuse_or_restart("97_step", {"seed": 2}, ["out.csv"]) and not record.exists()
    # ... and the interrupted run (never recorded) is not mistaken for the old one either
    assert not runs.reuse_or_restart("97_step", {"seed": 1}, ["out.csv"])
    assert (isolated_results / "97_step" / "out.csv").read_text() == "old\n"  # outputs stay for inspection


def test_fingerprint_follows_parameters_not_the_time_a_step_finished(isolated_results):
    runs.write_run_json("96_data", {"seed": 1}, [])
    first = runs.parameters_fingerprint("96_data")
    runs.write_run_json("96_data", {"seed": 1}, [])  # recomputed: same parameters, later time
    assert runs.parameters_fingerprint("96_data") == first
    runs.write_run_json("96_data", {"seed": 2}, [])
    assert runs.parameters_fingerprint("96_data") != first


def test_progress_reaches_the_console_of_the_book_runner_and_not_the_page(tmp_path, monkeypatch, capsys):
    """In a chapter run by ``helpers.book``, a progress bar goes to the runner's progress file,
    which the runner copies to its own console (a kernel's stdout and stderr end up in the page)."""
    from helpers import book

    with book._console_progress(tmp_path / "progress.log") as progress:
        monkeypatch.setenv(PROGRESS_FILE_VARIABLE, str(progress))
        for _ in progress_bar(range(5), desc="steps"):
            pass
    console = capsys.readouterr()
    assert "steps: 100%" in console.err and "5/5" in console.err
    assert "steps" not in console.out
    monkeypatch.delenv(PROGRESS_FILE_VARIABLE)
    for _ in progress_bar(range(5), desc="quiet"):  # not a terminal, no runner: silent
        pass
    assert "quiet" not in capsys.readouterr().err


def test_reference_digest_follows_the_shipped_files(tmp_path, monkeypatch):
    """The data step's cache key holds a digest of data/reference, so an edited reference file
    (e.g. a larger GO table) makes the data step, and all that depends on it, run again."""
    import shutil

    from helpers import reference

    copy = tmp_path / "reference"
    shutil.copytree(reference.REFERENCE_DIR, copy)
    monkeypatch.setattr(reference, "REFERENCE_DIR", copy)
    before = reference.reference_digest()
    assert before == reference.reference_digest()
    (copy / "README.md").write_text("documentation only")  # prose and the build script do not count
    (copy / "make_reference.py").write_text("# edited")
    assert reference.reference_digest() == before
    with open(copy / "norman_gi_fits.csv", "a") as handle:
        handle.write("\n")
    assert reference.reference_digest() != before


def test_reuse_or_compute_reads_back_what_finished_and_computes_only_the_rest(isolated_results):
    """Cached runs come back from their files; the others are handed to ``compute`` in one call
    (so they can run side by side), written, recorded and read back; an interrupted call keeps
    the runs it finished."""
    calls = []

    def compute(pending):
        calls.append([run.name for run in pending])
        for run in pending:
            yield {"table.csv": pd.DataFrame({"seed": [run.task], "value": [run.task * 0.5]}),
                   "extra.parquet": pd.DataFrame({"x": [1.0]})}

    jobs = [runs.CachedRun(f"95_step/seed={s}", {"seed": s}, s) for s in (1, 2)]
    first = runs.reuse_or_compute(jobs, ["table.csv"], compute)
    assert calls == [["95_step/seed=1", "95_step/seed=2"]]
    assert [r["table.csv"].value.item() for r in first] == [0.5, 1.0]
    assert (isolated_results / "95_step/seed=2/extra.parquet").is_file()  # extra outputs written too
    record = json.loads((isolated_results / "95_step/seed=1/run.json").read_text())
    assert record["parameters"] == {"seed": 1} and record["outputs"] == ["extra.parquet", "table.csv"]

    jobs.append(runs.CachedRun("95_step/seed=3", {"seed": 3}, 3))
    again = runs.reuse_or_compute(jobs, ["table.csv"], compute)
    assert calls[-1] == ["95_step/seed=3"]  # only the new run is computed
    assert [r["table.csv"].value.item() for r in again] == [0.5, 1.0, 1.5]
    runs.reuse_or_compute(jobs[:1], ["table.csv"], compute, force=True)
    assert calls[-1] == ["95_step/seed=1"]

    def interrupted(pending):
        yield {"table.csv": pd.DataFrame({"seed": [pending[0].task], "value": [0.0]})}
        raise KeyboardInterrupt

    changed = [runs.CachedRun(f"95_step/seed={s}", {"seed": s, "v": 2}, s) for s in (1, 2)]
    with pytest.raises(KeyboardInterrupt):
        runs.reuse_or_compute(changed, ["table.csv"], interrupted)
    assert runs.is_cached("95_step/seed=1", {"seed": 1, "v": 2}, ["table.csv"])
    assert not (isolated_results / "95_step/seed=2/run.json").exists()  # never taken as finished

    with pytest.raises(ValueError, match="seed=1: compute returned no \\['table.csv'\\]"):
        runs.reuse_or_compute(jobs[:1], ["table.csv"], lambda pending: [{}], force=True)


def test_a_step_whose_outputs_are_data_and_json_is_one_cached_run(isolated_results):
    """The data step's kind of outputs (an AnnData, a JSON text) go through the same engine:
    written atomically, recorded, and handed back as their paths when reused."""
    import anndata as ad
    import numpy as np

    made = []

    def compute(pending):
        made.append(1)
        yield {"data.h5ad": ad.AnnData(np.eye(2, dtype=np.float32)), "split.json": '{"train": ["A"]}'}

    job = runs.CachedRun("94_step", {"seed": 0})
    (first,) = runs.reuse_or_compute([job], ["data.h5ad", "split.json"], compute)
    (again,) = runs.reuse_or_compute([job], ["data.h5ad", "split.json"], compute)
    assert made == [1] and first == again == {"data.h5ad": isolated_results / "94_step" / "data.h5ad",
                                               "split.json": isolated_results / "94_step" / "split.json"}
    assert np.array_equal(ad.read_h5ad(first["data.h5ad"]).X, np.eye(2))
    assert json.loads(first["split.json"].read_text()) == {"train": ["A"]}
    with pytest.raises(ValueError, match="cannot write a .txt output"):
        runs.reuse_or_compute([runs.CachedRun("93_step", {})], ["x.txt"], lambda p: [{"x.txt": "x"}])


def test_a_code_change_invalidates_exactly_the_caches_that_depend_on_it(tmp_path, monkeypatch, isolated_results):
    """The code digest in a cache key follows the helpers modules a step computes with,
    transitively: editing one of them recomputes the step; editing a module it does not import,
    or one that only places files and draws pages, reuses it."""
    import shutil

    package = tmp_path / "helpers"
    shutil.copytree(runs.PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(runs, "PACKAGE_DIR", package)
    assert "helpers.conditions" in runs.helpers_imports("helpers.models.baselines")

    def key():
        return {"seed": 0, "code": runs.code_digest("helpers.models.baselines")}

    runs.write_run_json("97_baselines", key(), [])
    assert runs.is_cached("97_baselines", key(), [])

    def edit(relative, text="\n# an edit\n"):
        with open(package / relative, "a") as handle:
            handle.write(text)

    for unrelated in ("models/genemamba.py", "gi.py", "runs.py", "plots.py"):
        edit(unrelated)
        assert runs.is_cached("97_baselines", key(), []), unrelated  # reused
    edit("conditions.py")  # imported by baselines: its results may change
    assert not runs.is_cached("97_baselines", key(), [])
    runs.write_run_json("97_baselines", key(), [])
    edit("models/baselines.py")
    assert not runs.is_cached("97_baselines", key(), [])
    with pytest.raises(ValueError, match="not a module"):
        runs.code_digest("helpers.nowhere")


def test_every_cached_step_keys_on_its_code():
    """Each chapter that caches results puts a code digest of what it computes with into the
    cache key (a chapter that forgot it would serve results of old code after a fix)."""
    from helpers.reference import REPO_ROOT

    from helpers.models import registry

    # the baselines' key covers the registry and every registered baseline's module
    assert registry.baseline_modules() == ["helpers.models.baselines"]
    expected = {"10_train_baselines": "helpers.models.registry",
                "11_train_gears": "helpers.models.gears", "12_pretrain_genemamba": "helpers.models.genemamba",
                "14_train_gears_priors": "helpers.models.gears"}
    import re

    for chapter, module in expected.items():
        source = (REPO_ROOT / "notebooks" / f"{chapter}.py").read_text()
        assert re.search(rf'runs\.code_digest\(\s*"{re.escape(module)}"', source), chapter
    scoring = (REPO_ROOT / "src" / "helpers" / "scoring.py").read_text()
    assert 'runs.code_digest("helpers.gi")' in scoring
    # the data step's key: the module that prepares the data, and everything it imports
    preparation = (REPO_ROOT / "src" / "helpers" / "preparation.py").read_text()
    assert 'runs.code_digest("helpers.preparation")' in preparation
    assert {"helpers.data", "helpers.de_genes", "helpers.simulator"} <= runs.helpers_imports("helpers.preparation")
