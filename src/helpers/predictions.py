"""One prediction format for every model: predicted mean expression per condition.

``results/predictions/<model>/seed=<k>/predictions.h5ad``: ``X`` conditions × genes (mean
log-normalised expression), ``obs_names`` the conditions (GEARS spelling), ``var_names`` the
genes, ``uns`` the model name, seed and training parameters. Evaluation reads only these files,
so it never needs to know which model made them.

**A model trained elsewhere** enters the same way: write its predictions to
``<results root>/predictions/<model>/seed=<k>/predictions.h5ad`` (``results/`` for the simulated
default, ``results/real/<tag>/`` for a real data file), with ``X`` the predicted mean
log-normalised expression (as the prepared data's ``X``: normalised to 10,000 counts, log1p),
``obs_names`` the conditions as the prepared data spells them (``A+B``, ``A+ctrl``) and
``var_names`` the prepared data's genes (symbols). It must hold every test condition of the split
and, for each test pair, each of its genes alone (``A+ctrl`` or ``ctrl+A``: the GI chapter fits
the pair on them). It carries no ``data_fingerprint``, so it is checked against the prepared data
when a chapter finds it (:func:`check_external`), and a mismatch stops the chapter with an error
that names the file.
Evaluation (chapter 20), the combination chapter (21), the GI chapter (22) and the summary (30)
then treat it as any other model (:mod:`helpers.models.registry`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anndata as ad
import numpy as np
import pandas as pd

from helpers import pipeline
from helpers.conditions import CONTROL, condition_genes, is_combo
from helpers.files import atomic_path

if TYPE_CHECKING:
    from helpers.data import Prepared

FILE = "predictions.h5ad"


def prediction_path(model: str, seed: int) -> Path:
    return pipeline.folder("predictions") / model / f"seed={seed}" / FILE


def write_predictions(model: str, seed: int, means: pd.DataFrame, data_fingerprint: str,
                      parameters: dict[str, Any] | None = None) -> Path:
    """Store a model's predicted means; ``data_fingerprint`` identifies the prepared data they
    were made from (``runs.parameters_fingerprint('01_prepare_data')``). A file that already
    holds exactly these predictions is left as it is (a rerun that reused its model does not
    touch what later steps read)."""
    if means.isna().any().any():
        raise ValueError(f"{model} (seed {seed}) predicted NaN for "
                         f"{means.index[means.isna().any(axis=1)].tolist()[:5]}")
    adata = ad.AnnData(X=means.to_numpy(np.float32),
                       obs=pd.DataFrame(index=means.index.astype(str)),
                       var=pd.DataFrame(index=means.columns.astype(str)))
    adata.uns["model"], adata.uns["seed"] = model, int(seed)
    adata.uns["data_fingerprint"] = data_fingerprint
    adata.uns["parameters"] = {k: str(v) for k, v in (parameters or {}).items()}
    path = prediction_path(model, seed)
    if path.is_file() and _same_predictions(ad.read_h5ad(path), adata):
        return path
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)
    return path


def _same_predictions(stored: ad.AnnData, new: ad.AnnData) -> bool:
    return (list(stored.obs_names) == list(new.obs_names)
            and list(stored.var_names) == list(new.var_names)
            and np.array_equal(np.asarray(stored.X), new.X)
            and all(str(stored.uns.get(k)) == str(new.uns[k])
                    for k in ("model", "seed", "data_fingerprint"))
            and dict(stored.uns.get("parameters", {})) == new.uns["parameters"])


def available_predictions(data_fingerprint: str | None = None, conditions: Sequence[str] | None = None,
                          genes: Sequence[str] | None = None) -> pd.DataFrame:
    """Stored predictions (``model,seed``), sorted. With ``data_fingerprint``, only the book's own
    predictions made from that prepared data (those left over from other data are skipped with a
    warning) and predictions made elsewhere (no fingerprint), each checked on arrival against
    ``conditions`` and ``genes`` when given (:func:`check_external`)."""
    root = pipeline.folder("predictions")
    rows, stale = [], []
    for path in root.glob(f"*/seed=*/{FILE}"):
        match = re.fullmatch(r"seed=(\d+)", path.parent.name)
        if not match:
            continue
        row = {"model": path.parent.parent.name, "seed": int(match.group(1))}
        if data_fingerprint is not None:
            stored = _read(path)
            made_from = stored.uns.get("data_fingerprint")
            if made_from is None and conditions is not None and genes is not None:
                _check(stored, path, conditions, genes)
            elif made_from is not None and made_from != data_fingerprint:
                stale.append(f"{row['model']} seed {row['seed']}")
                continue
        rows.append(row)
    if stale:
        warnings.warn(f"skipping {len(stale)} prediction(s) made from other data: {', '.join(stale)}; "
                      "retrain those models to include them", stacklevel=2)
    return pd.DataFrame(rows, columns=["model", "seed"]).sort_values(["model", "seed"], ignore_index=True)


def fingerprints(stored: pd.DataFrame) -> list[dict[str, Any]]:
    """Each stored prediction (``model, seed``) with its file's SHA-256: what a step that reads
    them keys its cache on, so a replaced file is read again."""
    from helpers.download import file_digest

    return [{"model": model, "seed": int(seed), "sha256": file_digest(prediction_path(model, seed))}
            for model, seed in stored.itertuples(index=False)]


def for_evaluation(prepared: Prepared) -> pd.DataFrame:
    """The model-seeds the evaluating chapters read for ``prepared`` data: the book's own made
    from it and every model trained elsewhere, checked against its test conditions and genes."""
    return available_predictions(prepared.fingerprint, required_conditions(prepared.split.test),
                                 [str(g) for g in prepared.adata.var_names])


def required_conditions(test: Sequence[str]) -> list[str]:
    """What a prediction must hold: every test condition and, per test pair, each gene alone
    (``A+ctrl``; a file may spell it ``ctrl+A``)."""
    singles = [f"{gene}+{CONTROL}" for c in test if is_combo(c) for gene in condition_genes(c)]
    return list(dict.fromkeys([*test, *singles]))


def _read(path: Path) -> ad.AnnData:
    try:
        return ad.read_h5ad(path)
    except Exception as error:  # h5py and anndata raise many kinds on a foreign file
        raise ValueError(f"{path}: not a readable h5ad file ({error}); see helpers.predictions "
                         "for the format of a model trained elsewhere") from error


def _dense(X) -> np.ndarray:
    return X.toarray() if hasattr(X, "toarray") else np.asarray(X)


def check_external(path: Path, conditions: Sequence[str], genes: Sequence[str]) -> None:
    """Stop with an error that names ``path`` unless the predictions it holds cover
    ``conditions`` (a single ``A+ctrl`` may be spelled ``ctrl+A``) and ``genes``, all finite."""
    _check(_read(path), path, conditions, genes)


def _check(stored: ad.AnnData, path: Path, conditions: Sequence[str], genes: Sequence[str]) -> None:
    names = set(stored.obs_names.astype(str))

    def held(condition: str) -> bool:
        gene = condition_genes(condition)
        return condition in names or (len(gene) == 1 and f"{CONTROL}+{gene[0]}" in names)

    missing = [c for c in conditions if not held(c)]
    if missing:
        raise ValueError(
            f"{path}: no prediction for {len(missing)} condition(s) the evaluation needs, e.g. "
            f"{missing[:5]}; obs_names must be conditions in GEARS' spelling (A+B, A+ctrl): every test "
            "condition of the split, and each gene of a test pair alone")
    absent = [g for g in genes if g not in set(stored.var_names.astype(str))]
    if absent:
        raise ValueError(
            f"{path}: {len(absent)} of the prepared data's {len(genes):,} genes are not among its "
            f"var_names, e.g. {absent[:5]}; var_names must be the prepared genes' symbols "
            f"(e.g. {list(genes[:3])})")
    if not np.isfinite(_dense(stored.X)).all():
        raise ValueError(f"{path}: the predictions hold NaN or infinite values")


def read_predictions(model: str, seed: int) -> pd.DataFrame:
    """A model-seed's predicted means (conditions × genes)."""
    path = prediction_path(model, seed)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; train {model!r} with seed {seed} first")
    adata = ad.read_h5ad(path)
    return pd.DataFrame(_dense(adata.X), index=adata.obs_names, columns=adata.var_names)


def cell_eval_anndata(means: pd.DataFrame, real: ad.AnnData, conditions: list[str],
                      seed: int = 0, cells: str = "control_shift") -> tuple[ad.AnnData, ad.AnnData]:
    """Predicted and real cells in the layout cell-eval's ``MetricsEvaluator(adata_pred,
    adata_real, control_pert='ctrl', pert_col='condition')`` reads: the same genes in the same
    order, ``obs['condition']`` with the control cells as ``ctrl`` in both.

    A model here predicts a mean per condition; cell-eval scores cells. Each predicted cell is a
    real control cell shifted by the predicted change over control (GEARS' own form of a
    prediction: perturbation effect + control cell), floored at 0 as log-normalised expression
    is; each condition gets as many cells as it has real ones, drawn with ``seed``.

    With ``cells="mean"`` every predicted cell is the predicted mean itself (floored at 0:
    cell-eval refuses negative expression, which an additive sum can predict), and the predicted
    control cells are the real ones: cell-eval's pseudobulk metrics (Pearson delta, MSE, MAE,
    discrimination) then read exactly that prediction, which is how the agreement
    benchmark (``benchmarks/cell_eval_agreement.py``) compares its numbers with ours.
    """
    if cells not in ("control_shift", "mean"):
        raise ValueError(f"cells must be 'control_shift' or 'mean', not {cells!r}")
    missing = sorted(set(conditions) - set(means.index))
    if missing:
        raise ValueError(f"no prediction for {len(missing)} condition(s), e.g. {missing[:5]}")
    genes = real.var_names
    if not set(genes) <= set(means.columns):
        raise ValueError("the predictions do not cover the real data's genes; export needs all of them")
    labels = real.obs["condition"].astype(str).to_numpy()
    X = real.X.toarray() if hasattr(real.X, "toarray") else np.asarray(real.X)
    control = X[labels == CONTROL]
    control_mean = control.mean(axis=0)
    rng = np.random.default_rng(seed)
    blocks, names = [control], [CONTROL] * len(control)
    for condition in conditions:
        n = int((labels == condition).sum())
        predicted_mean = means.loc[condition, genes].to_numpy()
        if cells == "mean":
            blocks.append(np.tile(np.maximum(predicted_mean, 0.0), (n, 1)))
        else:
            shifted = control[rng.integers(0, len(control), n)] + (predicted_mean - control_mean)
            blocks.append(np.maximum(shifted, 0.0))
        names += [condition] * n
    keep = np.isin(labels, [CONTROL, *conditions])
    var = pd.DataFrame(index=pd.Index(genes.astype(str)))
    predicted = ad.AnnData(X=np.vstack(blocks).astype(np.float32),
                           obs=pd.DataFrame({"condition": pd.Categorical(names)},
                                            index=[f"pred{i}" for i in range(len(names))]), var=var)
    observed = ad.AnnData(X=X[keep].astype(np.float32),
                          obs=pd.DataFrame({"condition": pd.Categorical(labels[keep])},
                                           index=real.obs_names[keep].astype(str)), var=var.copy())
    return predicted, observed
