"""The vectorised row builder against a straightforward per-token reference, and the row runner's modes
(FlexAttention block masks, prefetch on a worker thread) against the dense path."""

from __future__ import annotations

import random

import pytest
import torch

from alignlab.models.packing import Tree, run_trees
from alignlab.models.packing_rows import build_row, dense_mask


def reference_row(trees: list[Tree], prefix_len: int):
    """Token by token: ids, positions, the visible columns of each token, and (query column, target) pairs."""
    ids, pos, sees, scored = [], [], [], []
    for tree in trees:
        stem_start = len(ids)
        for j, tok in enumerate(tree.stem[prefix_len:]):
            ids.append(tok)
            pos.append(prefix_len + j)
            sees.append(set(range(stem_start, stem_start + j + 1)))
        last_stem, stem_cols = len(ids) - 1, set(range(stem_start, len(ids)))
        for branch in tree.branches:
            b_start = len(ids)
            for j, tok in enumerate(branch[:-1]):
                ids.append(tok)
                pos.append(len(tree.stem) + j)
                sees.append(set(range(b_start, b_start + j + 1)) | stem_cols)
            scored.extend(zip([last_stem, *range(b_start, len(ids))][:len(branch)], branch, strict=True))
    return ids, pos, sees, scored


def random_trees(rng: random.Random, prefix_len: int) -> list[Tree]:
    trees = []
    for _ in range(rng.randint(1, 6)):
        stem = [rng.randrange(100) for _ in range(prefix_len + rng.randint(1, 7))]
        branches = [[rng.randrange(100) for _ in range(rng.randint(0, 5))] for _ in range(rng.randint(0, 4))]
        trees.append(Tree(stem, branches, want_last=rng.random() < 0.3))
    return trees


@pytest.mark.parametrize("seed", range(40))
def test_build_row_matches_the_per_token_reference_on_random_trees(seed):
    rng = random.Random(seed)
    prefix_len = rng.choice([0, 3])
    trees = random_trees(rng, prefix_len)
    ids, pos, sees, scored = reference_row(trees, prefix_len)
    plan = build_row(trees, prefix_len)
    assert plan.ids.tolist() == ids
    assert plan.positions.tolist() == pos
    past = rng.choice([0, 5])
    mask = dense_mask(plan, past, torch.float32)[0, 0]
    expected = torch.full((len(ids), past + len(ids)), torch.finfo(torch.float32).min)
    expected[:, :past] = 0.0
    for i, cols in enumerate(sees):
        expected[i, [past + c for c in cols]] = 0.0
    assert torch.equal(mask, expected)
    queries = plan.queries.tolist()
    assert [(queries[q], t) for q, t in zip(plan.gather_q.tolist(), plan.targets.tolist(), strict=True)] == scored
    assert plan.branch_lengths == [[len(b) for b in t.branches] for t in trees]
    stem_ends = [len(t.stem) - prefix_len for t in trees]
    row_ends = [sum(len(t.stem) - prefix_len + sum(max(len(b) - 1, 0) for b in t.branches) for t in trees[:k])
                for k in range(len(trees))]
    wanted = [j for j, t in enumerate(trees) if t.want_last]
    assert [queries[q] for q in plan.last_q.tolist()] == [row_ends[j] + stem_ends[j] - 1 for j in wanted]


def _outputs(model, trees, **kwargs):
    return [(o.branch_logprobs, o.branch_greedy, None if o.last_logprobs is None else o.last_logprobs.tolist())
            for o in run_trees(model, trees, min_prefix=4, **kwargs)]


def test_prefetch_on_a_worker_thread_gives_identical_results(tiny_model):
    rng = random.Random(7)
    shared = [rng.randrange(1000) for _ in range(12)]
    trees = [Tree(shared + t.stem, t.branches, t.want_last) for t in random_trees(rng, 0) * 3]
    plain = _outputs(tiny_model, trees, max_tokens=24)
    assert _outputs(tiny_model, trees, max_tokens=24, prefetch=True) == plain


@pytest.mark.filterwarnings("ignore:.*flex_attention called without torch.compile:UserWarning")
def test_flex_attention_block_masks_match_the_dense_mask(tiny_model):
    rng = random.Random(3)
    shared = [rng.randrange(1000) for _ in range(9)]
    trees = [Tree(shared + t.stem, t.branches, t.want_last) for t in random_trees(rng, 0) * 2]
    dense = run_trees(tiny_model, trees, max_tokens=64, min_prefix=4)
    flex = run_trees(tiny_model, trees, max_tokens=64, min_prefix=4, attention="flex")
    assert tiny_model.config._attn_implementation != "alignlab_flex"  # restored after the call
    for d, f in zip(dense, flex, strict=True):
        for a, b in zip(d.branch_logprobs, f.branch_logprobs, strict=True):
            assert a == pytest.approx(b, abs=1e-5)
        if d.last_logprobs is not None:
            assert torch.allclose(d.last_logprobs, f.last_logprobs, atol=1e-5)
