"""GEARS' simulation split, reproduced exactly on the real Norman scaffold."""

import numpy as np
import pytest

from helpers import reference, splits


@pytest.fixture(scope="module")
def norman_split():
    conditions = reference.norman_conditions().condition.tolist()
    return splits.simulation_split(conditions, set(reference.gene2go()), seed=1)


def test_norman_split_has_gears_published_composition(norman_split):
    composition = dict(zip(*norman_split.composition().values.T))
    assert composition == {"combo_seen0": 9, "combo_seen1": 43, "combo_seen2": 19, "unseen_single": 36}
    assert (len(norman_split.train), len(norman_split.val), len(norman_split.test)) == (139, 31, 107)


def test_norman_split_matches_cell_gears_condition_sets(norman_split):
    expected = reference.gears_split()
    for name in ("train", "val", "test"):
        assert sorted(getattr(norman_split, name)) == sorted(expected["set2conditions"][name])
    for group in splits.SUBGROUPS:
        assert sorted(norman_split.test_subgroup[group]) == sorted(expected["subgroup"]["test_subgroup"][group])
        assert sorted(norman_split.val_subgroup[group]) == sorted(expected["subgroup"]["val_subgroup"][group])
    assert sorted(norman_split.excluded_not_in_go) == sorted(expected["excluded_not_in_go"])


def test_subgroups_mean_what_their_names_say(norman_split):
    # "Seen" is decided before validation is carved out of training, so count both.
    train_and_val = set(norman_split.train) | set(norman_split.val)
    seen = {g for c in train_and_val for g in c.split("+")
            if g != "ctrl" and ({f"{g}+ctrl", f"ctrl+{g}"} & train_and_val)}
    for condition in norman_split.test_subgroup["combo_seen0"]:
        assert not set(condition.split("+")) & seen
    for condition in norman_split.test_subgroup["combo_seen1"]:
        assert len(set(condition.split("+")) & seen) == 1
    for condition in norman_split.test_subgroup["combo_seen2"]:
        assert set(condition.split("+")) <= seen
    assert not set(norman_split.train) & set(norman_split.test)
    assert not set(norman_split.val) & set(norman_split.test)


def test_split_depends_on_seed_and_not_on_condition_order():
    conditions = reference.norman_conditions().condition.tolist()
    go_genes = set(reference.gene2go())
    base = splits.simulation_split(conditions, go_genes, seed=1)
    shuffled = list(np.random.default_rng(0).permutation(conditions))
    assert sorted(splits.simulation_split(shuffled, go_genes, seed=1).test) == sorted(base.test)
    assert sorted(splits.simulation_split(conditions, go_genes, seed=2).test) != sorted(base.test)


def test_split_round_trips_through_json(norman_split, tmp_path):
    path = tmp_path / "split.json"
    norman_split.to_json(path)
    assert splits.SimulationSplit.from_json(path) == norman_split


def test_subgroup_of_rejects_non_test_condition(norman_split):
    assert norman_split.subgroup_of("ETS2+CEBPE") == "combo_seen2"
    with pytest.raises(KeyError, match="not a test perturbation"):
        norman_split.subgroup_of("ctrl")


def test_conditions_without_go_are_dropped():
    kept, dropped = splits.filter_conditions_in_go(["A+ctrl", "A+B", "C+ctrl"], {"A", "B"})
    assert kept == ["A+ctrl", "A+B"] and dropped == ["C+ctrl"]


def test_combination_is_found_order_free_or_rejected_with_the_valid_ones():
    from helpers.conditions import resolve_combination

    test = ["ctrl", "CEBPE+ETS2", "KLF1+ctrl", "FOXA1+HOXB9"]
    assert resolve_combination("ETS2+CEBPE", test) == "CEBPE+ETS2"
    with pytest.raises(ValueError, match="not one of the 2 test combinations.*CEBPE\\+ETS2, FOXA1\\+HOXB9"):
        resolve_combination("KLF1+CEBPE", test)
    with pytest.raises(ValueError, match="separator.*CEBPE\\+ETS2"):
        resolve_combination("CEBPE_ETS2", test)
    with pytest.raises(ValueError, match="not a two-gene"):
        resolve_combination("KLF1+ctrl", test)
