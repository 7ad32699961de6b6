"""The book's Snakemake workflow (workflow/Snakefile): the jobs it plans, a run on a simulated
cluster that matches the plain local run, and the JupyterLab pairing of the sources."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers import book, profiles
from helpers.reference import REPO_ROOT

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
SNAKEFILE = str(REPO_ROOT / "workflow" / "Snakefile")


def _job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a snakemake run, as rule → number of jobs."""
    table = output[output.index("Job stats:"):]
    counts = {}
    for line in table.splitlines()[3:]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not match or match.group(1) == "total":
            break
        counts[match.group(1)] = int(match.group(2))
    return counts


@pytest.mark.parametrize("profile", ["default", "full"])
def test_dry_run_lists_a_job_per_chapter_and_per_run(profile, tmp_path):
    """Locally one job per chapter; fanned out (a cluster), one more per GEARS seed, one per
    prior × seed, and one per model-seed's GI scores (and the truth's); no job trains a run the
    book does not use (where priors enter is read from benchmarks/prior_target.py's table)."""
    from helpers.models import registry

    environment = {**os.environ, "HELPERS_RESULTS_DIR": str(tmp_path / "results")}
    seeds = profiles.get_profile(profile).seeds
    chapters = len(book.toc_notebooks())
    baselines = registry.registered("baseline")
    assert [m.name for m in baselines if not m.interactions] == ["no_change"]  # nothing to score
    scored = len(baselines) - 1 + 3 * len(seeds)
    for fan_out, expected in [
        ("false", {"chapter": chapters, "all": 1}),
        ("true", {"chapter": chapters, "gears": len(seeds),
                  "gears_prior": 2 * len(seeds), "gi_truth": 1, "gi_model": scored, "all": 1}),
    ]:
        result = subprocess.run(
            [SNAKEMAKE, "--snakefile", SNAKEFILE, "--directory", str(tmp_path), "--dry-run",
             "--cores", "2", "--config", f"profile={profile}", f"fan_out={fan_out}",
             f"executed_dir={tmp_path / 'executed'}"],
            capture_output=True, text=True, env=environment, check=True)
        assert _job_counts(result.stdout) == expected, (fan_out, result.stdout[-2000:])


def test_gears_settings_reach_every_gears_job_and_no_other(tmp_path):
    """One configuration path: `--config gears_config=...` reaches chapters 11 and 14 and each of
    their fanned-out GEARS jobs, and nothing else."""
    environment = {**os.environ, "HELPERS_RESULTS_DIR": str(tmp_path / "results")}
    result = subprocess.run(
        [SNAKEMAKE, "--snakefile", SNAKEFILE, "--directory", str(tmp_path), "--dry-run", "--printshellcmds",
         "--cores", "2", "--config", "profile=quick", "fan_out=true", "gears_config={'hidden_size': 16}",
         f"executed_dir={tmp_path / 'executed'}"],
        capture_output=True, text=True, env=environment, check=True)
    commands = [line for line in result.stdout.splitlines() if "-m helpers." in line]
    given = [c for c in commands if "-p gears_config \"{'hidden_size': 16}\"" in c]
    training = [c for c in commands if "--only 11_train_gears" in c or "--only 14_train_gears_priors" in c]
    assert len(training) == 2 + 1 + 2 * 1  # the two chapters, a GEARS seed, each prior
    assert sorted(given) == sorted(training)


def test_a_gears_setting_overrides_the_profile_and_an_unknown_one_is_refused():
    from helpers.models.gears_module import GearsConfig

    config = GearsConfig.from_settings({"hidden_size": 32, "lr": 5e-3}, {"hidden_size": 16})
    assert (config.hidden_size, config.lr, config.batch_size) == (16, 5e-3, 32)
    assert GearsConfig.from_settings(profiles.get_profile("default").gears_config, None) == GearsConfig()
    with pytest.raises(ValueError, match=r"unknown GEARS setting\(s\) \['hiden_size'\]"):
        GearsConfig.from_settings(None, {"hiden_size": 16})


def _overlap(log: Path) -> int:
    """The most jobs that were running at one time, from the submit script's log."""
    events = []
    for line in log.read_text().splitlines():
        kind, time = line.split()[:2]
        events.append((float(time), 1 if kind == "start" else -1))
    running = peak = 0
    for _, change in sorted(events, key=lambda e: (e[0], e[1])):
        running += change
        peak = max(peak, running)
    return peak


def _failed_jobs(log: Path) -> str:
    """Each job that exited non-zero, by the submit script's log: its script, exit status and
    the last lines of its output (kept in job_logs/ beside the log)."""
    if not log.exists():
        return ""
    reports = []
    for line in log.read_text().splitlines():
        kind, _, script, *status = line.split()
        if kind == "end" and status != ["0"]:
            output = log.parent / "job_logs" / f"{Path(script).name}.out"
            tail = output.read_text()[-3000:] if output.exists() else "(no output kept)"
            reports.append(f"\n--- {Path(script).name} exited {' '.join(status)}:\n{tail}")
    return "".join(reports)


@pytest.mark.slow
@pytest.mark.long(5)
def test_quick_book_on_a_simulated_cluster_matches_the_local_run(request, tmp_path):
    """The quick book through snakemake's cluster-generic executor, whose submit command starts
    every job as a separate process (tests/local_cluster_submit.sh), with every run fanned out:
    several jobs run at once, and every table equals the plain local run's (the quick_book
    fixture), wall-clock columns aside. This is also the book's reproducibility check: a second
    clean run with the same parameters gives identical numbers (seeds are the only source of
    randomness). Both runs use the same threads per process: numbers can differ in their last
    bits between thread counts. The local run is asked for only once this one has finished, so
    that two test processes can build both at the same time."""
    from helpers.models.torch_runtime import available_cores

    results, executed, log = tmp_path / "results", tmp_path / "executed", tmp_path / "submitted.log"
    threads = available_cores()  # what the local run's kernels used (helpers.book's default)
    environment = {**os.environ, "HELPERS_RESULTS_DIR": str(results), "SUBMIT_LOG": str(log)}
    environment.pop("OMP_NUM_THREADS", None)
    result = subprocess.run(
        [SNAKEMAKE, "--snakefile", SNAKEFILE, "--directory", str(tmp_path),
         "--executor", "cluster-generic",
         "--cluster-generic-submit-cmd", str(REPO_ROOT / "tests" / "local_cluster_submit.sh"),
         "--jobs", "4", "--latency-wait", "5", "--seconds-between-status-checks", "1",
         "--config", "profile=quick", "fan_out=true", f"executed_dir={executed}",
         f"gears_threads={threads}", f"chapter_threads={threads}"],
        capture_output=True, text=True, env=environment)
    assert result.returncode == 0, result.stderr[-3000:] + _failed_jobs(log)
    counts = _job_counts(result.stderr + result.stdout)
    assert counts["gears"] == 1 and counts["gears_prior"] == 2 and "gears_prior_choice" not in counts
    from helpers.models import registry

    baselines = registry.registered("baseline")
    assert counts["gi_truth"] == 1 and counts["gi_model"] == len(baselines) - 1 + 3  # one seed each
    assert sorted(p.stem for p in executed.glob("*.ipynb")) == sorted(book.toc_notebooks())
    assert _overlap(log) >= 2, log.read_text()

    first = request.getfixturevalue("quick_book") / "results"
    tables = sorted(p.relative_to(first) for p in first.glob("*/*.csv") if "run" not in p.name)
    assert len(tables) > 5
    for table in tables:
        ours, theirs = (pd.read_csv(root / table) for root in (first, results))
        ours, theirs = (t.drop(columns=["seconds", "tokens_per_s"], errors="ignore") for t in (ours, theirs))
        pd.testing.assert_frame_equal(ours, theirs, check_exact=True, obj=str(table))


@pytest.mark.slow
def test_every_notebook_opens_in_jupyterlab_and_saves_back_unchanged(tmp_path):
    """A JupyterLab server, as `make lab` starts it (its jupytext extension, jupytext.toml),
    serves each notebooks/*.py as a notebook (tagged parameters cell included), and saving it
    with outputs and run metadata writes the same py:percent text back, and no .ipynb."""
    import shutil
    import socket
    import time

    import requests

    shutil.copy(REPO_ROOT / "jupytext.toml", tmp_path / "jupytext.toml")
    shutil.copytree(REPO_ROOT / "notebooks", tmp_path / "notebooks")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    token = "book-test"
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", f"--port={port}",
         "--ip=127.0.0.1", "--allow-root", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={tmp_path}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    api = f"http://127.0.0.1:{port}/api/contents"
    headers = {"Authorization": f"token {token}"}
    try:
        for _ in range(120):
            if server.poll() is not None:
                break
            try:
                if requests.get(api, headers=headers, timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        else:
            server.kill()
            pytest.fail(f"JupyterLab did not start: {server.communicate()[1][-2000:]}")
        for name in book.toc_notebooks():
            path = f"notebooks/{name}.py"
            original = (tmp_path / path).read_text()
            model = requests.get(f"{api}/{path}", params={"type": "notebook"}, headers=headers,
                                 timeout=30).json()
            assert model["type"] == "notebook", (name, model)
            cells = model["content"]["cells"]
            assert any("parameters" in c["metadata"].get("tags", []) for c in cells), name
            code = next(c for c in cells if c["cell_type"] == "code")
            code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "output\n"}]
            code["execution_count"] = 1
            code["metadata"]["execution"] = {"iopub.status.busy": "2026-12-01T00:00:00Z"}
            saved = requests.put(f"{api}/{path}", json={"type": "notebook", "format": "json",
                                                        "content": model["content"]},
                                 headers=headers, timeout=30)
            assert saved.ok, saved.text
            assert (tmp_path / path).read_text() == original, name
        assert not list((tmp_path / "notebooks").glob("*.ipynb"))
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_scoring_job_takes_chapter_22s_parameters_and_nothing_else(capsys):
    """A scoring job scores as chapter 22 does: its defaults are the chapter's (threads aside,
    which the results do not depend on), and it refuses a parameter the chapter does not take."""
    from helpers import scoring

    chapter = book.notebook_parameters(REPO_ROOT / "notebooks" / f"{scoring.STEP}.py")
    shared = {name: chapter[name] for name in scoring.SCORING_DEFAULTS if name != "n_jobs"}
    assert shared == {k: v for k, v in scoring.SCORING_DEFAULTS.items() if k != "n_jobs"}
    with pytest.raises(SystemExit):
        scoring.main(["--model", "gears", "-p", "engin", "fast"])
    error = capsys.readouterr().err
    assert "unknown parameter 'engin'" in error and "'max_subpopulation'" in error


def test_every_chapter_runs_after_the_chapters_whose_results_it_reads(tmp_path):
    """The workflow's DAG orders each chapter after every chapter that writes what it reads, as
    read off the chapter's source (the prepared data, stored predictions, the metrics and GI
    tables, another step's folder by name). A dependency missing from the Snakefile would let
    a cluster run a chapter on results not yet written (or stale ones)."""
    environment = {**os.environ, "HELPERS_RESULTS_DIR": str(tmp_path / "results")}
    result = subprocess.run(
        [SNAKEMAKE, "--snakefile", SNAKEFILE, "--directory", str(tmp_path), "--dag", "--cores", "2",
         "--config", "profile=quick", f"executed_dir={tmp_path / 'executed'}"],
        capture_output=True, text=True, env=environment, check=True)
    names = dict(re.findall(r'(\d+)\[label = "chapter\\nchapter: (\w+)"', result.stdout))
    parents: dict[str, set[str]] = {name: set() for name in names.values()}
    for source, target in re.findall(r"(\d+) -> (\d+)", result.stdout):
        if source in names and target in names:
            parents[names[target]].add(names[source])

    def ancestors(chapter):
        found, pending = set(), list(parents[chapter])
        while pending:
            parent = pending.pop()
            if parent not in found:
                found.add(parent)
                pending += parents[parent]
        return found

    chapters = book.toc_notebooks()
    writers = {  # what a chapter's source reads → the chapters that write it (read off by hand)
        r'load_prepared|read_prepared|"prepared_data"|PREPARE_DATA': {"01_prepare_data"},
        # every stored model's predictions (chapter 10 reads back only its own)
        r"available_predictions|for_evaluation": {"10_train_baselines", "11_train_gears",
                                                  "14_train_gears_priors"},
        r'"gears_runs"': {"11_train_gears"},
        r'"genemamba"|steps\.PRETRAIN_GENEMAMBA': {"12_pretrain_genemamba"},
        r'"embeddings"': {"13_gene_embeddings"},
        r'"prior_runs"': {"14_train_gears_priors"},
        r'"metrics"': {"20_evaluate_perturbations"},
        r'"gi"': {"22_analyse_interactions"},
    }
    checked = 0
    for chapter in chapters:
        source = (REPO_ROOT / "notebooks" / f"{chapter}.py").read_text()
        reads = set().union(*(w for pattern, w in writers.items() if re.search(pattern, source))) - {chapter}
        missing = reads - ancestors(chapter)
        assert not missing, f"{chapter} reads results of {sorted(missing)} but does not run after them"
        checked += len(reads)
    assert checked > 15
