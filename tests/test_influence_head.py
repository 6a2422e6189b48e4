"""The output-layer cache (influence/head.py): passes that skip the output layer give the plain gradients."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from alignlab.influence.data import make_batches, summed_loss
from alignlab.influence.factors import FactorConfig
from alignlab.influence.head import HeadCache, backward_loss, split_model
from alignlab.influence.modules import find_tracked
from alignlab.influence.scores import Preconditioner, pairwise_scores, precondition_queries
from alignlab.influence.store import HEAD_FILE, fit_factors, load_factors

VOCAB = 40


def llama() -> torch.nn.Module:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval()


def sequences(n: int = 6) -> list[list[int]]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randint(0, VOCAB, (int(torch.randint(4, 9, (1,), generator=gen)),), generator=gen).tolist()
            for _ in range(n)]


def layer_grads(model: torch.nn.Module, run) -> list[torch.Tensor]:
    """Weight gradients of the MLP layers after ``run()`` backpropagates (any path)."""
    model.zero_grad(set_to_none=True)
    run()
    return [p.grad.clone() for n, p in model.named_parameters() if ".mlp." in n]


@pytest.mark.parametrize("sample", [False, True])
def test_cached_backward_equals_the_plain_loss(sample):
    model, seqs = llama(), sequences()
    batch = make_batches(seqs, [0, 3, 5], 3, pad_id=0)[0]
    plain = layer_grads(model, lambda: summed_loss(model, batch, sample=sample, seed=2).backward())
    cache = HeadCache(budget_bytes=2**20)
    filling = layer_grads(model, lambda: backward_loss(model, batch, sample=sample, seed=2, cache=cache))
    assert sorted(cache.rows) == [0, 3, 5]
    cached = layer_grads(model, lambda: backward_loss(model, batch, sample=sample, seed=2, cache=cache))
    row_by_row = layer_grads(model, lambda: backward_loss(model, batch, sample=sample, seed=2, chunk_elems=1))
    for p, f, c, r in zip(plain, filling, cached, row_by_row, strict=True):
        torch.testing.assert_close(f, p, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(c, p, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(r, p, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("slab_bytes", [2**20, 1])  # 1: every batch opens a new slab
def test_a_sampled_cache_serves_data_labels_and_rows_in_another_batching(monkeypatch, tmp_path, slab_bytes):
    monkeypatch.setattr("alignlab.influence.head.SLAB_BYTES", slab_bytes)
    model, seqs = llama(), sequences()
    cache = HeadCache(budget_bytes=2**20)
    for batch in make_batches(seqs, list(range(6)), 3, pad_id=0):
        backward_loss(model, batch, sample=True, seed=5, cache=cache)
    assert [len(cache.rows[i][1]) for i in range(6)] == [len(s) for s in seqs]
    assert all(cache.rows[i][1].tolist() == seqs[i] for i in range(6))
    cache.save(tmp_path / "head.safetensors")
    reloaded = HeadCache.load(tmp_path / "head.safetensors")
    assert all(torch.equal(x, y) for i in range(6) for x, y in zip(cache.rows[i], reloaded.rows[i], strict=True))
    regrouped = make_batches(seqs, [4, 1], 2, pad_id=0)[0]
    assert cache.covers(regrouped, torch.float32)
    plain = layer_grads(model, lambda: summed_loss(model, regrouped).backward())
    cached = layer_grads(model, lambda: backward_loss(model, regrouped, cache=cache))
    for p, c in zip(plain, cached, strict=True):
        torch.testing.assert_close(c, p, rtol=1e-5, atol=1e-6)


def test_changed_tokens_or_budget_or_dtype_are_never_served():
    model, seqs = llama(), sequences()
    batch = make_batches(seqs, [0, 1], 2, pad_id=0)[0]
    cache = HeadCache(budget_bytes=2**20)
    backward_loss(model, batch, cache=cache)
    edited = [list(s) for s in seqs]
    edited[1][0] = (edited[1][0] + 1) % VOCAB
    assert not cache.covers(make_batches(edited, [0, 1], 2, pad_id=0)[0], torch.float32)
    assert not cache.covers(batch, torch.bfloat16)
    tiny = HeadCache(budget_bytes=10)
    backward_loss(model, batch, cache=tiny)
    assert tiny.full and not tiny.rows


def test_rescaled_logits_keep_the_plain_path():
    model = llama()

    class Scaled(torch.nn.Module):  # logits = 2 * head(body(x)): the split check must refuse it
        def __init__(self) -> None:
            super().__init__()
            self.inner = model
            self.base_model = model.model

        def get_output_embeddings(self) -> torch.nn.Module:
            return model.lm_head

        def forward(self, **kwargs):
            return SimpleNamespace(logits=2 * self.inner(**kwargs).logits)

    assert split_model(model, torch.tensor([[1, 2, 3]])) is not None
    assert split_model(Scaled(), torch.tensor([[1, 2, 3]])) is None


def test_fit_saves_the_cache_and_scores_with_it_match_scores_without(tmp_path):
    model, seqs = llama(), sequences(8)
    tracked = find_tracked(model, torch.tensor([seqs[0]]))
    batches = make_batches(seqs, list(range(8)), 4, pad_id=0)
    factors = fit_factors(model, tracked, batches, FactorConfig(batch_size=4), tmp_path)
    assert (tmp_path / HEAD_FILE).exists() and sorted(factors.head.rows) == list(range(8))
    reloaded = load_factors(tmp_path).head
    assert all(torch.equal(reloaded.rows[i][0], factors.head.rows[i][0]) for i in range(8))
    assert reloaded.seed == 0 and reloaded.dtype == "torch.float32"
    pre = Preconditioner(factors)
    queries = precondition_queries(model, pre, make_batches(seqs, [2, 7], 2, pad_id=0))
    with_head = pairwise_scores(model, tracked, batches, queries, head=factors.head).total
    without = pairwise_scores(model, tracked, batches, queries).total
    torch.testing.assert_close(with_head, without, rtol=1e-4, atol=1e-4)
