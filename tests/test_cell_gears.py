"""The cell-gears engine runs offline on the project's data and leaves warnings alone."""

import warnings

import numpy as np
import pytest

from helpers import de_genes, graphs, reference, simulator, splits
from helpers.models.cell_gears import train_and_predict_cell_gears
from helpers.models.gears_module import GearsConfig


@pytest.mark.slow
def test_cell_gears_trains_and_predicts_offline(tmp_path):
    scaffold = simulator.norman_scaffold(n_high_mean_genes=60)
    adata, _ = simulator.simulate_perturb_seq(scaffold, max_cells_per_condition=3, max_control_cells=60,
                                              progress=False)
    de_genes.add_de_genes(adata)
    gene2go = reference.gene2go()
    split = splits.simulation_split(adata.obs.condition.astype(str).unique(), set(gene2go))
    go = graphs.go_perturbation_graph(gene2go, [g for g in set(adata.var.gene_name) if g in gene2go])
    filters_before = list(warnings.filters)
    predicted, history = train_and_predict_cell_gears(adata, split, go, GearsConfig(), epochs=1, seed=1,
                                                      device="auto", conditions=split.test[:4],
                                                      workdir=tmp_path)
    assert predicted.shape == (4, adata.n_vars) and np.isfinite(predicted.to_numpy()).all()
    assert list(predicted.columns) == adata.var.gene_name.tolist()
    assert list(predicted.index) == split.test[:4]
    # each condition gets its own prediction, on the scale of log-expression around control
    assert predicted.round(6).drop_duplicates().shape[0] == 4
    control = adata[adata.obs.condition == "ctrl"].X.toarray().mean(axis=0)
    assert np.abs(predicted.to_numpy() - control).mean() < 0.5

    assert warnings.filters == filters_before  # `import gears` did not silence warnings for good
    assert (tmp_path / "data" / "gene2go_all.pkl").is_file()  # pre-seeded, nothing downloaded
