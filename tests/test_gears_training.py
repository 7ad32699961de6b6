"""GEARS training in optimisation steps: the schedule, truncation, epochs and the model kept."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import de_genes, graphs, profiles, reference, simulator, splits
from helpers.models.gears import (GearsData, GearsRun, TrainingBudget, condition_means, predict_means, steps_per_epoch,
                                  train_gears,
                                  train_gears_runs,
                                  validation_mse)
from helpers.models.gears_module import GearsConfig

CONFIG = GearsConfig()


NOISE_FREE: dict[str, pd.DataFrame] = {}  # the small screen's expected means (conditions × genes)


@pytest.fixture(scope="module")
def small_screen():
    """The Norman scaffold at 60 genes, 4 cells per condition: ~40 training batches per epoch."""
    scaffold = simulator.norman_scaffold(n_high_mean_genes=60)
    adata, truth = simulator.simulate_perturb_seq(scaffold, simulator.SimulatorConfig(seed=0), 4, 200,
                                                  progress=False)
    NOISE_FREE["means"] = truth.to_df()
    de_genes.add_de_genes(adata)
    gene2go = reference.gene2go()
    split = splits.simulation_split(adata.obs.condition.astype(str).unique(), set(gene2go), seed=1)
    nodes = sorted(g for g in set(adata.var.gene_name) | set(scaffold.perturbed_genes) if g in gene2go)
    go = graphs.go_perturbation_graph(gene2go, nodes)
    return GearsData.from_adata(adata, split, go, CONFIG), split


def test_learning_rate_halves_every_lr_halving_steps(small_screen):
    gears_data, split = small_screen
    _, history = train_gears(gears_data, split, CONFIG, TrainingBudget(10, lr_halving_steps=3, eval_every=4),
                             seed=1, device="cpu", progress=False)
    assert history.step.tolist() == [4, 8, 10]  # every eval_every steps and the last
    # step s runs at lr × 0.5 ** ((s - 1) // 3): steps 4, 8 and 10 at 1/2, 1/4 and 1/8
    np.testing.assert_allclose(history.lr, CONFIG.lr * np.array([0.5, 0.25, 0.125]))
    epoch = steps_per_epoch(gears_data, split, CONFIG.batch_size)
    np.testing.assert_allclose(history.epoch, history.step / epoch)


def test_default_schedule_is_one_halving_per_epoch(small_screen):
    gears_data, split = small_screen
    epoch = steps_per_epoch(gears_data, split, CONFIG.batch_size)
    assert 20 < epoch < 100  # so the run below crosses an epoch boundary
    _, history = train_gears(gears_data, split, CONFIG, TrainingBudget(epoch + 2, eval_every=epoch),
                             seed=1, device="cpu", progress=False)
    assert history.step.tolist() == [epoch, epoch + 2]
    np.testing.assert_allclose(history.lr, [CONFIG.lr, CONFIG.lr / 2])  # the last step of epoch 1, then epoch 2
    assert history.epoch.iloc[-1] > 1


def test_a_smaller_budget_is_a_truncated_run(small_screen):
    gears_data, split = small_screen
    short = train_gears(gears_data, split, CONFIG, TrainingBudget(6, 4, eval_every=3), seed=2, device="cpu",
                        progress=False)[1]
    long = train_gears(gears_data, split, CONFIG, TrainingBudget(12, 4, eval_every=3), seed=2, device="cpu",
                       progress=False)[1]
    columns = ["step", "lr", "train_loss", "val_mse_top20_de", "val_mse_all"]
    pd.testing.assert_frame_equal(short[columns], long[columns].iloc[:2])
    assert long.step.tolist() == [3, 6, 9, 12]  # and the long run went on (that it learns: below)


def test_the_model_returned_is_the_best_on_validation(small_screen):
    gears_data, split = small_screen
    # ten times cell-gears' learning rate: validation error jumps about, so the best state comes
    # before the last (at cell-gears' rate it still falls at step 40 and the check below is void)
    noisy = dataclasses.replace(CONFIG, lr=1e-2)
    model, history = train_gears(gears_data, split, noisy, TrainingBudget(40, eval_every=5), seed=4,
                                 device="cpu", progress=False)
    assert len(history) == 8
    best = history.val_mse_top20_de.min()
    assert history.val_mse_top20_de.iloc[-1] > best  # the last state is not the best: returning it would fail
    kept = validation_mse(model, gears_data, split.val, seed=4, truth=condition_means(gears_data, split.val))[0]
    assert kept == pytest.approx(best, rel=1e-6)


def test_same_seed_same_curve(small_screen):
    gears_data, split = small_screen
    budget = TrainingBudget(5, eval_every=5)
    first = train_gears(gears_data, split, CONFIG, budget, seed=4, device="cpu", progress=False)
    second = train_gears(gears_data, split, CONFIG, budget, seed=4, device="cpu", progress=False)
    pd.testing.assert_frame_equal(first[1].drop(columns="seconds"), second[1].drop(columns="seconds"))
    for a, b in zip(first[0].state_dict().values(), second[0].state_dict().values()):
        assert torch.equal(a, b)


def test_budget_rejects_nonsense_and_follows_the_profile():
    with pytest.raises(ValueError, match="positive"):
        TrainingBudget(0)
    with pytest.raises(ValueError, match="positive"):
        TrainingBudget(10, lr_halving_steps=0)
    default = profiles.get_profile("default")
    budget = TrainingBudget.from_profile(default)
    assert (budget.steps, budget.lr_halving_steps, budget.eval_every) == (
        default.gears_steps, default.gears_lr_halving_steps, default.gears_eval_every)
    # the full profile is cell-gears' own schedule: halved after every epoch of the data
    assert TrainingBudget.from_profile(profiles.get_profile("full")).lr_halving_steps is None


def test_runs_side_by_side_equal_runs_one_after_another(small_screen):
    """Worker processes train what the loop in this process trains (to float rounding: their
    thread counts differ), in the order asked, with the prior where it was asked to enter."""
    gears_data, split = small_screen
    prior = pd.DataFrame(np.random.default_rng(0).normal(size=(len(gears_data.genes), 4)), index=gears_data.genes)
    jobs = [GearsRun(seed=5), GearsRun(seed=6, prior=prior, prior_target="gene")]
    budget = TrainingBudget(6, eval_every=3)
    parallel = train_gears_runs(gears_data, split, CONFIG, budget, jobs, device="cpu", workers=2, progress=False)
    serial = train_gears_runs(gears_data, split, CONFIG, budget, jobs, device="cpu", workers=1, progress=False)
    for (model_p, curve_p), (model_s, curve_s) in zip(parallel, serial):
        pd.testing.assert_frame_equal(curve_p.drop(columns="seconds"), curve_s.drop(columns="seconds"), rtol=1e-4)
        # parameters with ~zero gradients may take Adam steps of either sign, so compare what they predict
        pd.testing.assert_frame_equal(predict_means(model_p, gears_data, split.val, seed=0),
                                      predict_means(model_s, gears_data, split.val, seed=0), atol=1e-4, rtol=1e-4)
    assert parallel[0][0].gene_prior_proj is None and parallel[1][0].gene_prior_proj is not None
    assert not np.allclose(parallel[0][1].train_loss, parallel[1][1].train_loss)  # two different runs


def test_each_perturbed_cell_is_fed_a_control_cell_and_learns_its_own_target(small_screen, monkeypatch):
    """GEARS' input for a perturbed cell is a random control cell and its target the perturbed
    cell itself (control cells are paired with themselves): a loop that fed the target as its
    own input, or paired a cell with another condition's, would fail here."""
    import helpers.models.gears as gears_module

    gears_data, split = small_screen
    seen = []
    real_loss = gears_module.gears_loss

    def spying_loss(pred, y, control_mean, codes, masks, direction_lambda):
        seen.append({"y": y.detach().numpy().copy()})
        return real_loss(pred, y, control_mean, codes, masks, direction_lambda)

    real_build = gears_module.build_model

    def spying_build(*args, **kwargs):
        model = real_build(*args, **kwargs)
        forward = model.forward

        def recording_forward(x, perts, *rest):
            if model.training:
                seen.append({"x": x.detach().numpy().copy(), "perts": [list(p) for p in perts]})
            return forward(x, perts, *rest)

        model.forward = recording_forward
        return model

    monkeypatch.setattr(gears_module, "gears_loss", spying_loss)
    monkeypatch.setattr(gears_module, "build_model", spying_build)
    train_gears(gears_data, split, CONFIG, TrainingBudget(3, eval_every=3), seed=1, device="cpu", progress=False)
    steps = [{**a, **b} for a, b in zip(seen[0::2], seen[1::2])]
    assert len(steps) == 3
    control = gears_data.X[gears_data.conditions == "ctrl"]
    in_train = np.isin(gears_data.conditions, split.train)
    n_perturbed = 0
    for step in steps:
        for x, y, perts in zip(step["x"], step["y"], step["perts"]):
            # the target is a training cell; the input is itself for control, a control cell otherwise
            matches = np.flatnonzero((gears_data.X[in_train] == y).all(axis=1))
            assert len(matches) >= 1
            if perts == [-1]:
                np.testing.assert_array_equal(x, y)
            else:
                assert (control == x).all(axis=1).any()
                assert not np.array_equal(x, y)
                n_perturbed += 1
    assert n_perturbed > 20


def test_training_lowers_the_validation_error(small_screen):
    gears_data, split = small_screen
    from helpers.models.gears import build_model

    # judged against the noise-free means: 4 cells per condition leave the observed means so
    # noisy that the best model is only 3% nearer them than an untrained one
    clean = NOISE_FREE["means"].loc[list(split.val), list(gears_data.genes)].to_numpy()
    torch.manual_seed(3)
    untrained = validation_mse(build_model(gears_data, CONFIG), gears_data, split.val, seed=3, truth=clean)[0]
    model, history = train_gears(gears_data, split, CONFIG, TrainingBudget(60, eval_every=5), seed=3,
                                 device="cpu", progress=False)
    trained = validation_mse(model, gears_data, split.val, seed=3, truth=clean)[0]
    assert trained < 0.9 * untrained, (untrained, trained)  # it learns (0.60 → 0.49 here), not merely moves
    assert history.train_loss.iloc[-3:].mean() < history.train_loss.iloc[:3].mean()
