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


def test_align_priors_reports_coverage_and_keeps_column_names_through_parquet(tmp_path, aliases):
    tables = {"one": pd.DataFrame([[1.0, 2.0], [3.0, 4.0]], index=["CBARP", "KLF1"]),
              "two": pd.DataFrame([[5.0]], index=["GATA1"], columns=["d"])}
    built = priors.align_priors(tables, ["C19orf26", "KLF1", "GATA1"], aliases, ["KLF1", "GATA1"])
    assert list(built.tables["one"].columns) == ["0", "1"]  # column names as strings
    np.testing.assert_array_equal(built.tables["one"].to_numpy(), [[1, 2], [3, 4], [0, 0]])
    assert built.coverage.prior.tolist() == ["one"] * 3 + ["two"] * 3
    assert built.coverage.perturbed.tolist() == [False, True, True] * 2
    assert built.summary.to_dict("index") == {
        "one": {"genes": 3, "found": 2, "found_via_alias": 1, "perturbed_found": 1},
        "two": {"genes": 3, "found": 1, "found_via_alias": 0, "perturbed_found": 1}}
    built.tables["one"].to_parquet(tmp_path / "one.parquet")  # as the priors' run writes it
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "one.parquet"), built.tables["one"])
    with pytest.raises(priors.EmbeddingFileError, match="^my.csv: none of its 1 genes"):
        priors.align_priors({"x": pd.DataFrame([[1.0]], index=["TP53"])}, ["KLF1"], aliases, [],
                            {"x": "my.csv"})


def test_go_coverage_sentence_counts_annotated_genes():
    text = priors.go_coverage_sentence({"A": {"t1"}, "B": set(), "Z": {"t2"}}, ["A", "B", "C", "D"])
    assert text.startswith("1 of the data's 4 genes (25%) have a GO annotation in the shipped "
                           "org.Hs.eg.db table (3 annotated human genes)")


def test_known_genes_are_those_with_a_non_zero_vector_in_the_given_order():
    table = pd.DataFrame([[0.0, 0.0], [1.0, 0.0], [0.0, -2.0]], index=["A", "B", "C"])
    assert priors.known_genes(table, ["C", "A", "B", "D"]) == ["C", "B"]


def test_go_and_cluster_structure_of_clustered_vectors():
    rng = np.random.default_rng(0)
    centres = {0: np.r_[5.0, 0, 0], 1: np.r_[0, 5.0, 0]}
    clusters = pd.Series([0] * 4 + [1] * 4 + [-1, -1], index=[f"g{i}" for i in range(10)])
    # the unclustered genes lean towards cluster 0
    table = pd.DataFrame([centres.get(c, np.r_[3.0, 0, 4.0]) + rng.normal(0, 0.3, 3) for c in clusters],
                         index=clusters.index)
    assert priors.cluster_labels(clusters).to_dict() == {f"g{i}": f"cluster {i // 4}" for i in range(8)}
    neighbours, agreement = priors.cluster_structure(table, clusters, ["g0", "KLF1", "g9"], "p", k=2)
    assert neighbours.columns.tolist() == ["query", "rank", "gene", "cosine", "prior", "query_cluster",
                                           "neighbour_cluster"]
    assert neighbours["query"].tolist() == ["g0", "g0", "g9", "g9"] and set(neighbours.prior) == {"p"}
    assert neighbours.query_cluster.tolist() == [0, 0, -1, -1]
    assert neighbours.neighbour_cluster.tolist() == [0, 0, -1, 0]  # g9's one unclustered twin, then cluster 0
    assert agreement == {"cluster_neighbours_same": 1.0, "cluster_chance": pytest.approx(3 / 7),
                         "clustered_genes": 8}
    categories = clusters.map({0: "a", 1: "b", -1: "other"})
    structure = priors.go_structure(table, pd.Series(np.arange(10.0), index=table.index), categories, k=3)
    assert structure["go_neighbours_same_process"] == 1.0 and structure["go_genes"] == 8
    assert structure["go_chance"] == pytest.approx(3 / 7) and 0 <= structure["pc1_expression_rho"] <= 1
    empty, _ = priors.cluster_structure(table, clusters, ["KLF1"], "p")
    assert empty.empty and "query_cluster" in empty  # no query in the table: an empty table, not an error


def test_prior_structure_gives_one_row_per_prior_and_every_query_neighbour(tmp_path):
    rng = np.random.default_rng(1)
    clusters = pd.Series([0] * 4 + [1] * 4, index=[f"g{i}" for i in range(8)])
    tables = {name: pd.DataFrame(rng.normal(0, 1, (8, 3)), index=clusters.index) for name in ("a", "b")}
    aligned = priors.AlignedPriors(tables, pd.DataFrame())
    categories = clusters.map({0: "x", 1: "y"})
    expression = pd.Series(np.arange(8.0), index=clusters.index)
    structure, neighbours = priors.prior_structure(aligned, list(clusters.index), ["g0", "g1", "g4", "g5"],
                                                   expression, categories, clusters, ["g0"])
    assert structure.prior.tolist() == ["a", "b"] and set(neighbours.prior) == {"a", "b"}
    for name, table in tables.items():  # each row is what go_structure and cluster_structure say
        row = structure.set_index("prior").loc[name]
        assert row.pc1_expression_rho == priors.go_structure(table, expression, categories)["pc1_expression_rho"]
        near, agreement = priors.cluster_structure(table.loc[["g0", "g1", "g4", "g5"]], clusters, ["g0"], name)
        assert row.cluster_chance == agreement["cluster_chance"]
        assert neighbours.query("prior == @name").gene.tolist() == near.gene.tolist()
    for name in ("a", "old"):
        (tmp_path / f"{name}.parquet").write_bytes(b"x")
    priors.remove_stale(tmp_path, ["a"])  # a prior given last time but not now must not be trained on
    assert [p.name for p in tmp_path.iterdir()] == ["a.parquet"]


def _write_priors(folder, names):
    for i, name in enumerate(names):
        pd.DataFrame([[float(i + 1)]], index=["KLF1"], columns=["d"]).to_parquet(folder / f"{name}.parquet")


def test_load_priors_checks_targets_and_names_and_falls_back_to_the_first_prior(tmp_path):
    _write_priors(tmp_path, ["go_svd", "genemamba", "file"])
    chosen = priors.load_priors(tmp_path, None, ["gene"], "genemamba")
    assert chosen.names == ["file", "genemamba", "go_svd"] and chosen.selector == "genemamba"
    assert list(chosen.tables) == ["file", "genemamba", "go_svd"]
    assert chosen.tables["genemamba"].loc["KLF1", "d"] == 2.0
    import hashlib
    assert chosen.digests["go_svd"] == hashlib.sha256((tmp_path / "go_svd.parquet").read_bytes()).hexdigest()
    only = priors.load_priors(tmp_path, ["go_svd"], ["gene", "both"], "genemamba")
    assert only.names == ["go_svd"] and list(only.tables) == ["go_svd", "genemamba"]  # the selector too
    assert priors.load_priors(tmp_path, ["go_svd"], ["gene"], "absent").selector == "go_svd"
    with pytest.raises(ValueError, match="non-empty list"):
        priors.load_priors(tmp_path, None, [], "genemamba")
    with pytest.raises(ValueError, match="drawn from"):
        priors.load_priors(tmp_path, None, ["genes"], "genemamba")
    with pytest.raises(FileNotFoundError, match=r"no embeddings for \['other'\].*built: \['file', 'genemamba'"):
        priors.load_priors(tmp_path, ["other"], ["gene"], "genemamba")


def test_prior_coverage_counts_genes_and_graph_nodes_with_a_vector(aliases):
    table = pd.DataFrame([[1.0], [0.0], [2.0]], index=["CBARP", "GATA1", "EKLF"])
    counts = priors.prior_coverage(table, ["C19orf26", "GATA1", "TP53"], ["KLF1", "GATA1"], aliases)
    assert counts == {"genes_with_vector": 1, "genes": 3, "graph_nodes_with_vector": 1, "graph_nodes": 2}


def test_target_selection_takes_each_runs_best_validation():
    curves = pd.DataFrame({"prior": ["a"] * 4, "target": ["gene", "gene", "both", "both"],
                           "val_mse_top20_de": [0.5, 0.2, 0.3, 0.25]})
    choice = priors.target_selection(curves, seed=7)
    assert choice.to_dict("list") == {"prior": ["a", "a"], "target": ["both", "gene"],
                                      "val_mse_top20_de": [0.25, 0.2], "chosen": [False, True],
                                      "seed": [7, 7]}
