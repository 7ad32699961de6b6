"""Loading, validating and processing GEARS-format AnnData."""

import re
import zipfile

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import make_gears_adata
from helpers import data, de_genes, download, simulator


@pytest.fixture
def small():
    return make_gears_adata({"ctrl": 30, "A+ctrl": 10, "ctrl+B": 10, "A+B": 10, "C+ctrl": 8})


def relabel(adata, change):
    adata.obs = adata.obs.assign(condition=change(adata.obs.condition.astype(str)))


def written(adata, path):
    adata.write_h5ad(path)
    return path


def test_valid_adata_passes_and_reports_unexpressed_perturbed_genes(small):
    assert data.validate_gears_adata(small) == ["A", "B", "C"]  # genes are G0..G29
    small.var["gene_name"] = ["A", "B", "C"] + list(small.var.gene_name[3:])
    assert data.validate_gears_adata(small) == []


@pytest.mark.parametrize("break_it, field, hint", [
    (lambda a: a.obs.drop(columns="condition", inplace=True), r"obs\['condition'\]", "GEARS spelling"),
    (lambda a: a.var.drop(columns="gene_name", inplace=True), r"var\['gene_name'\]", "gene symbols"),
    (lambda a: relabel(a, lambda c: c.str.replace("+", "_")), r"obs\['condition'\]", "'A\\+B'"),
    (lambda a: relabel(a, lambda c: c.str.replace("A+B", "A|B", regex=False)),
     r"obs\['condition'\]", "'A\\+B'"),
    (lambda a: relabel(a, lambda c: c.str.replace("ctrl+", "", regex=False)),
     r"obs\['condition'\]", "has no '\\+'"),
    (lambda a: setattr(a, "X", sp.csr_matrix(np.where(a.X.toarray() > 2, np.nan, a.X.toarray()))),
     "X", "NaN"),
    (lambda a: setattr(a, "X", sp.csr_matrix(a.X.toarray() - 1)), "X", "negative"),
    (lambda a: setattr(a, "X", sp.csr_matrix(np.round(np.expm1(a.X.toarray()) / 100))), "X", "raw counts"),
    (lambda a: setattr(a, "X", sp.csr_matrix(np.expm1(a.X.toarray()))), "X", "log1p"),
])
def test_bad_adata_gets_an_error_naming_file_field_and_fix(small, break_it, field, hint):
    break_it(small)
    with pytest.raises(data.DataValidationError, match=field) as error:
        data.validate_gears_adata(small, "my_screen.h5ad")
    message = str(error.value)
    assert message.startswith("my_screen.h5ad: ") and "What to do:" in message
    assert re.search(hint, message)


def test_missing_control_is_an_error(small):
    small = small[small.obs.condition != "ctrl"].copy()
    with pytest.raises(data.DataValidationError, match="no control cells"):
        data.validate_gears_adata(small, "x.h5ad")


def test_read_relabels_cell_type_and_warns_about_unexpressed_genes(small, tmp_path):
    small.obs["cell_type"] = "A549"
    with pytest.warns(UserWarning, match="3 perturbed gene"):
        adata = data.read_gears_h5ad(written(small, tmp_path / "norman.h5ad"))
    assert set(adata.obs.cell_type) == {"K562"} and set(adata.obs.cell_type_original) == {"A549"}


def test_truncated_or_missing_file_is_a_clear_error(small, tmp_path):
    path = written(small, tmp_path / "screen.h5ad")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(data.DataValidationError, match="truncated"):
        data.read_gears_h5ad(path)
    with pytest.raises(data.DataValidationError, match="file not found"):
        data.read_gears_h5ad(tmp_path / "nope.h5ad")


def test_subsample_caps_cells_per_condition(small):
    capped = data.subsample_cells(small, max_cells_per_condition=4, max_control_cells=12, seed=0)
    counts = capped.obs.condition.value_counts()
    assert counts["ctrl"] == 12 and counts[["A+ctrl", "ctrl+B", "A+B", "C+ctrl"]].eq(4).all()
    again = data.subsample_cells(small, 4, 12, seed=0)
    assert list(again.obs_names) == list(capped.obs_names)


def test_de_genes_equal_cell_gears():
    from gears.data_utils import get_DE_genes, get_dropout_non_zero_genes

    scaffold = simulator.norman_scaffold(n_high_mean_genes=60)
    adata, _ = simulator.simulate_perturb_seq(scaffold, max_cells_per_condition=6,
                                              max_control_cells=60, progress=False)
    adata = adata[adata.obs.condition.isin(["ctrl", "KLF1+ctrl", "CEBPE+ctrl", "CEBPE+KLF1",
                                            "ETS2+ctrl", "ETS2+CEBPE"])].copy()
    theirs = adata.copy()
    theirs.obs["condition"] = theirs.obs.condition.astype(str)
    theirs = get_dropout_non_zero_genes(get_DE_genes(theirs, skip_calc_de=False))
    ours = adata.copy()
    de_genes.add_de_genes(ours)
    assert ours.uns["rank_genes_groups_cov_all"] == theirs.uns["rank_genes_groups_cov_all"]
    for key in ("top_non_dropout_de_20", "top_non_zero_de_20", "non_zeros_gene_idx", "non_dropout_gene_idx"):
        assert ours.uns[key].keys() == theirs.uns[key].keys()
        for name in ours.uns[key]:
            assert list(ours.uns[key][name]) == list(theirs.uns[key][name]), (key, name)
    assert (ours.obs.condition_name.astype(str) == theirs.obs.condition_name.astype(str)).all()
    # (at 6 cells the target, a barely-expressed regulator, need not lead its downstream genes:
    # tests/test_simulator.py checks that CRISPRa raises it)
    assert de_genes.top_de_genes(ours, "KLF1+ctrl") == list(theirs.uns["top_non_dropout_de_20"]["K562_KLF1+ctrl_1+1"])


def test_unreachable_download_fails_clearly_and_leaves_nothing(tmp_path):
    with pytest.raises(download.DataSourceUnavailable, match="cannot download") as error:
        download.download_norman(tmp_path, url="http://127.0.0.1:9/norman.zip", timeout=5)
    assert "data_source=" in str(error.value) and "check the network" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_download_checks_size_and_unpacks(small, tmp_path):
    source = tmp_path / "served"
    source.mkdir()
    h5ad = written(small, source / "perturb_processed.h5ad")
    with zipfile.ZipFile(source / "norman.zip", "w") as archive:
        archive.write(h5ad, download.NORMAN_H5AD_MEMBER)
    url = (source / "norman.zip").as_uri()
    size = (source / "norman.zip").stat().st_size
    with pytest.raises(download.DataSourceUnavailable, match="expected"):
        download.download_norman(tmp_path / "bad", url=url, expected_bytes=size + 1)
    assert not any((tmp_path / "bad").rglob("*.zip"))
    path = download.download_norman(tmp_path / "cache", url=url, expected_bytes=size)
    assert ad.read_h5ad(path).n_obs == small.n_obs
    assert download.download_norman(tmp_path / "cache", url="http://127.0.0.1:9/") == path  # cached


def test_depth_table_and_rank_context_on_simulated_cells():
    import anndata as ad
    import scipy.sparse as sp

    counts = np.array([[5, 0, 1, 0], [0, 2, 3, 0], [4, 4, 0, 0]], dtype=np.float32)
    adata = ad.AnnData(X=sp.csr_matrix(np.log1p(counts)),
                       obs=pd.DataFrame({"condition": ["ctrl", "ctrl", "A+ctrl"],
                                         "total_counts": counts.sum(axis=1),
                                         "n_genes_by_counts": (counts > 0).sum(axis=1)},
                                        index=["c1", "c2", "c3"]),
                       var=pd.DataFrame({"gene_name": ["G1", "G2", "G3", "G4"]}, index=["G1", "G2", "G3", "G4"]))
    table = simulator.depth_table(adata)
    assert table.at["median UMIs per cell", "simulated"] == 6
    assert table.at["median detected genes per cell", "simulated"] == 2
    assert table.at["non-zero share of the matrix", "simulated"] == pytest.approx(6 / 12)
    assert table.at["median UMIs per cell", "norman"] == 2999
    # a 2-token context (<cls> + 1 gene): only each control cell's top gene is seen
    assert data.genes_outside_rank_context(adata, ["G1", "G2", "G3", "G4"], 2) == ["G2", "G4"]
    assert data.genes_outside_rank_context(adata, ["G1", "G2", "G3", "G4"], 3) == ["G4"]
    with pytest.raises(ValueError, match="total_counts"):
        simulator.depth_table(ad.AnnData(X=adata.X, obs=adata.obs[["condition"]], var=adata.var))


def test_content_signature_follows_the_data_not_their_format_or_last_bits(small):
    """Prepared data's signature: the same values dense or sparse (explicit zeros, unsorted
    indices), or off by a few units in the last place (another CPU's log1p), are the same data;
    one cell's values 1% higher, one cell's condition, one gene's name or the split are not."""
    from helpers.splits import SimulationSplit

    fields = {"test": ["A+B"], "test_subgroup": {"combo_seen2": ["A+B"]}, "excluded_not_in_go": [],
              "val_subgroup": {"unseen_single": ["C+ctrl"]}, "seed": 1, "train_gene_set_size": 0.75,
              "combo_seen2_train_frac": 0.75}
    split = SimulationSplit(train=["A+ctrl", "ctrl+B"], val=["C+ctrl"], **fields)
    reference = data.content_signature(small, split)
    assert len(reference["layout"]) == 16
    assert reference["sums"][0] == pytest.approx(small.X.toarray().astype(np.float64).sum(), rel=1e-12)
    dense = small.copy()
    dense.X = small.X.toarray()
    messy = small.copy()
    coo = small.X.tocoo()
    order = np.random.default_rng(0).permutation(coo.nnz)  # entries shuffled within their rows
    messy.X = sp.csr_matrix((np.r_[coo.data[order], 0.0], (np.r_[coo.row[order], 0], np.r_[coo.col[order], 0])),
                            shape=coo.shape)  # and an explicit zero added to (0, 0)'s entry
    last_bits = small.copy()
    last_bits.X = small.X.copy()
    units = np.random.default_rng(1).integers(-4, 5, last_bits.X.nnz).astype(np.float32)
    last_bits.X.data = last_bits.X.data + units * np.spacing(last_bits.X.data)
    assert (last_bits.X.data != small.X.data).mean() > 0.8
    for same in (dense, messy, last_bits):
        assert data.same_content(data.content_signature(same, split), reference)

    changed = small.copy()
    changed.X = small.X.copy()
    changed.X.data[changed.X.indptr[7]:changed.X.indptr[8]] *= 1.01  # one cell of 68, 1% more
    relabelled = small.copy()
    relabel(relabelled, lambda c: c.where(c.index != "c40", "C+ctrl"))
    renamed = small.copy()
    renamed.var = renamed.var.assign(gene_name=["X0"] + list(renamed.var.gene_name[1:]))
    other_split = SimulationSplit(train=["A+ctrl"], val=["ctrl+B", "C+ctrl"], **fields)
    for other, other_split_ in [(changed, split), (relabelled, split), (renamed, split), (small, other_split)]:
        assert not data.same_content(data.content_signature(other, other_split_), reference)
