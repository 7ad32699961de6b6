"""A single-gene screen through the book: a stand-in laid out as GEARS' ``replogle_k562_essential``
and ``adamson`` files (``tests/real_layout.py``) is recognised from its conditions, split as GEARS
splits single-gene data, and runs `make book DATA=<file> PROFILE=quick` end to end into its own
results root, with the chapters whose question needs pairs saying so in one sentence."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from helpers import book, data, datasets, pipeline, reference, roots, splits
from helpers.reference import REPO_ROOT
from real_layout import single_gene_layout_adata, write_single_gene_layout


@pytest.fixture(scope="module")
def single_gene_file(tmp_path_factory) -> Path:
    return write_single_gene_layout(tmp_path_factory.mktemp("single_gene"))


def test_a_single_gene_file_is_recognised_from_its_conditions(single_gene_file):
    assert datasets.of_source(str(single_gene_file)) is datasets.SINGLE_GENE
    assert datasets.of_source("simulated") is datasets.NORMAN is datasets.detect(["ctrl", "A+ctrl", "A+B"])
    adata = data.read_gears_h5ad(single_gene_file)
    # the file's own cell line is kept (Norman's file is relabelled: its 'A549' cells are K562)
    assert (adata.obs["cell_type"] == "K562").all() and "cell_type_original" not in adata.obs
    assert datasets.needs_pairs(datasets.NORMAN, "x") is None
    assert "needs two-gene perturbations" in datasets.needs_pairs(datasets.SINGLE_GENE, "which pairs interact")


def test_the_single_gene_split_is_gears_own():
    """``simulation_single`` equals cell-gears' ``DataSplitter(split_type='simulation_single')``."""
    from gears.data_utils import DataSplitter

    adata = single_gene_layout_adata(n_perturbed=60, n_genes=120, cells_per_condition=2, control_cells=10)
    theirs = DataSplitter(adata.copy(), split_type="simulation_single").split_data(
        train_gene_set_size=0.75, seed=1).obs
    conditions = adata.obs["condition"].astype(str).unique().tolist()
    ours = splits.make_split("simulation_single", conditions, set(reference.gene2go()), seed=1)
    for name in ("train", "val", "test"):
        assert sorted(getattr(ours, name)) == sorted(theirs.condition[theirs.split == name].unique()), name
    assert ours.subgroups == ("unseen_single",) and ours.test_subgroup["unseen_single"] == ours.test
    assert len(ours.test) == 15 and ours.easiest == "unseen_single"
    with pytest.raises(ValueError, match="simulation_single"):  # Norman's split needs pairs
        splits.make_split("simulation", conditions, set(reference.gene2go()), seed=1)
    with pytest.raises(ValueError, match="two-gene combinations"):  # and the single split refuses them
        splits.make_split("simulation_single", [*conditions, "NOC2L+ISG15"], set(reference.gene2go()))


class _Text(HTMLParser):
    """The visible text of a page, scripts and styles left out."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style")

    def handle_data(self, text):
        if not self._skip:
            self.parts.append(text)


def _page_text(path: Path) -> str:
    parser = _Text()
    parser.feed(path.read_text())
    return " ".join(" ".join(parser.parts).split()).replace("’", "'")  # Sphinx's smart quotes


@pytest.mark.slow
@pytest.mark.long(3)
def test_make_book_runs_on_a_single_gene_screen(single_gene_file, tmp_path):
    """What `make book DATA=<file> PROFILE=quick` runs (the workflow, then the HTML), in a
    folder of its own: every chapter's page renders, the results go to the file's own root."""
    for name in ("_config.yml", "_toc.yml", "book/intro.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    shutil.copytree(REPO_ROOT / "_static", tmp_path / "_static")
    base, executed = tmp_path / "results", tmp_path / "book" / "executed"
    environment = {**os.environ, "HELPERS_RESULTS_DIR": str(base)}
    bin_dir = Path(sys.executable).parent
    workflow = subprocess.run(
        [str(bin_dir / "snakemake"), "--snakefile", str(REPO_ROOT / "workflow" / "Snakefile"),
         "--directory", str(tmp_path), "--cores", "2", "--config", "profile=quick",
         f"data={single_gene_file}", f"executed_dir={executed}"],
        capture_output=True, text=True, env=environment)
    assert workflow.returncode == 0, workflow.stderr[-3000:]
    subprocess.run([str(bin_dir / "jupyter-book"), "build", "--quiet", str(tmp_path)], check=True,
                   capture_output=True)

    root = roots.results_root_for(str(single_gene_file), base)
    assert root.parent == base / "real" and not (base / pipeline.PREPARE_DATA).exists()
    split = splits.SimulationSplit.from_json(pipeline.folder("prepared_data", root) / "split.json")
    assert split.name == "simulation_single" and split.subgroups == ("unseen_single",)
    summary = pd.read_csv(pipeline.folder("metrics", root) / "summary.csv")
    assert set(summary.subgroup) == {"unseen_single", "all"}
    assert {"gears", "linear", "additive"} <= set(summary.model)
    assert not pipeline.folder("gi", root).exists()  # no interactions to score without pairs

    html = tmp_path / "_build" / "html" / "book" / "executed"
    for name in book.toc_notebooks():
        page = (html / f"{name}.html").read_text()
        text = _page_text(html / f"{name}.html")
        assert "Traceback" not in text, name
        assert "Data: perturb_processed.h5ad" in text, name
        question = pipeline.step(name).pairs_question
        if question:  # one computed sentence, no figure
            assert f"This chapter asks {question}, which needs two-gene perturbations" in text, name
            assert datasets.SINGLE_GENE.title in text and "<img" not in page, name
        else:
            assert "What we found" in text and "<img" in page, name
    first = _page_text(html / f"{pipeline.PREPARE_DATA}.html")
    assert re.search(r"The split is GEARS' simulation_single split: \d+ training conditions", first), first[-2000:]
