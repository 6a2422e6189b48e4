"""One packed row of token trees, built with numpy (no per-token Python), and its attention mask.

A row is a run of segments: each tree contributes its stem (the tokens after the shared prefix) and one segment
per branch (the branch's tokens but its last, which predicts nothing). A token sees the shared prefix (the KV
cache), its own segment up to itself and, for a branch token, its tree's stem:

    seg_lo[i] <= col <= i   or   parent_lo[i] <= col < parent_hi[i]        (row columns, after the prefix)

Positions restart per branch at the end of its stem. Logits are kept at every branch token and at each stem's
last token (``queries``); scored token ``g`` reads query ``gather_q[g]`` at vocabulary id ``targets[g]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain

import numpy as np
import torch


@dataclass
class Tree:
    """A stem (tokens shared by the branches, e.g. a question's context) and branches continuing it."""

    stem: list[int]
    branches: list[list[int]] = field(default_factory=list)
    want_last: bool = False  # return the full next-token log-probs after the stem


@dataclass
class RowPlan:
    ids: np.ndarray        # (n,) token ids fed
    positions: np.ndarray  # (n,) position ids
    seg_lo: np.ndarray     # (n,) first row column of the token's own segment
    parent_lo: np.ndarray  # (n,) the stem span a branch token also sees (empty for stem tokens)
    parent_hi: np.ndarray
    queries: np.ndarray    # (Q,) row columns whose logits are kept
    gather_q: np.ndarray   # (G,) index into queries of each scored token
    targets: np.ndarray    # (G,) the scored token ids
    want_last: list[int]   # the trees (row slots) that want the full next-token log-probs after their stem
    last_q: np.ndarray     # (len(want_last),) index into queries of those stems' last tokens
    branch_lengths: list[list[int]]  # per tree, per branch: scored tokens

    @property
    def n(self) -> int:
        return len(self.ids)


def build_row(trees: list[Tree], prefix_len: int) -> RowPlan:
    """The row plan of ``trees`` packed side by side after a shared prefix of ``prefix_len`` tokens."""
    lengths = [[len(b) for b in t.branches] for t in trees]
    want_last = [j for j, t in enumerate(trees) if t.want_last]
    n_branches = np.fromiter((len(ls) for ls in lengths), dtype=np.int64, count=len(trees))
    stem_len = np.fromiter((len(t.stem) for t in trees), dtype=np.int64, count=len(trees))
    branch_len = np.fromiter((x for ls in lengths for x in ls), dtype=np.int64, count=int(n_branches.sum()))
    # segments: per tree its stem, then its branches
    stem_seg = np.cumsum(n_branches + 1) - (n_branches + 1)
    stem = np.zeros(len(trees) + len(branch_len), dtype=bool)
    stem[stem_seg] = True
    lens = np.empty(len(stem), dtype=np.int64)
    lens[stem] = stem_len - prefix_len
    lens[~stem] = np.maximum(branch_len - 1, 0)
    pos0 = np.empty(len(stem), dtype=np.int64)
    pos0[stem] = prefix_len
    pos0[~stem] = np.repeat(stem_len, n_branches)
    parent = np.full(len(stem), -1, dtype=np.int64)
    parent[~stem] = np.repeat(stem_seg, n_branches)
    feeds = chain.from_iterable(chain((t.stem[prefix_len:],), (b[:-1] for b in t.branches)) for t in trees)
    starts = np.cumsum(lens) - lens
    has_parent = parent >= 0
    parent_lo = np.where(has_parent, starts[parent], 0)
    parent_hi = np.where(has_parent, starts[parent] + lens[parent], 0)
    n = int(lens.sum())
    seg_of = np.repeat(np.arange(len(lens)), lens)
    cols = np.arange(n)
    positions = pos0[seg_of] + cols - starts[seg_of]

    stem_last = (starts + lens - 1)[stem]  # every stem has a token after the prefix (see shared_prefix_len)
    is_query = ~stem[seg_of]
    is_query[stem_last] = True
    queries = np.flatnonzero(is_query)
    query_of = np.cumsum(is_query) - 1  # column -> index into queries

    # scored tokens, branch by branch: the first reads the stem's last token, the rest the branch's own tokens
    branch_tree = np.repeat(np.arange(len(trees)), n_branches)
    gather_col = np.empty(int(branch_len.sum()), dtype=np.int64)
    first = (np.cumsum(branch_len) - branch_len)[branch_len > 0]
    gather_col[first] = stem_last[branch_tree[branch_len > 0]]
    rest_mask = np.ones(len(gather_col), dtype=bool)
    rest_mask[first] = False
    gather_col[rest_mask] = np.flatnonzero(~stem[seg_of])
    targets = np.fromiter(chain.from_iterable(b for t in trees for b in t.branches), dtype=np.int64,
                          count=len(gather_col))
    return RowPlan(
        ids=np.fromiter(chain.from_iterable(feeds), dtype=np.int64, count=n), positions=positions,
        seg_lo=starts[seg_of], parent_lo=parent_lo[seg_of], parent_hi=parent_hi[seg_of], queries=queries,
        gather_q=query_of[gather_col], targets=targets, want_last=want_last,
        last_q=query_of[stem_last[want_last]], branch_lengths=lengths)


def allowed(seg_lo: torch.Tensor, parent_lo: torch.Tensor, parent_hi: torch.Tensor, q: torch.Tensor,
            col: torch.Tensor) -> torch.Tensor:
    """Whether row token ``q`` sees row column ``col`` (broadcasts; also a FlexAttention mask_mod body)."""
    lo, plo, phi = seg_lo[q], parent_lo[q], parent_hi[q]
    return ((col >= lo) & (col <= q)) | ((col >= plo) & (col < phi))


def dense_mask(plan: RowPlan, past: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    """The additive float mask ``(1, 1, n, past + n)``: 0 where a token sees a column, the dtype's minimum elsewhere."""
    seg_lo, plo, phi = (torch.from_numpy(a).to(device) for a in (plan.seg_lo, plan.parent_lo, plan.parent_hi))
    rows = torch.arange(plan.n, device=device)
    sees = allowed(seg_lo, plo, phi, rows[:, None], rows[None, :])
    mask = torch.zeros((plan.n, past + plan.n), dtype=dtype, device=device)
    mask[:, past:].masked_fill_(~sees, torch.finfo(dtype).min)
    return mask[None, None]
