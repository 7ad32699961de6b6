"""Bad input, gathered in one place: each case goes through the path a user takes (a notebook run
as `make book` or papermill would run it, or the helper a notebook calls), expects an error that
names the file or parameter, what is wrong and what to do, and checks that nothing new or
half-written is left in ``results/``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import papermill
import pytest
import scipy.sparse as sp
import torch

from conftest import make_gears_adata
from helpers import book, conditions, splits
from helpers.models import genemamba, priors
from helpers.reference import gene2go, norman_conditions


def snapshot(results: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(results)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in results.rglob("*") if p.is_file()} if results.exists() else {}


def assert_nothing_new_or_partial(results: Path, before: dict[str, tuple[int, int]]) -> None:
    """No temporary ``.part`` file, and no file added or changed since ``before`` (a failing step
    may only have removed its own ``run.json``, so it is not taken for finished)."""
    after = snapshot(results)
    assert not [p for p in after if ".part" in p], after
    changed = sorted(p for p in after if after[p] != before.get(p))
    assert changed == [], f"the failed run left {changed}"
    removed = sorted(set(before) - set(after))
    assert all(p.endswith("run.json") for p in removed), removed


def run_notebook_expecting(name: str, parameters: dict, error: str, *patterns: str,
                           executed_dir: Path) -> str:
    """Execute a notebook, expect it to stop with ``error`` whose message matches every pattern."""
    with pytest.raises(papermill.PapermillExecutionError) as failure:
        book.execute(name, {"profile": "quick", **parameters}, executed_dir=executed_dir)
    assert failure.value.ename == error, failure.value.evalue
    for pattern in patterns:
        assert pattern in failure.value.evalue, (pattern, failure.value.evalue)
    assert (executed_dir / f"{name}.failed.ipynb").is_file()  # kept for the user to inspect
    assert not (executed_dir / f"{name}.ipynb").exists()
    return failure.value.evalue


# --- a user's own .h5ad through the data chapter ---------------------------------------------

def drop_obs_condition(adata):
    adata.obs = adata.obs.drop(columns="condition")


def drop_var_gene_name(adata):
    adata.var = adata.var.drop(columns="gene_name")


def underscore_spelling(adata):
    adata.obs["condition"] = adata.obs.condition.astype(str).str.replace("+", "_")


def pipe_spelling(adata):
    adata.obs["condition"] = adata.obs.condition.astype(str).str.replace("A+B", "A|B", regex=False)


def nan_values(adata):
    X = adata.X.toarray()
    X[X > 2] = np.nan
    adata.X = sp.csr_matrix(X)


def negative_values(adata):
    adata.X = sp.csr_matrix(adata.X.toarray() - 1)  # centred data


def raw_counts(adata):
    adata.X = sp.csr_matrix(np.round(np.expm1(adata.X.toarray()) / 100))


def one_pair_of_real_genes(adata):
    """Norman's design (a pair among singles) with too few genes for every subgroup."""
    genes = ["KLF1", "CEBPE", "ETS2", "FOXA1", "MAPK1", "CNN1", "FEV", "ISL2"]
    labels = ["ctrl" if c == "ctrl" else "KLF1+CEBPE" if c == "A+B" else f"{genes[i % len(genes)]}+ctrl"
              for i, c in enumerate(adata.obs.condition.astype(str))]
    adata.obs["condition"] = labels


def singles_of_two_real_genes(adata):
    """A single-gene screen of two genes: nothing left to validate on."""
    labels = ["ctrl" if c == "ctrl" else "KLF1+ctrl" if c == "A+ctrl" else "CEBPE+ctrl"
              for c in adata.obs.condition.astype(str)]
    adata.obs["condition"] = labels


def one_cell_condition(adata):
    labels = adata.obs.condition.astype(str).to_numpy().copy()
    labels[np.flatnonzero(labels == "A+B")[0]] = "C+ctrl"
    adata.obs["condition"] = labels


H5AD_CASES: dict[str, tuple[Callable, str, tuple[str, ...]]] = {
    "missing obs['condition']": (drop_obs_condition, "DataValidationError",
                                 ("obs['condition']: column is missing", "What to do:")),
    "missing var['gene_name']": (drop_var_gene_name, "DataValidationError",
                                 ("var['gene_name']: column is missing", "What to do:")),
    "conditions spelt A_B": (underscore_spelling, "DataValidationError",
                             ("not in GEARS spelling", "'A+B'")),
    "conditions spelt A|B": (pipe_spelling, "DataValidationError", ("'A|B'", "'A+B'")),
    "NaN in X": (nan_values, "DataValidationError", ("X: contains NaN", "What to do:")),
    "negative values in X": (negative_values, "DataValidationError", ("negative values", "log1p")),
    "raw counts in X": (raw_counts, "DataValidationError", ("raw counts", "sc.pp.normalize_total")),
    "a condition with one cell": (one_cell_condition, "DataValidationError",
                                  ("single cell (C+ctrl)", "at least two cells", "What to do:")),
    "an empty test subgroup": (one_pair_of_real_genes, "ValueError",
                               ("'combo_seen0'", "would be empty", "What to do:")),
    "too few genes to validate on": (singles_of_two_real_genes, "ValueError",
                                     ("training set would be empty", "2 genes", "What to do:")),
}


@pytest.mark.parametrize("case", list(H5AD_CASES))
def test_bad_h5ad_stops_the_data_chapter_clearly(case, tmp_path, isolated_results):
    break_it, error, patterns = H5AD_CASES[case]
    adata = make_gears_adata({"ctrl": 30, "A+ctrl": 10, "ctrl+B": 10, "A+B": 10})
    break_it(adata)
    path = tmp_path / "my_screen.h5ad"
    adata.write_h5ad(path)
    message = run_notebook_expecting("01_prepare_data", {"data_source": str(path)}, error, *patterns,
                                     executed_dir=tmp_path / "executed")
    if error == "DataValidationError":
        assert message.startswith(str(path))  # names the file
    assert_nothing_new_or_partial(isolated_results, {})


def test_truncated_or_missing_h5ad(tmp_path, isolated_results):
    path = tmp_path / "screen.h5ad"
    make_gears_adata({"ctrl": 30, "A+ctrl": 10}).write_h5ad(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    run_notebook_expecting("01_prepare_data", {"data_source": str(path)}, "DataValidationError",
                           str(path), "truncated", executed_dir=tmp_path / "executed")
    run_notebook_expecting("01_prepare_data", {"data_source": str(tmp_path / "nope.h5ad")},
                           "DataValidationError", "file not found", "data_source='simulated'",
                           executed_dir=tmp_path / "executed")
    assert_nothing_new_or_partial(isolated_results, {})


@pytest.mark.parametrize("parameters, patterns", [
    ({"profile": "fast"}, ("unknown profile 'fast'", "'quick'", "'default'")),
    ({"split_name": "combo_seen0"}, ("unknown split 'combo_seen0'", "'simulation'", "not built")),
])
def test_unknown_profile_or_split_is_rejected_before_any_work(parameters, patterns, tmp_path,
                                                              isolated_results):
    run_notebook_expecting("01_prepare_data", parameters, "ValueError", *patterns,
                           executed_dir=tmp_path / "executed")
    assert_nothing_new_or_partial(isolated_results, {})


def test_papermill_parameter_typo_is_rejected_before_running(tmp_path, isolated_results):
    with pytest.raises(ValueError, match=r"01_prepare_data.py: unknown parameter\(s\) \['profil'\]; "
                                         r"it takes \[.*'profile'"):
        book.execute("01_prepare_data", {"profil": "quick"}, executed_dir=tmp_path / "executed")
    assert not (tmp_path / "executed").exists()
    assert_nothing_new_or_partial(isolated_results, {})


def test_gene_without_go_is_dropped_with_a_warning_that_lists_it():
    added = ["NOTAGENE+ctrl", "KLF1+NOTAGENE"]
    with pytest.warns(UserWarning, match=r"perturbation\(s\) dropped because a gene has no GO "
                                         r"annotation.*NOTAGENE\+ctrl, KLF1\+NOTAGENE"):
        split = splits.simulation_split(norman_conditions().condition.tolist() + added, set(gene2go()))
    assert set(added) <= set(split.excluded_not_in_go)
    assert not set(added) & set(split.train + split.val + split.test)


# --- later chapters on a finished quick book -----------------------------------------------------

@pytest.mark.slow
def test_combination_not_in_the_test_set(finished_results, tmp_path):
    before = snapshot(finished_results)
    run_notebook_expecting("21_inspect_combination", {"combination": "KLF1+NOTAGENE"}, "ValueError",
                           "'KLF1+NOTAGENE' is not one of the 71 test combinations", "Choose one of:",
                           "ETS2+CEBPE", executed_dir=tmp_path / "executed")
    assert_nothing_new_or_partial(finished_results, before)


@pytest.mark.slow
def test_corrupt_genemamba_checkpoint(finished_results, tmp_path):
    checkpoint = finished_results / "12_pretrain_genemamba" / "genemamba.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    before = snapshot(finished_results)
    run_notebook_expecting("13_gene_embeddings", {}, "ValueError", str(checkpoint),
                           "cannot be read as a GeneMamba checkpoint", "force=True",
                           executed_dir=tmp_path / "executed")
    assert_nothing_new_or_partial(finished_results, before)
    assert not (finished_results / "13_gene_embeddings" / "run.json").exists()  # not taken as done


@pytest.mark.slow
def test_embedding_file_with_unmatched_genes(finished_results, tmp_path):
    ensembl = tmp_path / "ensembl_keyed.csv"
    pd.DataFrame(np.ones((3, 4)), index=["ENSG00000105610", "ENSG00000092067", "ENSG00000157557"]).to_csv(ensembl)
    before = snapshot(finished_results)
    run_notebook_expecting("13_gene_embeddings", {"embedding_file": str(ensembl)}, "EmbeddingFileError",
                           str(ensembl), "none of its 3 genes (first: ENSG00000105610", "gene symbols",
                           executed_dir=tmp_path / "executed")
    assert_nothing_new_or_partial(finished_results, before)


def test_embedding_file_with_duplicated_genes(tmp_path):
    path = tmp_path / "dup.csv"
    pd.DataFrame([[1.0], [2.0], [3.0]], index=["KLF1", "KLF1", "CEBPE"]).to_csv(path)
    with pytest.raises(priors.EmbeddingFileError, match=rf"{path}: 1 gene\(s\) appear more than once "
                                                        r"\(KLF1\). What to do: keep one row per gene"):
        priors.read_embedding_table(path)


def test_checkpoint_from_another_gene_set(tmp_path):
    config = genemamba.GeneMambaConfig(vocab_size=5 + genemamba.N_SPECIAL_TOKENS, d_model=16, head_dim=8)
    model = genemamba.GeneMamba(config, seed=0)
    torch.save({"config": config.__dict__, "genes": ["A", "B", "C", "D"], "state_dict": model.state_dict()},
               tmp_path / "other_genes.pt")
    with pytest.raises(ValueError, match="5 gene embeddings for 4 genes.*another gene set.*force=True"):
        genemamba.embedding_table(tmp_path / "other_genes.pt")


def test_combination_helper_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"'A\+Z' is not one of the 2 test combinations. "
                                         r"Choose one of: A\+B, C\+D"):
        conditions.resolve_combination("A+Z", ["ctrl", "A+B", "C+D", "A+ctrl"])
