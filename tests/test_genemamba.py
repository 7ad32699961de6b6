"""GeneMamba building blocks: rank tokens, the SSD scan's two forms, bidirectional reading."""

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.models import genemamba as gm


def test_rank_tokens_orders_expressed_genes_and_pads():
    X = np.array([[0.0, 2.0, 5.0, 1.0], [0.0, 0.0, 3.0, 0.0]])
    ids = np.array([10, 11, 12, 13])
    tokens = gm.rank_tokens(X, ids, context_length=4)
    assert tokens.tolist() == [[gm.CLS, 12, 11, 13], [gm.CLS, 12, gm.PAD, gm.PAD]]
    with pytest.raises(ValueError, match="4 genes but 3"):
        gm.rank_tokens(X, ids[:3], 4)


def test_rank_tokens_are_the_same_by_blocks_and_from_sparse():
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    X = rng.poisson(0.4, (300, 50)).astype(np.float32) * rng.uniform(0.5, 2, (300, 1)).astype(np.float32)
    ids = np.arange(50) + gm.N_SPECIAL_TOKENS
    whole = gm.rank_tokens(X, ids, context_length=16, block_rows=1000)
    assert (gm.rank_tokens(X, ids, context_length=16, block_rows=7) == whole).all()
    assert (gm.rank_tokens(sp.csr_matrix(X), ids, context_length=16, block_rows=64) == whole).all()
    assert (whole[:, 0] == gm.CLS).all() and (whole == gm.PAD).any()


def test_fast_scan_equals_the_recurrence():
    torch.manual_seed(0)
    b, L, H, P, N = 2, 37, 3, 4, 5
    x, dt = torch.randn(b, L, H, P), torch.rand(b, L, H) * 0.5
    A, B, C = -torch.rand(H) * 4, torch.randn(b, L, N), torch.randn(b, L, N)
    torch.testing.assert_close(gm.ssd_scan(x, dt, A, B, C), gm.ssd_scan_reference(x, dt, A, B, C),
                               atol=1e-5, rtol=1e-4)


def test_mixer_is_causal():
    torch.manual_seed(0)
    mixer = gm.Mamba2Mixer(gm.GeneMambaConfig(vocab_size=10, d_model=16, head_dim=8))
    u = torch.randn(1, 12, 16)
    changed = u.clone()
    changed[:, 8:] += 1.0
    torch.testing.assert_close(mixer(u)[:, :8], mixer(changed)[:, :8])
    assert not torch.allclose(mixer(u)[:, 8:], mixer(changed)[:, 8:])


def test_bidirectional_block_equals_per_cell_reference():
    """Fast path (batched, padding-aware reversal by gather) vs the obvious one: each cell alone,
    unpadded, read forward and flipped."""
    torch.manual_seed(0)
    config = gm.GeneMambaConfig(vocab_size=30, d_model=16, head_dim=8, n_layers=2)
    model = gm.GeneMamba(config).eval()
    tokens = torch.tensor([[gm.CLS, 5, 9, 7, 4, gm.PAD, gm.PAD], [gm.CLS, 3, 8, 6, 11, 12, 13]])
    fast = model(tokens)
    for b, row in enumerate(tokens):
        valid = row[row != gm.PAD][None]
        x = model.embedding(valid)
        for block in model.blocks:
            h = block.norm(x)
            x = x + 0.5 * (block.mixer(h, scan=gm.ssd_scan_reference)
                           + block.mixer(h.flip(1), scan=gm.ssd_scan_reference).flip(1))
        torch.testing.assert_close(fast[b, : valid.shape[1]], model.norm(x)[0], atol=1e-5, rtol=1e-4)


def test_reverse_valid_is_an_involution():
    x = torch.arange(12.0).view(2, 6, 1)
    lengths = torch.tensor([4, 6])
    once = gm.reverse_valid(x, lengths)
    assert once[0, :, 0].tolist() == [3, 2, 1, 0, 4, 5] and once[1, :, 0].tolist() == [11, 10, 9, 8, 7, 6]
    torch.testing.assert_close(gm.reverse_valid(once, lengths), x)


def test_pretraining_lowers_the_loss_on_a_learnable_corpus():
    n_genes = 20
    # cells rank genes in one of two fixed orders: a model can learn the next gene
    orders = [np.arange(n_genes), np.arange(n_genes)[::-1]]
    X = np.vstack([np.argsort(orders[i % 2]).astype(float)[::-1].copy() + 1 for i in range(64)])
    tokens = gm.rank_tokens(X, np.arange(n_genes) + gm.N_SPECIAL_TOKENS, context_length=12)
    config = gm.GeneMambaConfig(vocab_size=n_genes + gm.N_SPECIAL_TOKENS, d_model=32, head_dim=16)
    pairs = np.array([[i, (i + 1) % n_genes] for i in range(n_genes)])
    runs = []
    for _ in range(2):
        torch.manual_seed(len(runs))  # the global random state must not matter, only the seed
        model = gm.GeneMamba(config, seed=0)
        history = gm.pretrain(model, tokens, pairs, steps=60, batch_size=8, seed=0, lr=3e-3, progress=False)
        runs.append((history, model.gene_embeddings.detach().clone()))
    history = runs[0][0]
    assert history.lm_loss.iloc[-5:].mean() < 0.5 * history.lm_loss.iloc[:5].mean()
    assert (history.tokens_per_s > 0).all()
    # same seed, same run: identical losses and embeddings
    assert history.loss.tolist() == runs[1][0].loss.tolist()
    assert torch.equal(runs[0][1], runs[1][1])


def test_pretraining_data_never_includes_validation_or_test_perturbations():
    from helpers import reference, splits

    conditions = reference.norman_conditions().condition.to_numpy()
    split = splits.simulation_split(conditions, set(reference.gene2go()))
    per_cell = np.repeat(conditions, 3)
    seen = set(per_cell[gm.pretraining_cells(per_cell, split.train)])
    assert "ctrl" in seen and seen <= set(split.train)
    assert not seen & (set(split.val) | set(split.test) | set(split.excluded_not_in_go))
    assert len(seen) == len(split.train)


def test_embedding_table_from_checkpoint_and_mismatch(tmp_path):
    config = gm.GeneMambaConfig(vocab_size=5 + gm.N_SPECIAL_TOKENS, d_model=16, head_dim=8)
    model = gm.GeneMamba(config)
    genes = ["A", "B", "C", "D", "E"]
    torch.save({"config": config.__dict__, "genes": genes, "state_dict": model.state_dict()}, tmp_path / "ok.pt")
    table = gm.embedding_table(tmp_path / "ok.pt")
    assert list(table.index) == genes and table.shape == (5, 16)
    torch.testing.assert_close(torch.from_numpy(table.to_numpy()), model.gene_embeddings.detach())
    torch.save({"config": config.__dict__, "genes": genes[:4], "state_dict": model.state_dict()}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="another gene set"):
        gm.embedding_table(tmp_path / "bad.pt")


def test_published_checkpoint_folder_is_read_with_its_vocabulary(tmp_path):
    import json

    from safetensors.torch import save_file

    table = torch.arange(20, dtype=torch.float32).reshape(5, 4)
    save_file({"embeddings.weight": table, "mamba_mixer.layers.0.mamba.A_log": torch.zeros(3)},
              str(tmp_path / "model.safetensors"))
    vocab = {"[UNK]": 0, "[PAD]": 1, "ENSG0001": 2, "ENSG0002": 3, "ENSG0003": 4}
    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": {"type": "WordLevel", "vocab": vocab}}))
    with pytest.raises(ValueError, match="Ensembl gene IDs.*id_to_symbol"):
        gm.published_embedding_table(tmp_path)
    pd.DataFrame({"ensembl": ["ENSG0001", "ENSG0002", "ENSG0003"], "symbol": ["KLF1", "CEBPE", "KLF1"]}) \
        .to_csv(tmp_path / "id2symbol.csv", index=False)
    embeddings = gm.published_embedding_table(tmp_path, tmp_path / "id2symbol.csv")
    assert embeddings.index.tolist() == ["KLF1", "CEBPE"]  # KLF1 keeps its first ID's row
    assert embeddings.loc["KLF1"].tolist() == [8.0, 9.0, 10.0, 11.0]
    assert embeddings.loc["CEBPE"].tolist() == [12.0, 13.0, 14.0, 15.0]
    with pytest.raises(FileNotFoundError, match="model.safetensors.*found \\['id2symbol.csv'\\]"):
        (tmp_path / "model.safetensors").unlink()
        (tmp_path / "tokenizer.json").unlink()
        gm.published_embedding_table(tmp_path)


def test_language_model_loss_equals_the_loss_of_reads_that_stop_before_each_target():
    """The loss, computed in one pass, equals a slow reference in which every prediction is made
    from a read of the tokens *before* its target only (the prefix, cut off there): a shift that
    let a position see the token it predicts, or scored it against the wrong token, changes it."""
    torch.manual_seed(1)
    model = gm.GeneMamba(gm.GeneMambaConfig(vocab_size=30, d_model=16, head_dim=8))
    tokens = torch.tensor([[gm.CLS, 5, 9, 7, 4, 6, 12], [gm.CLS, 8, 3, 11, gm.PAD, gm.PAD, gm.PAD]])
    lengths = (tokens != gm.PAD).sum(dim=1)
    losses = []
    for reverse in (False, True):
        ordered = gm.reverse_valid(tokens, lengths) if reverse else tokens
        terms = []
        for row, length in enumerate(lengths.tolist()):
            for t in range(length - 1):
                prefix = ordered[row: row + 1, : t + 1]  # what the read has seen when it predicts t + 1
                hidden = model.causal_hidden(prefix)[0, t]
                logits = hidden @ model.embedding.weight.T
                terms.append(torch.nn.functional.cross_entropy(logits[None], ordered[row, t + 1][None]))
        losses.append(torch.stack(terms).mean())
    reference = 0.5 * (losses[0] + losses[1])
    torch.testing.assert_close(gm.language_model_loss(model, tokens), reference, atol=1e-5, rtol=1e-5)


def test_pretraining_data_tokens_held_out_cells_and_coexpressed_pairs():
    import anndata as ad
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    a = rng.uniform(1, 5, 40)  # genes A and B move together, C apart, D never expressed
    noise = rng.normal(0, 1, 40)
    seen = slice(0, 30)  # on the training cells, C is uncorrelated with A (and so with B)
    centred = a[seen] - a[seen].mean()
    noise[seen] -= (noise[seen] - noise[seen].mean()) @ centred / (centred @ centred) * centred
    X = np.column_stack([a, 2 * a + rng.normal(0, 0.01, 40), 5 + noise, np.zeros(40)])
    conditions = ["ctrl"] * 20 + ["A+ctrl"] * 10 + ["B+ctrl"] * 10  # B+ctrl: not a training condition
    obs = pd.DataFrame({"condition": conditions}, index=[f"cell{i}" for i in range(40)])
    var = pd.DataFrame({"gene_name": list("ABCD")}, index=list("ABCD"))
    adata = ad.AnnData(sp.csr_matrix(X), obs=obs, var=var)
    cells = gm.pretraining_data(adata, ["ctrl", "A+ctrl"], context_length=3)
    assert cells.tokens.shape == (30, 3) and (cells.tokens[:, 0] == gm.CLS).all()
    assert set(cells.tokens[:, 1:].ravel()) <= {3, 4, 5}  # A, B, C; never D (not expressed)
    assert cells.held_out.sum() == 2  # 5% of 30 cells, rounded
    assert sorted(map(tuple, cells.coexpressed)) == [(0, 1), (1, 0)]  # A ↔ B only
    assert cells.summary.to_dict() == {"cells": 30, "held-out cells": 2, "conditions": 2,
                                       "context length": 3, "mean genes per cell (in context)": 2.0,
                                       "co-expressed gene pairs": 2}


def test_checkpoint_is_saved_as_embedding_table_reads_it_and_losses_are_summarised(tmp_path):
    config = gm.GeneMambaConfig(vocab_size=3 + gm.N_SPECIAL_TOKENS, d_model=16, head_dim=8)
    model = gm.GeneMamba(config, seed=0)
    torch.save(gm.checkpoint(model, ["A", "B", "C"]), tmp_path / "genemamba.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["genemamba.pt"]  # no temporary file left
    table = gm.embedding_table(tmp_path / "genemamba.pt")
    assert list(table.index) == ["A", "B", "C"]
    torch.testing.assert_close(torch.from_numpy(table.to_numpy()), model.gene_embeddings.detach())
    history = pd.DataFrame({"tokens_per_s": [100.0, 3000.0, 2000.0], "lm_loss": [3.0, 2.0, 1.0],
                            "infonce_loss": [4.0, 4.0, 3.5]})
    assert gm.loss_summary(history, vocab_size=100, n=2).splitlines() == [
        "2,000 tokens/s (median over steps)",
        "next-token loss 2.50 → 1.50 (uniform guess: log V = 4.61); InfoNCE 4.00 → 3.75 "
        "(first and last 2 steps)"]
