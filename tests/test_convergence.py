"""Reading learning curves: plateau, steps to reach it, convergence."""

import numpy as np
import pandas as pd
import pytest

from helpers import convergence


def curve(model, seed, errors, every=100):
    return pd.DataFrame({"model": model, "seed": seed, "step": every * np.arange(1, len(errors) + 1),
                         "val_mse_top20_de": errors})


FLAT = [1.0, 0.7, 0.6, 0.55, 0.545, 0.546, 0.544, 0.545]  # last quarter: 0.2% better
FALLING = list(np.linspace(1.0, 0.5, 8))  # still 14% better in its last quarter


def test_steps_to_plateau_uses_the_best_so_far():
    steps, errors = [100, 200, 300, 400], [1.0, 0.6, 0.7, 0.59]
    assert convergence.steps_to_plateau(steps, errors, plateau=0.59) == 200  # 0.6 ≤ 0.59 × 1.02
    assert convergence.steps_to_plateau(steps, errors, plateau=0.59, tolerance=0.001) == 400
    assert convergence.steps_to_plateau(steps, errors, plateau=0.3) is None


def test_flat_curve_converged_falling_curve_did_not():
    table = convergence.convergence_table(pd.concat([curve("gears", 1, FLAT), curve("gears", 2, FALLING)]),
                                          ["model", "seed"], window=1).set_index("seed")
    assert table.loc[1, "converged"] and not table.loc[2, "converged"]
    assert table.loc[1, "plateau"] == 0.544 == table.loc[1, "best"] and table.loc[1, "step_within_tolerance"] == 400
    assert table.loc[1, "final_gain"] == pytest.approx((0.545 - 0.544) / 0.544, rel=1e-9)
    assert table.loc[2, "step_within_tolerance"] == 800 and table.loc[2, "last_step"] == 800


def test_one_lucky_validation_is_not_a_plateau():
    """A flat but noisy curve with one low check late on: the raw minimum would call the run
    unfinished; the running mean sees a plateau reached long before."""
    noisy = [0.9, 0.7] + [0.55, 0.57, 0.56, 0.58, 0.55, 0.57, 0.56, 0.58] * 2 + [0.50, 0.57]
    raw = convergence.convergence_table(curve("gears", 1, noisy), ["model", "seed"], window=1)
    mean = convergence.convergence_table(curve("gears", 1, noisy), ["model", "seed"])
    assert not raw.converged.item() and raw.plateau.item() == 0.50
    assert mean.converged.item() and mean.best.item() == 0.50
    assert mean.plateau.item() == pytest.approx(np.mean([0.56, 0.58, 0.50, 0.57, 0.55]))  # the last five
    assert mean.step_within_tolerance.item() <= 800


def test_describe_states_the_outcome_from_the_numbers():
    both = convergence.convergence_table(pd.concat([curve("gears", 1, FLAT), curve("gears", 2, FALLING)]),
                                         ["model", "seed"], window=1)
    sentence = convergence.describe(both, "GEARS")
    assert sentence.startswith("1 of 2 GEARS runs had not reached their plateau") and "gears 2 (last" in sentence
    assert "0.5000 to 0.5440" in sentence
    assert convergence.describe(both[both.seed == 1], "GEARS").startswith("All 1 GEARS runs reached their plateau")


def test_a_run_validated_only_at_its_end_cannot_be_judged():
    table = convergence.convergence_table(curve("gears", 1, [0.7], every=10), ["model", "seed"])
    assert not table.converged.item() and np.isnan(table.final_gain.item())
    assert convergence.describe(table, "GEARS").startswith("Whether the 1 GEARS runs reached their plateau cannot be judged")


def test_a_report_writes_every_run_and_draws_the_chosen_ones(tmp_path):
    """What chapters 11 and 14 show: every run's row in convergence.csv, the figure of the drawn
    runs only, and the sentence over every run."""
    flat, falling = FLAT + [0.545, 0.544] * 4, list(np.linspace(1.0, 0.5, 16))
    every = pd.concat([curve("gears+a", 1, flat).assign(target="gene"),
                       curve("gears+a", 1, falling).assign(target="both"),
                       curve("gears+b", 2, flat).assign(target="gene")], ignore_index=True)
    drawn = every[every.model == "gears+b"]
    report = convergence.report(every, ["model", "target", "seed"], tmp_path, 1600, "GEARS + prior", drawn=drawn)
    written = pd.read_csv(tmp_path / "convergence.csv")
    assert len(written) == 3 and written.converged.tolist() == report.table.converged.tolist() == [False, True, True]
    assert (tmp_path / "learning_curves.png").stat().st_size > 0
    assert report.sentence.startswith("1 of 3 GEARS + prior runs had not reached their plateau")
    assert [ax.get_title() for ax in report.figure.axes] == ["gears+b"]  # one panel per drawn model


def test_the_schedule_is_stated_against_cell_gears():
    from helpers.models.gears import TrainingBudget

    assert TrainingBudget(2000, 278).schedule(1557) == (
        "Schedule: the learning rate halves every 278 steps, 5.6 times per epoch of this data's training "
        "cells (1,557 steps); cell-gears halves once per epoch, so this run decays 5.6× faster than "
        "cell-gears' and reaches its final learning rate (1/128 of the start) after 1.3 epochs.")
    assert "as cell-gears does: this budget is the first 500 steps" in TrainingBudget(500).schedule(1557)
