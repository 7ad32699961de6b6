"""Gene-embedding priors: GO-SVD, embedding files, alias matching."""

import numpy as np
import pandas as pd
import pytest

from helpers.models import priors


@pytest.fixture
def aliases():
    return pd.DataFrame({"symbol": ["CBARP", "MIDEAS", "KLF1"], "alias_symbol": ["C19orf26", "ELMSAN1", "EKLF"]})


def test_go_svd_puts_genes_with_shared_terms_together():
    gene2go = {"A": {"t1", "t2", "t3"}, "B": {"t1", "t2", "t3", "t4"}, "C": {"t7", "t8"}, "D": {"t8", "t9"},
               "E": {"t5"}, "N": set()}
    table = priors.go_svd_embeddings(gene2go, ["A", "B", "C", "D", "E", "N"], n_components=3)
    assert list(table.index) == ["A", "B", "C", "D", "E"]  # N has no annotation
    cos = lambda a, b: float(table.loc[a] @ table.loc[b] / np.linalg.norm(table.loc[a]) / np.linalg.norm(table.loc[b]))  # noqa: E731
    assert cos("A", "B") > 0.9 and abs(cos("A", "C")) < 0.2


def test_alias_matching_both_ways(aliases):
    # the data says C19orf26 while the table uses the current symbol; the data says KLF1 while
    # the table uses an old alias
    matched = priors.match_genes(["C19orf26", "KLF1", "GATA1"], ["CBARP", "EKLF", "TP53"], aliases)
    assert matched == {"C19orf26": "CBARP", "KLF1": "EKLF"}


def test_align_counts_missing_genes_as_zeros(aliases):
    table = pd.DataFrame([[1.0, 2.0], [3.0, 4.0]], index=["CBARP", "KLF1"])
    matrix, report = priors.align_embeddings(table, ["C19orf26", "KLF1", "GATA1"], aliases)
    np.testing.assert_array_equal(matrix, [[1, 2], [3, 4], [0, 0]])
    assert report.found.tolist() == [True, True, False] and report.via_alias.tolist() == [True, False, False]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".npz"])
def test_embedding_files_round_trip(tmp_path, suffix):
    table = pd.DataFrame(np.arange(6, dtype=np.float32).reshape(3, 2), index=["A", "B", "C"])
    path = tmp_path / f"emb{suffix}"
    if suffix == ".npz":
        np.savez(path, genes=np.array(table.index, dtype=str), embeddings=table.to_numpy())
    elif suffix == ".parquet":
        table.rename(columns=str).rename_axis("gene").reset_index().to_parquet(path)
    else:
        table.to_csv(path, sep="\t" if suffix == ".tsv" else ",")
    read = priors.read_embedding_table(path)
    np.testing.assert_array_equal(read.to_numpy(), table.to_numpy())
    assert list(read.index) == ["A", "B", "C"]


def test_bad_embedding_files_are_clear_errors(tmp_path):
    dup = tmp_path / "dup.csv"
    pd.DataFrame([[1.0], [2.0]], index=["A", "A"]).to_csv(dup)
    with pytest.raises(priors.EmbeddingFileError, match="more than once.*A"):
        priors.read_embedding_table(dup)
    text = tmp_path / "text.csv"
    pd.DataFrame([["x"], ["y"]], index=["A", "B"]).to_csv(text)
    with pytest.raises(priors.EmbeddingFileError, match="must be numbers"):
        priors.read_embedding_table(text)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(priors.EmbeddingFileError, match="unknown format"):
        priors.read_embedding_table(tmp_path / "x.json")
    with pytest.raises(priors.EmbeddingFileError, match="file not found"):
        priors.read_embedding_table(tmp_path / "missing.csv")


def test_prior_target_is_chosen_on_validation_per_prior():
    validation = pd.DataFrame({
        "prior": ["a", "a", "a", "b", "b", "b", "b"],
        "target": ["gene", "perturbation", "both", "gene", "gene", "perturbation", "both"],
        "val_mse_top20_de": [0.30, 0.20, 0.25, 0.10, 0.30, 0.20, 0.19]})
    choice = priors.choose_prior_target(validation)
    assert choice.query("chosen").set_index("prior").target.to_dict() == {"a": "perturbation", "b": "both"}
    assert choice.query("prior == 'b' and target == 'gene'").val_mse_top20_de.item() == pytest.approx(0.20)
    tie = pd.DataFrame({"prior": ["c", "c"], "target": ["both", "gene"], "val_mse_top20_de": [0.1, 0.1]})
    assert priors.choose_prior_target(tie).query("chosen").target.item() == "gene"
    with pytest.raises(ValueError, match="unknown prior target.*genes"):
        priors.choose_prior_target(tie.assign(target=["genes", "gene"]))


def test_go_categories_pick_large_distinct_terms():
    gene2go = {f"R{i}": {"ribo", "transl"} for i in range(12)}  # transl ~ ribo: not both
    gene2go |= {f"C{i}": {"cycle"} for i in range(11)} | {"X": {"rare"}, "B": {"ribo", "cycle"}}
    names = {"ribo": "ribosome", "transl": "translation", "cycle": "cell cycle", "rare": "rare"}
    genes = list(gene2go) + ["U"]
    labels = priors.go_categories(gene2go, genes, names, n_categories=3, min_genes=10)
    assert set(labels) == {"ribosome", "cell cycle", "other"}  # rare is too small, transl redundant
    assert labels["R0"] == "ribosome" and labels["C3"] == "cell cycle" and labels["U"] == "other"
    assert labels["B"] == "cell cycle"  # the smaller (more specific) of its two chosen terms


def test_leading_component_correlation_finds_an_expression_axis():
    rng = np.random.default_rng(0)
    level = pd.Series(rng.uniform(0, 5, 200), index=[f"g{i}" for i in range(200)])
    table = pd.DataFrame(np.outer(level, rng.normal(size=8)) + rng.normal(0, 0.1, (200, 8)), index=level.index)
    assert priors.leading_component_correlation(table, level) > 0.95
    assert priors.leading_component_correlation(table.sample(frac=1, random_state=0), level) > 0.95  # by name
    noise = pd.DataFrame(rng.normal(size=(200, 8)), index=level.index)
    assert priors.leading_component_correlation(noise, level) < 0.3


def test_neighbour_agreement_against_its_chance_rate():
    rng = np.random.default_rng(0)
    centres = {"a": np.r_[5.0, 0, 0], "b": np.r_[0, 5.0, 0], "c": np.r_[0, 0, 5.0]}
    labels = pd.Series([lab for lab in "abc" for _ in range(10)], index=[f"g{i}" for i in range(30)])
    clustered = pd.DataFrame([centres[lab] + rng.normal(0, 0.5, 3) for lab in labels], index=labels.index)
    rate, chance, n = priors.neighbour_agreement(clustered, labels, k=5)
    assert n == 30 and rate == 1.0 and chance == pytest.approx(9 / 29)
    shuffled = pd.Series(rng.permutation(labels.to_numpy()), index=labels.index)
    rate, chance, _ = priors.neighbour_agreement(clustered, shuffled, k=5)
    assert abs(rate - chance) < 0.2  # labels unrelated to the vectors: about chance
    unlabelled = priors.neighbour_agreement(clustered, labels.iloc[:1], k=5)
    assert np.isnan(unlabelled[0]) and unlabelled[2] == 1
