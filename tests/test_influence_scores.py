"""Pairwise scores: kronfluence parity, near-copies, per-token/per-layer sums, low rank, candidates."""

from __future__ import annotations

import copy
import importlib.util

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from alignlab.influence.candidates import parse_candidates, tfidf_candidates, union_with_masks
from alignlab.influence.data import make_batches
from alignlab.influence.factors import FactorConfig
from alignlab.influence.modules import find_tracked
from alignlab.influence.pipeline import QueryConfig, power_law_exponent, rank_queries
from alignlab.influence.scores import Preconditioner, pairwise_scores, precondition_queries
from alignlab.influence.store import fit_factors
from alignlab.metrics.stats import pearson_r

VOCAB = 64


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A 2-layer Llama (hidden 48, MLP 96: wide enough for rank 32), 24 training sequences, 4 near-copy queries."""
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=4)).eval()
    gen = torch.Generator().manual_seed(3)
    train = [torch.randint(0, VOCAB, (int(torch.randint(12, 20, (1,), generator=gen)),), generator=gen).tolist()
             for _ in range(24)]
    queries = []
    for row in (2, 9, 15, 20):  # copies with 2 tokens replaced
        q = list(train[row])
        for pos in torch.randint(1, len(q), (2,), generator=gen).tolist():
            q[pos] = (q[pos] + 7) % VOCAB
        queries.append(q)
    tracked = find_tracked(model, torch.tensor([train[0]]))
    factors = fit_factors(model, tracked, make_batches(train, list(range(24)), 8, 0), FactorConfig(fisher="empirical"),
                          tmp_path_factory.mktemp("factors"))
    return model, train, queries, tracked, Preconditioner(factors)


def _scores(setup, rank=None, per_token=False):
    model, train, queries, tracked, pre = setup
    q_grads = precondition_queries(model, pre, make_batches(queries, [0, 1, 2, 3], 4, 0), rank)
    return pairwise_scores(model, tracked, make_batches(train, list(range(24)), 5, 0), q_grads, per_token=per_token)


@pytest.mark.skipif(importlib.util.find_spec("kronfluence") is None, reason="kronfluence not installed")
def test_agrees_with_kronfluence(setup, tmp_path):
    from alignlab.influence.baseline import kronfluence_scores

    model, train, queries, tracked, _ = setup
    theirs = kronfluence_scores(copy.deepcopy(model), [t.name for t in tracked], train, queries, [0] * 4, tmp_path,
                                batch_size=8, query_batch_size=4)["scores"]
    ours = _scores(setup).total
    assert pearson_r(ours.flatten().numpy(), theirs.flatten().numpy()) >= 0.999
    torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-3 * float(theirs.abs().max()))


def test_near_copy_ranks_first(setup):
    assert _scores(setup).total.argmax(1).tolist() == [2, 9, 15, 20]


@pytest.mark.parametrize("rank", [None, 8])
def test_per_token_and_per_layer_scores_sum_to_total(setup, rank):
    s = _scores(setup, rank=rank, per_token=True)
    torch.testing.assert_close(s.per_token.sum(-1), s.total, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(torch.stack(list(s.per_layer.values())).sum(0), s.total, rtol=1e-5, atol=1e-4)
    assert s.per_token.shape == (4, 24, 19) and len(s.per_layer) == 6
    summed_only = _scores(setup, rank=rank)  # the summed path may take the other contraction order
    torch.testing.assert_close(summed_only.total, s.total, rtol=1e-4, atol=1e-3)


def test_rank_32_agrees_with_full_rank(setup):
    full, low = _scores(setup).total, _scores(setup, rank=32).total
    for q in range(4):
        assert pearson_r(full[q].numpy(), low[q].numpy()) >= 0.99
    assert not torch.allclose(full, low)  # rank 32 < 48 really truncates


def test_rank_queries_rescoring_and_candidate_masks(setup):
    model, train, queries, _, pre = setup
    config = QueryConfig(rank=4, top_k=3, batch_size=5, query_batch_size=3)
    results = rank_queries(model, pre, train, queries, [0] * 4, None, config, pad_id=0)
    full = _scores(setup).total
    for q, result in enumerate(results):
        assert [e["train_index"] for e in result["top"]][0] == [2, 9, 15, 20][q]
        for e in result["top"]:  # the top-k carry full-rank scores, per-token scores summing to them
            assert e["score"] == pytest.approx(float(full[q, e["train_index"]]), rel=1e-4)
            assert sum(e["token_scores"]) == pytest.approx(e["score"], rel=1e-3)
            assert sum(e["layer_scores"]) == pytest.approx(e["score"], rel=1e-4)
        assert result["n_scored"] == 24 and len(result["sorted_scores"]) == 24
    cands = [[0, 1, 2], [9, 3], [4, 5, 6, 7], [20, 0]]
    masked = rank_queries(model, pre, train, queries, [0] * 4, cands, config, pad_id=0)
    for q, result in enumerate(masked):
        assert {e["train_index"] for e in result["top"]} <= set(cands[q])
        assert result["n_scored"] == len(cands[q])
    assert len(masked[1]["top"]) == 2  # k is capped by the smallest candidate set


def test_tfidf_candidates_and_union():
    train = ["the red fox jumps", "blue whales sing", "a red fox sleeps", "green tea leaves"]
    picks = tfidf_candidates(train, ["red fox", "tea"], 2)
    assert sorted(picks[0]) == [0, 2] and picks[1][0] == 3
    union, mask = union_with_masks([[3, 1], [1, 0]])
    assert union == [0, 1, 3]
    assert mask.tolist() == [[False, True, True], [True, True, False]]
    assert parse_candidates("tfidf:50") == 50 and parse_candidates(None) is None
    with pytest.raises(ValueError, match="tfidf:N"):
        parse_candidates("bm25:3")


def test_damping_is_relative_by_default_and_absolute_when_given(setup):
    pre = setup[4]
    name = next(iter(pre.damping))
    assert pre.damping[name] == pytest.approx(0.1 * float(pre.factors.lam[name].double().mean()))
    assert Preconditioner(pre.factors, damping=0.5).damping[name] == 0.5


def test_power_law_exponent_recovers_a_planted_slope():
    ranks = np.arange(1, 200)
    assert power_law_exponent((3.0 * ranks ** -1.3).tolist()) == pytest.approx(1.3)
    assert power_law_exponent([-1.0, 2.0]) is None
