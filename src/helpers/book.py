"""Execute the book's notebooks in ``_toc.yml`` order with papermill.

The ``notebooks/NN_verb_object.py`` files (py:percent) are the source of truth. Each is
converted to a fresh ``.ipynb`` and executed into ``book/executed/NN_verb_object.ipynb``, which
the book renders; nothing is written back into the ``.py``. Usage::

    python -m helpers.book --profile quick            # every chapter
    python -m helpers.book --only 01_prepare_data -p simulator_seed 3
    python -m helpers.book --data /path/to/perturb_processed.h5ad   # real data (or --data dataverse)

The data source is a choice for the whole book: it reaches the data step only (later chapters
read what that step prepared), and each data source keeps its own results root
(``helpers.roots.results_root_for``: the simulated default in ``results/``, real data in
``results/real/<tag>/``), so neither overwrites the other. The executed chapters and the HTML
book show the latest build.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import os
import re
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from helpers import pipeline
from helpers.datasets import of_prepared
from helpers.reference import REPO_ROOT
from helpers.profiles import PROFILES
from helpers.progress import PROGRESS_FILE_VARIABLE
from helpers.files import atomic_path, atomic_write_csv
from helpers.roots import resolve_data_source, results_root_for

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
EXECUTED_DIR = REPO_ROOT / "book" / "executed"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def toc_notebooks(toc_path: Path = REPO_ROOT / "_toc.yml") -> list[str]:
    """Names of the executed notebooks the table of contents lists, in order."""
    toc = yaml.safe_load(Path(toc_path).read_text())
    files: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            file = node.get("file")
            if isinstance(file, str) and file.startswith("book/executed/"):
                files.append(Path(file).name)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return files


# a py:percent cell marker tagged 'parameters', e.g. `# %% tags=["parameters"]`
_PARAMETERS_MARKER = re.compile(r'^# %%.*\btags=\[[^\]]*"parameters"')


def notebook_parameters(source: Path) -> dict[str, Any]:
    """Names and defaults of the ``parameters`` cell of a py:percent notebook.

    Read from the text (the lines between the tagged cell marker and the next ``# %%``), not
    through jupytext, whose import takes seconds: the Snakefile calls this on every job's start.
    """
    lines = Path(source).read_text().splitlines()
    markers = [i for i, line in enumerate(lines) if line.startswith("# %%")]
    tagged = [i for i in markers if _PARAMETERS_MARKER.match(lines[i])]
    if len(tagged) != 1:
        raise ValueError(f"{source}: expected exactly one cell tagged 'parameters', found {len(tagged)}")
    end = next((i for i in markers if i > tagged[0]), len(lines))
    tree = ast.parse("\n".join(lines[tagged[0] + 1:end]))
    return {target.id: ast.literal_eval(node.value) for node in tree.body
            if isinstance(node, ast.Assign) for target in node.targets if isinstance(target, ast.Name)}


def execute(name: str, parameters: dict[str, Any], executed_dir: Path = EXECUTED_DIR) -> Path:
    """Run ``notebooks/<name>.py`` with ``parameters`` into ``executed_dir/<name>.ipynb``.

    Unknown parameter names are rejected (papermill would silently add them). A failed run is
    kept as ``<name>.failed.ipynb`` for inspection and leaves the previous output untouched.
    """
    source = NOTEBOOK_DIR / f"{name}.py"
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist; _toc.yml lists book/executed/{name}")
    known = notebook_parameters(source)
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ValueError(f"{source.name}: unknown parameter(s) {unknown}; it takes {sorted(known)}")
    # here, not at the top: the Snakefile imports this module on every job's start and needs
    # neither torch, papermill nor jupytext
    import jupytext
    import papermill

    from helpers.models.torch_runtime import thread_environment

    executed_dir.mkdir(parents=True, exist_ok=True)
    output = executed_dir / f"{name}.ipynb"
    with tempfile.TemporaryDirectory() as tmp, _environment(thread_environment()):
        unexecuted = Path(tmp) / f"{name}.ipynb"
        notebook = jupytext.read(source)
        question = pipeline.step(name).pairs_question if name in pipeline.STEP_NAMES else None
        dataset = of_prepared() if question else None
        if dataset is not None and not dataset.pairs:
            notebook = _without_pairs(notebook, question)
        notebook.metadata["kernelspec"] = KERNELSPEC  # the sources carry no metadata (jupytext.toml)
        jupytext.write(notebook, unexecuted)
        with atomic_path(output) as partial:
            try:
                papermill.execute_notebook(str(unexecuted), str(partial), parameters=parameters,
                                           kernel_name="python3", cwd=str(REPO_ROOT),
                                           progress_bar=False, config=_kernel_sockets(Path(tmp)))
            except papermill.PapermillExecutionError:
                partial.replace(executed_dir / f"{name}.failed.ipynb")
                raise
    (executed_dir / f"{name}.failed.ipynb").unlink(missing_ok=True)
    return output


def _kernel_sockets(folder: Path) -> Any:
    """The kernel's configuration: its sockets are files in ``folder`` (this run's own), not TCP
    ports. A kernel on TCP gets its ports by binding free ones and releasing them for the kernel
    to take; kernels started side by side (the workflow's jobs, the test processes) could take
    the same port, and the one that lost never answered ("Address already in use", then
    "Kernel didn't respond in 60 seconds": seen in the suite on 2 cores). Windows has no
    such sockets: TCP there."""
    from traitlets.config import Config

    if os.name == "nt":
        return Config()
    return Config({"KernelManager": {"transport": "ipc", "ip": str(folder / "kernel")}})


def _without_pairs(notebook: Any, question: str) -> Any:
    """The page of a chapter whose question needs two-gene perturbations, on data that has none:
    its title and introduction, its parameters, and one computed sentence saying why nothing
    follows (no traceback, no empty figure)."""
    import nbformat

    title = next(c for c in notebook.cells if c.cell_type == "markdown")
    parameters = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    sentence = nbformat.v4.new_code_cell(
        "from IPython.display import Markdown, display\n\n"
        "from helpers import datasets, runs\n\n"
        "display(Markdown(runs.data_statement(profile)))\n"
        f"display(Markdown(datasets.needs_pairs(datasets.of_prepared(), {question!r})))",
        metadata={"tags": ["remove-input"]})
    notebook.cells = [title, parameters, sentence]
    return notebook


@contextlib.contextmanager
def _console_progress(path: Path, interval: float = 0.5) -> Iterator[Path]:
    """Copy what chapters write to the progress file ``path`` (their progress bars, see
    :func:`helpers.progress.progress_bar`) to this process's console while the block runs."""
    import threading

    path.touch()
    stop = threading.Event()

    def follow() -> None:
        with open(path, encoding="utf-8") as source:
            while True:
                chunk = source.read()
                if chunk:
                    sys.stderr.write(chunk)
                    sys.stderr.flush()
                elif stop.is_set():
                    return
                else:
                    time.sleep(interval)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        stop.set()
        thread.join(timeout=5)


DATA_STATEMENT = "data_source.md"  # included by book/intro.md


def write_data_statement(profile: str, executed_dir: Path = EXECUTED_DIR) -> Path:
    """Write the build's data and budget statement (:func:`helpers.runs.data_statement`, from the
    current results root) beside the executed chapters, where the book's first page includes it."""
    from helpers.files import atomic_write_text
    from helpers.runs import data_statement

    executed_dir.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(executed_dir / DATA_STATEMENT, data_statement(profile) + "\n")


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (the kernel papermill starts inherits them)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def parse_value(text: str) -> Any:
    """A command-line parameter value: a Python literal where it parses as one, else the text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv: list[str] | None = None, executed_dir: Path = EXECUTED_DIR) -> int:
    parser = argparse.ArgumentParser(description="Execute the book's notebooks with papermill.")
    parser.add_argument("--profile", default="default", choices=sorted(PROFILES))
    parser.add_argument("--only", action="append", help="run only this notebook (repeatable)")
    parser.add_argument("--data", default=None, metavar="SOURCE",
                        help="data source for the whole book: 'simulated', 'dataverse' or the path of "
                             "a GEARS-format .h5ad (default: the profile's)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="extra notebook parameter")
    parser.add_argument("--executed-dir", type=Path, default=executed_dir,
                        help="where the executed notebooks go (default: the book's book/executed)")
    parser.add_argument("--job", default=None,
                        help="name of this run in book_timings.csv (default: the notebook's; the "
                             "workflow names its jobs, e.g. gears/seed=1)")
    args = parser.parse_args(argv)
    executed_dir = args.executed_dir.resolve()
    names = toc_notebooks()
    if args.only:
        missing = sorted(set(args.only) - set(names))
        if missing:
            parser.error(f"not in _toc.yml: {missing}; chapters are {names}")
        names = [n for n in names if n in args.only]
    extra = {name: parse_value(value) for name, value in args.parameter}
    data_source = resolve_data_source(args.data or extra.pop("data_source", None), args.profile)
    extra.pop("data_source", None)
    root = results_root_for(data_source)
    print(f"[book] data: {data_source}; results in {root}", flush=True)
    timings = []
    with tempfile.TemporaryDirectory() as tmp, _console_progress(Path(tmp) / "progress.log") as progress:
        for name in names:
            print(f"[book] executing {name} (profile={args.profile})", flush=True)
            start = time.perf_counter()
            with _environment({"HELPERS_RESULTS_DIR": str(root), PROGRESS_FILE_VARIABLE: str(progress)}):
                execute(name, {"profile": args.profile, **extra,
                               **({"data_source": data_source} if name == pipeline.PREPARE_DATA else {})}, executed_dir)
            seconds = time.perf_counter() - start
            # the largest resident set of any kernel so far (kernels are children of this process)
            peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            timings.append({"job": args.job or name, "notebook": name, "profile": args.profile,
                            "seconds": round(seconds, 1),
                            "peak_kernel_rss_so_far_mib": round(peak_mib)})
            print(f"\n[book] {name}: {seconds:.0f} s", flush=True)
    with _environment({"HELPERS_RESULTS_DIR": str(root)}):
        write_data_statement(args.profile, executed_dir)
    # keep the times of jobs not rerun this time (an `--only` run updates its own rows)
    path = root / "book_timings.csv"
    with _locked(path.with_suffix(".lock")):  # workflow jobs finish side by side
        earlier = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["job", "profile"])
        if "job" not in earlier:  # written before jobs were named
            earlier["job"] = earlier["notebook"]
        rerun = earlier.set_index(["job", "profile"]).index.isin(
            [(t["job"], t["profile"]) for t in timings])
        atomic_write_csv(pd.concat([earlier[~rerun], pd.DataFrame(timings)], ignore_index=True), path)
    print(f"[book] all notebooks: {sum(t['seconds'] for t in timings):.0f} s "
          f"(per notebook: {path})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
