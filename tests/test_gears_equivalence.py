"""The dense GEARS engine equals cell-gears' GEARS_Model: same outputs, same training step."""

import copy

import numpy as np
import pytest
import torch

from helpers.models.gears_module import DenseGEARS, gears_loss

N_GENES, N_PERTS, HIDDEN = 40, 25, 16
# (condition name, GO-graph nodes perturbed): control, singles and combinations, some repeated
CELLS = [("ctrl", [-1]), ("g3+ctrl", [3]), ("g3+g7", [3, 7]), ("g7+ctrl", [7]),
         ("ctrl", [-1]), ("g3+g7", [3, 7]), ("g11+g2", [11, 2]), ("g5+ctrl", [5])]


def random_graph(n_nodes, n_edges, rng):
    index = torch.tensor(rng.integers(0, n_nodes, (2, n_edges)))
    return index, torch.tensor(rng.uniform(0.1, 1.0, n_edges), dtype=torch.float32)


@pytest.fixture
def models():
    from gears.model import GEARS_Model

    rng = np.random.default_rng(0)
    coexpress, go = random_graph(N_GENES, 120, rng), random_graph(N_PERTS, 90, rng)
    torch.manual_seed(0)
    reference = GEARS_Model({
        "num_genes": N_GENES, "num_perts": N_PERTS, "hidden_size": HIDDEN, "uncertainty": False,
        "num_go_gnn_layers": 1, "decoder_hidden_size": 16, "num_gene_gnn_layers": 1,
        "no_perturb": False, "G_coexpress": coexpress[0], "G_coexpress_weight": coexpress[1],
        "G_go": go[0], "G_go_weight": go[1], "device": "cpu"})
    dense = DenseGEARS(N_GENES, N_PERTS, coexpress, go, hidden_size=HIDDEN)
    dense.load_state_dict(copy.deepcopy(reference.state_dict()))  # strict: every name matches
    x = torch.tensor(rng.gamma(2.0, 0.5, (len(CELLS), N_GENES)), dtype=torch.float32)
    y = x + torch.tensor(rng.normal(0, 0.5, x.shape), dtype=torch.float32)
    return reference, dense, x, y


def pyg_batch(x, y, cells=CELLS):
    from torch_geometric.data import Batch, Data

    return Batch.from_data_list([Data(x=x[i][:, None], y=y[i][None, :], pert_idx=perts, pert=name,
                                      de_idx=[-1] * 20) for i, (name, perts) in enumerate(cells)])


def test_forward_agrees_in_train_and_eval_mode(models):
    reference, dense, x, y = models
    perts = [p for _, p in CELLS]
    for mode in ("train", "eval"):
        getattr(reference, mode)()
        getattr(dense, mode)()
        expected = reference(pyg_batch(x, y))
        got = dense(x, perts)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    for name, buffer in reference.state_dict().items():  # BatchNorm running statistics
        torch.testing.assert_close(dense.state_dict()[name], buffer, atol=1e-6, rtol=1e-5)


def test_loss_and_one_optimiser_step_agree(models):
    from gears.utils import loss_fct

    reference, dense, x, y = models
    names = [n for n, _ in CELLS]
    control_mean = x.mean(dim=0)
    rng = np.random.default_rng(1)
    retained = {n: np.sort(rng.choice(N_GENES, 30, replace=False)) for n in set(names) if n != "ctrl"}
    mask = torch.ones(len(CELLS), N_GENES, dtype=torch.bool)
    for i, n in enumerate(names):
        if n != "ctrl":
            mask[i] = False
            mask[i, retained[n]] = True
    codes = torch.tensor([sorted(set(names)).index(n) for n in names])
    optimisers = [torch.optim.Adam(m.parameters(), lr=1e-3, weight_decay=5e-4) for m in (reference, dense)]
    reference.train()
    dense.train()
    loss_ref = loss_fct(reference(pyg_batch(x, y)), y, names, ctrl=control_mean,
                        direction_lambda=0.1, dict_filter=retained)
    loss_dense = gears_loss(dense(x, [p for _, p in CELLS]), y, control_mean, codes, mask, 0.1)
    torch.testing.assert_close(loss_dense, loss_ref, atol=1e-5, rtol=1e-5)
    before = {name: p.detach().clone() for name, p in reference.named_parameters()}
    for loss, model, optimiser in zip((loss_ref, loss_dense), (reference, dense), optimisers):
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), clip_value=1.0)
        optimiser.step()
    dense_params = dict(dense.named_parameters())
    # Gradients that are exactly zero in theory (a bias feeding a BatchNorm) come out as float
    # noise on both sides, so tolerances are relative to the largest gradient of the model.
    scale = max(p.grad.abs().max() for p in reference.parameters() if p.grad is not None)
    n_moved = 0
    for name, param in reference.named_parameters():
        other = dense_params[name]
        if param.grad is None:
            assert other.grad is None or other.grad.abs().max() < 1e-6 * scale, name
            continue
        torch.testing.assert_close(other.grad, param.grad, atol=1e-5 * scale, rtol=1e-4,
                                   msg=lambda m: f"gradient of {name}: {m}")
        # Adam's first step is lr·sign(grad + weight_decay·param): compare it where that
        # effective gradient is above the noise
        signal = (param.grad + 5e-4 * before[name]).abs() > 1e-4 * scale
        torch.testing.assert_close(other[signal], param[signal], atol=1e-6, rtol=1e-5,
                                   msg=lambda m: f"Adam step of {name}: {m}")
        n_moved += int(((param - before[name]).abs() > 1e-4).any())
    assert n_moved > 20  # the step really moved most parameter tensors


def test_batch_with_a_lone_perturbed_cell(models):
    reference, dense, x, y = models
    reference.train()
    dense.train()
    cells = [("ctrl", [-1]), ("g3+ctrl", [3]), ("ctrl", [-1])]
    # cell-gears batch-normalises two copies of the lone cell's row: the fused perturbation
    # embedding is then float noise (~1e-6) that later BatchNorms over 3 rows amplify, so both
    # implementations agree only to ~1e-3 here, and neither is more right than the other.
    torch.testing.assert_close(dense(x[:3], [p for _, p in cells]),
                               reference(pyg_batch(x[:3], y[:3], cells)), atol=1e-2, rtol=1e-2)


def test_gene_prior_enters_through_a_projection():
    rng = np.random.default_rng(0)
    graphs = random_graph(N_GENES, 50, rng), random_graph(N_PERTS, 40, rng)
    prior = torch.zeros(N_GENES, 7)
    prior[:5] = torch.randn(5, 7)
    model = DenseGEARS(N_GENES, N_PERTS, *graphs, hidden_size=HIDDEN, gene_prior=prior)
    assert model.gene_prior_proj.in_features == 7
    x = torch.rand(4, N_GENES)
    out = model(x, [[-1], [3], [3, 4], [-1]])
    out.sum().backward()
    assert model.gene_prior_proj.weight.grad.abs().sum() > 0
    assert "gene_prior" in model.state_dict()  # the fixed matrix travels with checkpoints
    # it enters as gene embedding + projection(prior): with the projection at zero the model is
    # exactly GEARS without a prior (same weights), with any other projection it is not
    plain = DenseGEARS(N_GENES, N_PERTS, *graphs, hidden_size=HIDDEN)
    shared = {k: v for k, v in model.state_dict().items() if not k.startswith("gene_prior")}
    plain.load_state_dict(shared)
    model.eval(), plain.eval()
    perts = [[-1], [3], [3, 4], [-1]]
    with torch.no_grad():
        model.gene_prior_proj.weight.zero_()
        model.gene_prior_proj.bias.zero_()
        torch.testing.assert_close(model(x, perts), plain(x, perts))
        model.gene_prior_proj.weight[:, 0] = 1.0  # the five genes with a prior move
        assert not torch.allclose(model(x, perts), plain(x, perts))


def test_sgconv_and_graph_normalisation_equal_pytorch_geometric_to_the_bit():
    """The engine does without PyTorch Geometric (its import costs every training process ~1.6
    s): its SGConv draws the same initial weights from a seed, and leaves the generator where
    PyG's does, and its normalised graph has PyG's weights exactly, on a graph with self-loops
    (one weighted, the rest added), a repeated edge and an isolated node."""
    from torch_geometric.nn import SGConv as PygSGConv
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    from helpers.models.gears_module import SGConv, gcn_normalised

    torch.manual_seed(3)
    theirs, after_theirs = PygSGConv(HIDDEN, 2 * HIDDEN, 1), torch.rand(4)
    torch.manual_seed(3)
    ours, after_ours = SGConv(HIDDEN, 2 * HIDDEN), torch.rand(4)
    assert torch.equal(ours.lin.weight, theirs.lin.weight) and torch.equal(ours.lin.bias, theirs.lin.bias)
    assert torch.equal(after_ours, after_theirs)
    x = torch.randn(5, HIDDEN)
    assert torch.equal(ours.lin(x), theirs.lin(x))

    rng = np.random.default_rng(1)
    index, weight = random_graph(N_PERTS - 1, 90, rng)  # node N_PERTS - 1 has no edge
    index = torch.cat([index, torch.tensor([[4, 4], [4, 6]]), index[:, :1]], dim=1)  # a loop, repeats
    weight = torch.cat([weight, torch.tensor([0.3, 0.7]), weight[:1]])
    expected = gcn_norm(index, weight, N_PERTS, improved=False, add_self_loops=True, flow="source_to_target")
    got = gcn_normalised(index, weight, N_PERTS)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    assert (got[0][0] == got[0][1]).sum() >= N_PERTS  # every node has its loop
