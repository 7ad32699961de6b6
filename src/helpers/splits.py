"""GEARS' simulation split (Roohani et al. 2023) and its test subgroups.

The algorithm is cell-gears 0.1.2 ``DataSplitter(split_type='simulation')``, rewritten as pure
functions with an explicit random state (the same Mersenne-Twister stream GEARS draws from
``np.random.seed``), so it reproduces GEARS' Norman split exactly:

1. conditions whose genes lack GO annotation are dropped (GEARS' ``filter_pert_in_go``);
2. a share ``train_gene_set_size`` of the perturbed genes is drawn as *seen* genes; singles of
   seen genes go to train, singles of the rest are ``unseen_single`` test perturbations;
3. combinations with exactly one seen gene are ``combo_seen1``, with none ``combo_seen0``;
   of those with two seen genes a share ``combo_seen2_train_frac`` trains and the rest are
   ``combo_seen2`` test perturbations;
4. validation is carved from train by the same procedure with shares 0.9 and 0.9;
5. control cells (``ctrl``) are added to train.

For a single-gene screen GEARS' ``simulation_single`` split draws the seen genes the same way
(the same stream, so it equals steps 1, 2, 4 and 5 on data without pairs) and has one test
subgroup, ``unseen_single``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.conditions import CONTROL, condition_genes, genes_of, is_combo, is_single

# GEARS' split types; this study is built on the first (its test subgroups are the questions).
SPLIT_NAMES = ("simulation", "simulation_single")
GEARS_SPLITS_NOT_BUILT = ("combo_seen0", "combo_seen1", "combo_seen2", "single",
                          "no_test", "no_split")
SUBGROUPS = ("combo_seen0", "combo_seen1", "combo_seen2", "unseen_single")
# Easiest first: both genes of a combo seen as singles in training, then one, then none.
SUBGROUPS_BY_DIFFICULTY = ("combo_seen2", "combo_seen1", "combo_seen0", "unseen_single")
# what each subgroup holds, for sentences ("over the 19 {…}")
SUBGROUP_MEMBERS = {"combo_seen2": "test pairs whose genes were both seen alone",
                    "combo_seen1": "test pairs with one gene seen alone",
                    "combo_seen0": "test pairs with neither gene seen", "unseen_single": "unseen single genes"}


@dataclass(frozen=True)
class SimulationSplit:
    """Train/validation/test perturbations and the subgroups of test and validation."""

    train: list[str]
    val: list[str]
    test: list[str]
    test_subgroup: dict[str, list[str]]
    val_subgroup: dict[str, list[str]]
    excluded_not_in_go: list[str]
    seed: int
    train_gene_set_size: float
    combo_seen2_train_frac: float
    name: str = "simulation"  # GEARS' split type: 'simulation' or 'simulation_single'

    @property
    def subgroups(self) -> tuple[str, ...]:
        """The test subgroups this split has, in :data:`SUBGROUPS` order."""
        return tuple(s for s in SUBGROUPS if s in self.test_subgroup)

    def set_of(self, condition: str) -> str:
        """``train``, ``val`` or ``test`` (``excluded`` for conditions dropped for lack of GO)."""
        for name in ("train", "val", "test"):
            if condition in getattr(self, name):
                return name
        if condition in self.excluded_not_in_go:
            return "excluded"
        raise KeyError(f"condition {condition!r} is not part of this split")

    def subgroup_of(self, condition: str) -> str:
        """Test subgroup of a test condition (``combo_seen0`` … ``unseen_single``)."""
        for name, members in self.test_subgroup.items():
            if condition in members:
                return name
        raise KeyError(f"{condition!r} is not a test perturbation; test subgroups hold "
                       f"{sum(map(len, self.test_subgroup.values()))} conditions")

    @property
    def easiest(self) -> str:
        """The subgroup training has seen most of (``combo_seen2`` where the split has it)."""
        return next(s for s in SUBGROUPS_BY_DIFFICULTY if s in self.test_subgroup)

    def example(self, preferred: Sequence[str] = ("ETS2+CEBPE",)) -> str:
        """A test perturbation to show: the first of ``preferred`` in the test set, else the first
        of the easiest subgroup."""
        return next((c for c in preferred if c in self.test), None) or self.test_subgroup[self.easiest][0]

    def composition(self) -> pd.DataFrame:
        """Number of test perturbations per subgroup (``subgroup,n_perturbations``)."""
        return pd.DataFrame({"subgroup": list(self.subgroups),
                             "n_perturbations": [len(self.test_subgroup[s]) for s in self.subgroups]})

    def json_text(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def to_json(self, path: Path) -> None:
        from helpers.files import atomic_write_text

        atomic_write_text(path, self.json_text())

    @classmethod
    def from_json(cls, path: Path) -> SimulationSplit:
        return cls(**json.loads(Path(path).read_text()))


def filter_conditions_in_go(conditions: Sequence[str],
                            go_genes: Collection[str]) -> tuple[list[str], list[str]]:
    """Split ``conditions`` into those whose every gene has GO annotation and those dropped."""
    go_genes = set(go_genes)
    kept, dropped = [], []
    for condition in conditions:
        (kept if all(g in go_genes for g in condition_genes(condition)) else dropped).append(condition)
    return kept, dropped


def _perts_with_any_gene(genes: Collection[str], perts: Sequence[str], kind: str) -> list[str]:
    test = is_single if kind == "single" else is_combo
    genes = set(genes)
    return [p for p in perts if test(p) and any(g in genes for g in condition_genes(p))]


def _split_once(perts: Sequence[str], train_gene_set_size: float, combo_seen2_train_frac: float,
                seed: int) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """One round of GEARS' ``get_simulation_split`` on ``perts`` (no control among them)."""
    unique_genes = np.array(genes_of(perts))
    seen = np.random.RandomState(seed).choice(
        unique_genes, int(len(unique_genes) * train_gene_set_size), replace=False)
    seen_set = set(seen.tolist())
    unseen = np.setdiff1d(unique_genes, seen)

    def n_seen(p: str) -> int:
        return sum(g in seen_set for g in condition_genes(p))

    train = _perts_with_any_gene(seen_set, perts, "single")
    combos_with_seen = _perts_with_any_gene(seen_set, perts, "combo")
    combo_seen1 = [p for p in combos_with_seen if n_seen(p) == 1]
    both_seen = np.setdiff1d(combos_with_seen, combo_seen1)  # sorted, as in GEARS
    combo_train = np.random.RandomState(seed).choice(
        both_seen, int(len(both_seen) * combo_seen2_train_frac), replace=False)
    combo_seen2 = np.setdiff1d(both_seen, combo_train).tolist()
    train.extend(combo_train.tolist())
    unseen_single = _perts_with_any_gene(unseen, perts, "single")
    combo_seen0 = [p for p in _perts_with_any_gene(unseen, perts, "combo") if n_seen(p) == 0]
    test = combo_seen1 + combo_seen2 + unseen_single + combo_seen0
    assert len(train) + len(test) == len(perts), "every perturbation lands in exactly one set"
    return train, test, {"combo_seen0": combo_seen0, "combo_seen1": combo_seen1,
                         "combo_seen2": combo_seen2, "unseen_single": unseen_single}


def simulation_split(conditions: Sequence[str], go_genes: Collection[str], seed: int = 1,
                     train_gene_set_size: float = 0.75, combo_seen2_train_frac: float = 0.75,
                     name: str = "simulation") -> SimulationSplit:
    """GEARS' simulation split of ``conditions`` (unique condition strings, control included);
    ``name='simulation_single'`` for a single-gene screen (one subgroup, ``unseen_single``)."""
    perts = list(dict.fromkeys(c for c in conditions if c != CONTROL))
    kept, dropped = filter_conditions_in_go(perts, go_genes)
    if not kept:
        raise ValueError("no perturbation has GO annotation for all its genes; "
                         "check that gene symbols in obs['condition'] match the GO table")
    if dropped:
        # GEARS prints the same list ("not in the GO graph ... can thus not be predicted")
        warnings.warn(f"{len(dropped)} perturbation(s) dropped because a gene has no GO annotation, "
                      f"so GEARS cannot place it in its perturbation graph: {', '.join(dropped)}",
                      stacklevel=2)
    n_combos = sum(map(is_combo, kept))
    single_only = name == "simulation_single"
    if single_only and n_combos:
        raise ValueError(f"the simulation_single split is GEARS' split for single-gene screens, but "
                         f"{n_combos} perturbations are two-gene combinations. What to do: use "
                         "split_name='simulation' (or None: the data set's own split)")
    train, test, test_subgroup = _split_once(kept, train_gene_set_size, combo_seen2_train_frac, seed)
    wanted = ("unseen_single",) if single_only else SUBGROUPS
    test_subgroup = {g: test_subgroup[g] for g in wanted}
    empty = [g for g in wanted if not test_subgroup[g]]
    if empty:
        single_hint = ("; a single-gene screen takes split_name='simulation_single' (or None: the "
                       "data set's own split)" if not single_only and not n_combos else "")
        raise ValueError(
            f"test subgroup(s) {empty} would be empty ({len(kept)} perturbations with GO annotation, "
            f"{n_combos} of them two-gene combinations), so the study's per-subgroup comparison "
            "cannot be made. What to do: use data with perturbations of enough genes (Norman et al. "
            "2019 has 105 genes in 105 singles and 131 pairs), or change train_gene_set_size "
            f"(now {train_gene_set_size}) / combo_seen2_train_frac (now {combo_seen2_train_frac})"
            + single_hint)
    train, val, val_subgroup = _split_once(train, 0.9, 0.9, seed)
    if not train or not val:
        raise ValueError(
            f"the {'training' if not train else 'validation'} set would be empty ({len(kept)} "
            f"perturbations of {len(genes_of(kept))} genes with GO annotation): GEARS draws "
            f"{train_gene_set_size:.0%} of the genes as seen and 90% of those again for training. "
            "What to do: use data with perturbations of more genes, or raise train_gene_set_size")
    if single_only:
        val_subgroup = {"unseen_single": val_subgroup["unseen_single"]}
    return SimulationSplit(train=train + [CONTROL], val=val, test=test,
                           test_subgroup=test_subgroup, val_subgroup=val_subgroup,
                           excluded_not_in_go=dropped, seed=seed,
                           train_gene_set_size=train_gene_set_size,
                           combo_seen2_train_frac=combo_seen2_train_frac, name=name)


def check_split_name(name: str) -> None:
    """Reject a split GEARS may know but this study does not build (only :data:`SPLIT_NAMES`)."""
    if name not in SPLIT_NAMES:
        other = (f" GEARS' {name!r} split is not built in this study." if name in GEARS_SPLITS_NOT_BUILT
                 else "")
        raise ValueError(f"unknown split {name!r}; choose one of {list(SPLIT_NAMES)}.{other} "
                         "The study's questions are the simulation split's test subgroups "
                         f"{list(SUBGROUPS)}")


def make_split(name: str, conditions: Sequence[str], go_genes: Collection[str], seed: int = 1,
               train_gene_set_size: float = 0.75, combo_seen2_train_frac: float = 0.75) -> SimulationSplit:
    """The split called ``name`` (GEARS' ``split`` argument): ``'simulation'`` or, for a
    single-gene screen, ``'simulation_single'``."""
    check_split_name(name)
    return simulation_split(conditions, go_genes, seed, train_gene_set_size, combo_seen2_train_frac, name)
