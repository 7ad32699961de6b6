"""Reading learning curves: plateau, steps to reach it, convergence."""

import numpy as np
import pandas as pd
import pytest

from helpers import convergence


def curve(model, seed, errors, every=100):
    return pd.DataFrame({"model": model, "seed": seed, "step": every * np.arange(1, len(errors) + 1),
                         "val_mse_top20_de": errors})


def test_steps_to_plateau_uses_the_best_so_far():
    steps, errors = [100, 200, 300, 400], [1.0, 0.6, 0.7, 0.59]
    assert convergence.steps_to_plateau(steps, errors, plateau=0.59) == 200  # 0.6 ≤ 0.59 × 1.02
    assert convergence.steps_to_plateau(steps, errors, plateau=0.59, tolerance=0.001) == 400
    assert convergence.steps_to_plateau(steps, errors, plateau=0.3) is None


def test_flat_curve_converged_falling_curve_did_not():
    flat = curve("gears", 1, [1.0, 0.7, 0.6, 0.55, 0.545, 0.546, 0.544, 0.545])  # last quarter: 0.2% better
    falling = curve("gears", 2, np.linspace(1.0, 0.5, 8))  # still 14% better in its last quarter
    table = convergence.convergence_table(pd.concat([flat, falling]), ["model", "seed"]).set_index("seed")
    assert table.loc[1, "converged"] and not table.loc[2, "converged"]
    assert table.loc[1, "plateau"] == 0.544 and table.loc[1, "step_within_tolerance"] == 400
    assert table.loc[1, "final_gain"] == pytest.approx((0.545 - 0.544) / 0.544, rel=1e-9)
    assert table.loc[2, "step_within_tolerance"] == 800 and table.loc[2, "last_step"] == 800


def test_describe_states_the_outcome_from_the_numbers():
    flat = curve("gears", 1, [1.0, 0.7, 0.6, 0.55, 0.545, 0.546, 0.544, 0.545])
    falling = curve("gears", 2, np.linspace(1.0, 0.5, 8))
    both = convergence.convergence_table(pd.concat([flat, falling]), ["model", "seed"])
    sentence = convergence.describe(both, "GEARS")
    assert sentence.startswith("1 of 2 GEARS runs had not reached their plateau") and "gears 2 (last" in sentence
    assert "0.5000 to 0.5440" in sentence
    assert convergence.describe(both[both.seed == 1], "GEARS").startswith("All 1 GEARS runs reached their plateau")


def test_a_run_validated_only_at_its_end_cannot_be_judged():
    table = convergence.convergence_table(curve("gears", 1, [0.7], every=10), ["model", "seed"])
    assert not table.converged.item() and np.isnan(table.final_gain.item())
    assert convergence.describe(table, "GEARS").startswith("Whether the 1 GEARS runs reached their plateau cannot be judged")
