"""The fused decoder equals the same layers run one PyTorch operation after another."""

import copy

import pytest
import torch

from helpers.models.gears_decoder import Workspace, fused_decoder
from helpers.models.gears_module import MLP, DenseGEARS

N_GENES, HIDDEN = 30, 8
COPIES = [3, 3, 2, 1, 1, 1, 1]  # variants of a batch of 12 cells, equal counts adjacent


def random_decoder(seed):
    generator = torch.Generator().manual_seed(seed)
    mlp = MLP([HIDDEN, 2 * HIDDEN, HIDDEN]).double()
    with torch.no_grad():  # BatchNorm affine terms and biases away from their initial 1 and 0
        for parameter in mlp.parameters():
            parameter.add_(0.5 * torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    u = torch.randn(2, N_GENES, HIDDEN, generator=generator, dtype=torch.float64)
    q = torch.randn(len(COPIES), HIDDEN, generator=generator, dtype=torch.float64)
    w1 = torch.randn(N_GENES, HIDDEN, generator=generator, dtype=torch.float64)
    which = torch.tensor([0] + [1] * (len(COPIES) - 1))
    upstream = torch.randn(sum(COPIES), N_GENES, generator=generator, dtype=torch.float64)
    return mlp, u.requires_grad_(), q.requires_grad_(), w1.requires_grad_(), which, upstream


def reference_decoder(mlp, u, q, which, w1):
    """Every cell's rows materialised, then Linear, BatchNorm, ReLU, ... as nn.Modules do."""
    cells = torch.repeat_interleave(torch.arange(len(COPIES)), torch.tensor(COPIES))
    rows = torch.relu(u[which[cells]] + q[cells, None, :])  # (B, G, H)
    h = mlp(rows.reshape(-1, HIDDEN)).reshape(len(cells), N_GENES, HIDDEN)
    return torch.einsum("bgh,gh->bg", h, w1)


@pytest.mark.parametrize("chunk_rows", [1, 2 * N_GENES, 10_000])  # one variant, two, all per chunk
def test_outputs_gradients_and_statistics_equal_the_reference(chunk_rows):
    mlp, u, q, w1, which, upstream = random_decoder(0)
    reference_mlp = copy.deepcopy(mlp)
    reference_u, reference_q, reference_w1 = (t.detach().clone().requires_grad_() for t in (u, q, w1))

    expected = reference_decoder(reference_mlp, reference_u, reference_q, which, reference_w1)
    (expected * upstream).sum().backward()
    f, stats = fused_decoder(u, q, which, COPIES, mlp.network, w1, Workspace(), chunk_rows=chunk_rows)
    cells = torch.repeat_interleave(torch.arange(len(COPIES)), torch.tensor(COPIES))
    got = f[cells]  # each variant stands for its copies
    (got * upstream).sum().backward()

    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    for name, mine, theirs in [("u", u, reference_u), ("q", q, reference_q), ("w1", w1, reference_w1)]:
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-9, atol=1e-10, msg=lambda m: f"d{name}: {m}")
    for (name, mine), theirs in zip(mlp.named_parameters(), reference_mlp.parameters()):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-9, atol=1e-10, msg=lambda m: f"d{name}: {m}")
    # the biases before a training-mode BatchNorm cancel: their gradient is exactly zero
    assert not mlp.network[0].bias.grad.any() and not mlp.network[3].bias.grad.any()
    linear1, bn1, _, linear2, bn2 = reference_mlp.network
    n_rows = sum(COPIES) * N_GENES
    # the reference BatchNorms' running statistics hold 0.9 · initial + 0.1 · batch statistics
    torch.testing.assert_close(stats.mean1 + mlp.network[0].bias.detach(),
                               bn1.running_mean / 0.1, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(stats.var1 * n_rows / (n_rows - 1), (bn1.running_var - 0.9) / 0.1,
                               rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(stats.mean2 + mlp.network[3].bias.detach(), bn2.running_mean / 0.1,
                               rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(stats.var2 * n_rows / (n_rows - 1), (bn2.running_var - 0.9) / 0.1,
                               rtol=1e-9, atol=1e-10)


def test_a_pending_backward_is_not_silently_corrupted_by_the_next_forward():
    mlp, u, q, w1, which, upstream = random_decoder(1)
    workspace = Workspace()
    f, _ = fused_decoder(u, q, which, COPIES, mlp.network, w1, workspace)
    fused_decoder(u, q, which, COPIES, mlp.network, w1, workspace)  # reuses the buffers
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        f.sum().backward()


def test_dense_gears_training_step_equals_its_reference_path():
    """The whole model in float64 with more genes than a chunk: fused and reference branches give
    the same outputs, parameter gradients and running statistics."""
    generator = torch.Generator().manual_seed(2)
    n_genes, n_perts = 700, 50
    coexpress = (torch.randint(0, n_genes, (2, 3000), generator=generator), torch.rand(3000, generator=generator))
    go = (torch.randint(0, n_perts, (2, 300), generator=generator), torch.rand(300, generator=generator))
    fused = DenseGEARS(n_genes, n_perts, coexpress, go, hidden_size=16).double()
    reference = copy.deepcopy(fused)
    reference.use_fused_decoder = False
    perts = [[-1], [3], [3, 7], [3], [-1], [7, 3], [11], [-1], [5, 9], [3]]
    x = torch.rand(len(perts), n_genes, generator=generator, dtype=torch.float64)
    upstream = torch.randn(len(perts), n_genes, generator=generator, dtype=torch.float64)
    for model in (fused, reference):
        model.train()
        (model(x, perts) * upstream).sum().backward()
    torch.testing.assert_close(fused(x, perts).detach(), reference(x, perts).detach(), rtol=1e-9, atol=1e-9)
    for (name, mine), theirs in zip(fused.named_parameters(), reference.parameters()):
        if theirs.grad is None:
            assert mine.grad is None or not mine.grad.any(), name
            continue
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-7, atol=1e-9, msg=lambda m: f"d{name}: {m}")
    for (name, mine), theirs in zip(fused.named_buffers(), reference.buffers()):
        if mine.layout == torch.strided:
            torch.testing.assert_close(mine, theirs, rtol=1e-9, atol=1e-9, msg=lambda m: f"{name}: {m}")


def test_repeated_batch_norm_equals_batch_norm_over_the_copies():
    """The weighted BatchNorm used for the gene embeddings: V variants standing for copies[v]
    cells each give the outputs, gradients and running statistics of nn.BatchNorm1d over all
    the copies."""
    from helpers.models.gears_module import _repeated_batch_norm

    generator = torch.Generator().manual_seed(3)
    copies = torch.tensor([1, 6])
    variants = torch.randn(2, N_GENES, HIDDEN, generator=generator, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(int(copies.sum()), N_GENES, HIDDEN, generator=generator, dtype=torch.float64)
    bn = torch.nn.BatchNorm1d(HIDDEN).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0, generator=generator)
        bn.bias.normal_(generator=generator)
    reference_bn = copy.deepcopy(bn)
    reference_variants = variants.detach().clone().requires_grad_()

    cells = torch.repeat_interleave(torch.arange(2), copies)
    out = _repeated_batch_norm(bn, variants, copies)[cells]  # (B, G, H)
    (out * upstream).sum().backward()
    expected = reference_bn(reference_variants[cells].reshape(-1, HIDDEN)).reshape(out.shape)
    (expected * upstream).sum().backward()

    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(variants.grad, reference_variants.grad, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(bn.weight.grad, reference_bn.weight.grad, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(bn.bias.grad, reference_bn.bias.grad, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(bn.running_mean, reference_bn.running_mean, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(bn.running_var, reference_bn.running_var, rtol=1e-10, atol=1e-12)


def test_eval_mode_predicts_many_conditions_in_one_call():
    """predict_means puts several conditions in one eval-mode call, marking which rows stand for
    the first cell of a cell-gears batch: each must equal its own two-cell batch."""
    generator = torch.Generator().manual_seed(4)
    n_genes, n_perts = 50, 20
    graphs = [(torch.randint(0, n, (2, 200), generator=generator), torch.rand(200, generator=generator))
              for n in (n_genes, n_perts)]
    model = DenseGEARS(n_genes, n_perts, *graphs, hidden_size=HIDDEN)
    model.train()
    model(torch.rand(8, n_genes, generator=generator), [[-1], [1], [2, 3], [4], [1], [-1], [5], [6]])
    model.eval()  # running statistics are no longer the initial ones
    conditions = [[1], [2, 3], [-1], [7]]
    with torch.no_grad():
        together = model(torch.zeros(8, n_genes), conditions + conditions,
                         torch.tensor([True] * 4 + [False] * 4))
        for i, nodes in enumerate(conditions):
            alone = model(torch.zeros(2, n_genes), [nodes, nodes])  # cell 0 is the batch's first
            torch.testing.assert_close(together[[i, 4 + i]], alone, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(together[0], together[4])  # the first cell really differs
    with pytest.raises(ValueError, match="eval mode"):
        model.train()(torch.zeros(2, n_genes), [[1], [1]], torch.tensor([True, False]))
