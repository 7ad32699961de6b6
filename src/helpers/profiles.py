"""Profiles: a named set of parameter values shared by every notebook (``quick`` for tests and
CI, ``default`` for ``make book`` on a laptop, ``norman_cpu`` and ``full`` for the real Norman
data). Every profile keeps all 284 Norman conditions, so the split is the same in each; profiles
shrink cells, genes and training steps. Explicit notebook parameters win over the profile's."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any


@dataclass(frozen=True)
class Profile:
    """Parameter values one profile gives every notebook (``None`` = no cap)."""

    name: str
    data_source: str  # 'simulated', 'dataverse' or a path to a GEARS-format .h5ad
    max_cells_per_condition: int | None  # perturbed cells kept per condition
    max_control_cells: int | None  # control cells kept
    n_high_mean_genes: int | None  # simulated genes besides the 105 perturbed genes
    gears_steps: int  # GEARS optimisation steps (batches of 32 cells), every GEARS run
    gears_lr_halving_steps: int | None  # GEARS' learning rate halves every this many steps (None: every epoch)
    gears_eval_every: int  # GEARS validates every this many steps (its learning curve)
    seeds: tuple[int, ...]
    pretrain_steps: int  # GeneMamba optimisation steps
    context_length: int  # GeneMamba tokens per cell (<cls> + top-ranked genes)
    # GEARS' settings (helpers.models.gears_module.GearsConfig) that differ from cell-gears'
    # defaults; a chapter's gears_config overrides them
    gears_config: dict[str, Any] = field(default_factory=dict)


NORMAN_EPOCH_STEPS = 49_849 // 32  # one cell-gears epoch on Norman: training cells of GEARS' split / batch


PROFILES: dict[str, Profile] = {
    # CI and tests: a few hundred genes, ~10 cells per condition, one epoch.
    "quick": Profile("quick", "simulated", max_cells_per_condition=10, max_control_cells=300,
                     n_high_mean_genes=300, gears_steps=8, gears_lr_halving_steps=None,
                     gears_eval_every=4, seeds=(1,),
                     pretrain_steps=10, context_length=64),
    # `make book`: the full Norman scaffold (all 3,051 genes) with Norman's cell counts (91,205
    # cells, 7,353 control). GEARS: the learning rate halved every 278 steps (cell-gears' epoch
    # on 50-cell conditions, the schedule benchmarks/learning_curves.py measured) for 2,000
    # steps: on this data every GEARS run came within 2% of its plateau by step 1,600 and every
    # prior run by step 1,500 (benchmarks/RESULTS.md); with Norman's counts an epoch is 1,557
    # steps, so this is ~1.3 epochs at cell-gears' batch size.
    "default": Profile("default", "simulated", max_cells_per_condition=None,
                       max_control_cells=None, n_high_mean_genes=None, gears_steps=2000,
                       gears_lr_halving_steps=278, gears_eval_every=100,
                       seeds=(1, 2, 3), pretrain_steps=1000, context_length=256),
    # Real Norman on 2 CPU cores in a few hours: all cells and all genes, every model on the
    # default's schedule (trained to its plateau there; each chapter checks its own runs), the
    # time projected in benchmarks/RESULTS.md from benchmarks/real_scale.py.
    "norman_cpu": Profile("norman_cpu", "dataverse", max_cells_per_condition=None, max_control_cells=None,
                          n_high_mean_genes=None, gears_steps=2000, gears_lr_halving_steps=278,
                          gears_eval_every=100, seeds=(1, 2, 3), pretrain_steps=1000, context_length=256),
    # Real Norman at full size; meant for a GPU.
    # GEARS exactly as cell-gears: 20 epochs, the learning rate halved after each.
    "full": Profile("full", "dataverse", max_cells_per_condition=None, max_control_cells=None,
                    n_high_mean_genes=None, gears_steps=20 * NORMAN_EPOCH_STEPS, gears_lr_halving_steps=None,
                    gears_eval_every=500, seeds=(1, 2, 3),
                    pretrain_steps=20000, context_length=2048),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[name]


def resolve_parameters(profile: str, **explicit: Any) -> Profile:
    """The profile's values, overridden by every explicit parameter that is not ``None``."""
    base = get_profile(profile)
    known = {f.name for f in fields(Profile)}
    unknown = set(explicit) - known
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)}; profiles define {sorted(known)}")
    overrides = {k: (tuple(v) if k == "seeds" else v) for k, v in explicit.items() if v is not None}
    return replace(base, **overrides)
