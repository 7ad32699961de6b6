"""The GO perturbation graph equals GEARS' own construction."""

import warnings

import numpy as np
import pandas as pd
import pytest

from helpers import graphs, reference


def gears_go_graph(gene2go, genes, k):
    """cell-gears 0.1.2's make_GO + get_similarity_network, on an in-memory gene2go."""
    from gears.utils import get_GO_edge_list

    edges = []
    for gene in genes:
        edges += get_GO_edge_list((gene, {g: set(gene2go[g]) for g in genes}))
    df = pd.DataFrame(edges, columns=["source", "target", "importance"])
    with warnings.catch_warnings():  # pandas deprecates apply on grouping columns; GEARS does it
        warnings.simplefilter("ignore", FutureWarning)
        return df.groupby("target").apply(lambda x: x.nlargest(k + 1, ["importance"])).reset_index(drop=True)


def test_jaccard_on_constructed_sets():
    gene2go = {"A": {"t1", "t2"}, "B": {"t2", "t3"}, "C": {"t9"}, "D": set()}
    edges = graphs.go_jaccard_edges(gene2go, ["A", "B", "C", "D"], threshold=0.1)
    weights = {(s, t): w for s, t, w in edges.itertuples(index=False)}
    assert weights[("A", "B")] == pytest.approx(1 / 3)
    assert weights[("A", "A")] == 1.0
    assert ("A", "C") not in weights  # Jaccard 0
    assert "D" not in set(edges.source)  # no annotation, no node


def test_go_graph_equals_cell_gears_on_real_annotations():
    gene2go = reference.gene2go()
    perturbed = sorted({g for c in reference.norman_conditions().condition for g in c.split("+")
                        if g != "ctrl" and g in gene2go})
    ours = graphs.go_perturbation_graph(gene2go, perturbed, k=5)
    theirs = gears_go_graph(gene2go, perturbed, k=5)
    key = ["target", "source"]
    ours_sorted = ours.sort_values(key).reset_index(drop=True)
    theirs_sorted = theirs.sort_values(key).reset_index(drop=True)
    assert len(ours) == len(theirs) > 0
    assert (ours_sorted[key] == theirs_sorted[key]).all().all()
    np.testing.assert_allclose(ours_sorted.importance, theirs_sorted.importance)
    assert ours.groupby("target").size().max() == 6  # k neighbours plus the self-loop


def test_cell_gears_csv_has_its_columns(tmp_path):
    edges = graphs.go_perturbation_graph({"A": {"t"}, "B": {"t"}}, ["A", "B"], k=1)
    path = graphs.write_gears_go_csv(edges, tmp_path / "go_essential_norman.csv")
    assert pd.read_csv(path).columns.tolist() == ["source", "target", "importance"]
    with pytest.raises(ValueError, match="importance"):
        graphs.write_gears_go_csv(edges.drop(columns="importance"), tmp_path / "bad.csv")
    assert not (tmp_path / "bad.csv").exists()


def test_coexpression_edges_match_numpy_correlation_dense_and_sparse():
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    X = rng.poisson(rng.uniform(0.1, 3, 40), (500, 40)).astype(np.float32)
    X[:, 7] = 0.0  # a gene never expressed: no correlation, no edge
    genes = [f"g{i}" for i in range(40)]
    dense = graphs.coexpression_edges(X, genes, k=5, threshold=0.05, block_rows=64)
    sparse = graphs.coexpression_edges(sp.csr_matrix(X), genes, k=5, threshold=0.05, block_rows=128)
    pd.testing.assert_frame_equal(dense, sparse)
    with np.errstate(invalid="ignore", divide="ignore"):
        reference = np.abs(np.nan_to_num(np.corrcoef(X.T.astype(np.float64))))
    for row in dense.itertuples():
        assert row.importance == pytest.approx(reference[int(row.target[1:]), int(row.source[1:])], abs=1e-10)
    assert "g7" not in set(dense.source) | set(dense.target)
