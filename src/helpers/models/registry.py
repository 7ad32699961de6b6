"""Every model the book compares, declared once: its name, label and colour, which step makes its
predictions, and, for a baseline, how it predicts.

A model's name is its folder under ``predictions/`` (:mod:`helpers.predictions`), which is all
that evaluation (chapter 20), the combination chapter (21), the GI chapter (22) and the summary
(30) read, so a model registered here reaches every table once its predictions are stored.
Families say which step stores them:

- ``baseline``: fitted on the training condition means by the baselines chapter (10), which
  trains every registered baseline through its ``predict`` entry point,
  ``predict(inputs: BaselineInputs, **settings) -> conditions × genes``.
- ``gears``: GEARS (chapter 11). ``gears_prior``: GEARS with a fixed gene embedding (chapter 14),
  named by :func:`prior_model_name`, the only place that spells that name.
- ``external``: predictions made elsewhere and dropped into ``predictions/`` in the shared format
  (:func:`helpers.predictions.check_external`); a stored model that is not registered is one.

Entry points are named as ``"module:function"`` and imported when called, so this module
imports no model code: adding a model here does not invalidate the caches of the models it
does not touch (:func:`helpers.runs.code_digest` follows imports). Adding a baseline-like model
takes a module with its ``predict`` and one :func:`register` line at the end of this file::

    register(Model("my_model", "my model", "#aa3377", "baseline", "helpers.models.my_model:predict"))
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pandas as pd

FAMILIES = ("baseline", "gears", "gears_prior", "external")
PRIOR_PREFIX = "gears+"
UNREGISTERED_COLOUR = "#f7b6d2"  # a stable pink for models the registry does not name


@dataclass(frozen=True)
class Model:
    """One model of the book. ``predict`` (baselines only) names the entry point that returns
    the predicted mean expression of ``inputs.conditions``; ``settings`` are its default keyword
    settings, which a chapter's parameters override. ``interactions=False`` marks a model that
    predicts no change, so it has no genetic interaction to score."""

    name: str
    label: str
    colour: str
    family: str
    predict: str | None = None  # "module:function"
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    interactions: bool = True

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"model {self.name!r}: family must be one of {FAMILIES}, not {self.family!r}")
        if (self.family == "baseline") != (self.predict is not None):
            raise ValueError(f"model {self.name!r}: a baseline needs predict, and only a baseline has one")
        if self.predict is not None and self.predict.count(":") != 1:
            raise ValueError(f"model {self.name!r}: predict must read 'module:function', not {self.predict!r}")

    @property
    def module(self) -> str | None:
        """The module that holds the entry point."""
        return None if self.predict is None else self.predict.split(":")[0]

    def predictor(self):
        module, function = self.predict.split(":")
        return getattr(importlib.import_module(module), function)


_MODELS: dict[str, Model] = {}


def register(model: Model) -> Model:
    """Add ``model`` to the book (its name must be new)."""
    if model.name in _MODELS:
        raise ValueError(f"a model named {model.name!r} is already registered")
    _MODELS[model.name] = model
    return model


def prior_model_name(prior: str) -> str:
    """The stored name of GEARS with prior ``prior`` (e.g. ``gears+go_svd``)."""
    return f"{PRIOR_PREFIX}{prior}"


def model(name: str) -> Model:
    """The registered model ``name``; GEARS with a prior that is not registered by name and any
    other stored model are described from their name alone."""
    if name in _MODELS:
        return _MODELS[name]
    if name.startswith(PRIOR_PREFIX):
        return Model(name, f"GEARS + {name[len(PRIOR_PREFIX):]}", UNREGISTERED_COLOUR, "gears_prior")
    return Model(name, name, UNREGISTERED_COLOUR, "external")


def registered(family: str | None = None) -> list[Model]:
    """Registered models in the book's order, optionally of one family."""
    return [m for m in _MODELS.values() if family is None or m.family == family]


def ordered(names: Iterable[str]) -> list[str]:
    """``names`` in the book's order: registered models as registered, then the rest by name; the
    noise ceiling (a reference, not a model) dropped."""
    order = list(_MODELS)
    names = [n for n in dict.fromkeys(names) if n != "noise_ceiling"]
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


def colour(name: str) -> str:
    return model(name).colour


def scores_interactions(name: str) -> bool:
    """Whether the GI chapter scores ``name`` (a model that predicts no change has nothing to score)."""
    return model(name).interactions


def baseline_modules() -> list[str]:
    """The modules the registered baselines' entry points live in (what their fits compute with)."""
    return sorted({m.module for m in registered("baseline")})


def predict_baseline(name: str, inputs: Any, settings: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Predictions of the registered baseline ``name`` from ``inputs``
    (:class:`helpers.models.baselines.BaselineInputs`), its default settings updated by
    ``settings``."""
    spec = _MODELS.get(name)
    if spec is None or spec.family != "baseline":
        known = [m.name for m in registered("baseline")]
        raise ValueError(f"unknown baseline {name!r}; choose one of {known}")
    unknown = sorted(set(settings or {}) - set(spec.settings))
    if unknown:
        raise ValueError(f"baseline {name!r} has no setting {unknown}; its settings: {sorted(spec.settings)}")
    return spec.predictor()(inputs, **{**spec.settings, **(settings or {})})


# One colour per model across the book; the seed study drew GEARS blue and Mamba-GEARS red.
_BASELINES = "helpers.models.baselines"
register(Model("no_change", "no change", "#000000", "baseline", f"{_BASELINES}:predict_no_change",
               interactions=False))
register(Model("train_mean", "training mean", "#7f7f7f", "baseline", f"{_BASELINES}:predict_train_mean"))
register(Model("non_control_mean", "non-control mean", "#bcbd22", "baseline",
               f"{_BASELINES}:predict_non_control_mean"))
register(Model("matching_mean", "matching mean", "#17becf", "baseline",
               f"{_BASELINES}:predict_matching_mean"))
register(Model("additive", "additive", "#2ca02c", "baseline", f"{_BASELINES}:predict_additive"))
register(Model("latent_additive", "latent additive", "#98df8a", "baseline",
               f"{_BASELINES}:predict_latent_additive", MappingProxyType({"n_components": 20})))
register(Model("linear", "linear", "#8c564b", "baseline", f"{_BASELINES}:predict_linear",
               MappingProxyType({"n_components": 10, "ridge": 0.1})))
register(Model("gears", "GEARS", "#1f77b4", "gears"))
register(Model(prior_model_name("file"), "GEARS + embedding file", "#e377c2", "gears_prior"))
register(Model(prior_model_name("genemamba"), "GEARS + GeneMamba", "#d62728", "gears_prior"))
register(Model(prior_model_name("go_svd"), "GEARS + GO-SVD", "#ff7f0e", "gears_prior"))
