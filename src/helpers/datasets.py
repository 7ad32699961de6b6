"""The data sets the book runs on, declared once.

A data set says what its screen supports, so that every chapter asks it rather than assuming
Norman's design: which GEARS split it takes and so which test subgroups exist, whether it has
two-gene perturbations (the combination and GI chapters' questions) and whether Norman's GI
fits and GEARS' verified GI labels describe it. Which one a file holds is read from its
conditions (:func:`detect`): ``make book DATA=<file>`` needs no other flag.

Sources: ``simulated`` (the default: expression simulated on Norman's scaffold), ``dataverse``
(GEARS' processed Norman file) and the path of a local GEARS-format ``.h5ad`` of either kind.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from helpers.conditions import CONTROL, is_combo
from helpers.splits import SUBGROUPS


@dataclass(frozen=True)
class Dataset:
    """What a screen supports; the chapters ask it instead of assuming Norman's design."""

    name: str
    title: str  # how the pages name it
    cell_type: str | None  # every cell relabelled to this (None: the file's own labels)
    pairs: bool  # two-gene perturbations: the combination subgroups, chapters 21 and 22
    gi_reference: bool  # Norman's GI fits and GEARS' verified GI labels describe it
    split_name: str  # GEARS' split (``helpers.splits``)
    subgroups: tuple[str, ...]  # its test subgroups, easiest first where there are several


NORMAN = Dataset(
    name="norman",
    title="Norman et al. 2019 (K562, CRISPRa, single genes and pairs)",
    # GEARS' Norman file labels every cell 'A549'; Norman screened K562 cells
    cell_type="K562", pairs=True, gi_reference=True, split_name="simulation", subgroups=SUBGROUPS)
SINGLE_GENE = Dataset(
    name="single_gene",
    title="a single-gene screen in GEARS' format (such as GEARS' adamson or replogle_k562_essential)",
    cell_type=None, pairs=False, gi_reference=False, split_name="simulation_single",
    subgroups=("unseen_single",))

def detect(conditions: Iterable[str]) -> Dataset:
    """The data set a list of GEARS conditions belongs to: with two-gene perturbations, Norman's
    design (his GI fits are matched pair by pair, so pairs he did not fit are simply not
    compared); with single genes only, a single-gene screen."""
    conditions = [c for c in conditions if c != CONTROL]
    return NORMAN if any(map(is_combo, conditions)) else SINGLE_GENE


def needs_pairs(dataset: Dataset, question: str) -> str | None:
    """``None`` when ``dataset`` can answer a question about two-gene perturbations; otherwise
    the one sentence a chapter shows in place of its figures."""
    if dataset.pairs:
        return None
    return (f"This chapter asks {question}, which needs two-gene perturbations; the data is "
            f"{dataset.title} and has none, so there is nothing to show here.")


def of_source(data_source: str) -> Dataset:
    """The data set a data source holds, before the data step has run: Norman's for the named
    sources, else read from the file's ``obs['condition']`` alone."""
    if data_source in ("simulated", "dataverse"):
        return NORMAN
    import h5py
    from anndata.io import read_elem

    with h5py.File(Path(data_source), "r") as file:
        return detect(pd.Series(read_elem(file["obs"]["condition"])).astype(str).unique())


def of_prepared(root: Path | None = None) -> Dataset | None:
    """The data set the data step prepared in results root ``root`` (default: the current one),
    from its cells-per-condition table; None before the data step has run."""
    from helpers.pipeline import folder

    table = folder("prepared_data", root) / "cells_per_condition.csv"
    return detect(pd.read_csv(table).condition.astype(str)) if table.is_file() else None
