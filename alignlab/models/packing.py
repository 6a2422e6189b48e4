"""Token-tree packing: score many continuations in few forward passes, exactly.

A :class:`Tree` is a stem (the tokens shared by its branches, e.g. a question's context) and branches
(token lists that each continue the stem, e.g. its answer options). Trees are packed side by side into
one row per forward pass; a float attention mask lets every token see only its own ancestors:

    prefix (KV cache, computed once) | stem_1 | branch_1a | branch_1b | stem_2 | branch_2a | ...

Position ids restart per branch at the end of its stem, so each branch is computed exactly as if it were
the only continuation of its stem. A prefix shared by every tree of a call (a few-shot block) is run once
and its KV cache is cropped back after each row, never copied. Logits are computed only at the positions
whose next token is scored.

Tokens per question: (C - F) + N * L instead of lm-eval's N * (C + L) (C context, F shared prefix,
N options, L option length).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from alignlab.models.compat import output_cache, with_cache
from alignlab.models.flex import block_mask as flex_block_mask
from alignlab.models.flex import flex_attention_of
from alignlab.models.packing_rows import RowPlan, Tree, build_row, dense_mask

T = TypeVar("T")
U = TypeVar("U")
LOGPROB_CHUNK = 4096  # scored tokens per float32 log-softmax
__all__ = ["PrefixStore", "Tree", "TreeOutput", "common_prefix_len", "iter_trees", "run_trees",
           "shared_prefix_len"]


@dataclass
class TreeOutput:
    branch_logprobs: list[list[float]]
    branch_greedy: list[list[bool]]
    last_logprobs: torch.Tensor | None = None  # (V,) float32


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:  # the usual case, compared in C
        return n
    near = max(n - 8, 0)  # else usually a merge in the last few tokens
    if a[:near] == b[:near]:
        return next(i for i in range(near, n) if a[i] != b[i])
    differ = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(differ[0]) if len(differ) else n  # equal values in a list and a tuple


def shared_prefix_len(trees: list[Tree], min_tokens: int) -> int:
    """Length of the prefix shared by every stem, leaving at least one stem token per tree."""
    if len(trees) < 2:
        return 0
    first = trees[0].stem
    n = min(len(t.stem) for t in trees) - 1
    for t in trees[1:]:
        if t.stem[:n] != first[:n]:  # compared in C; the usual case after the first few trees is equal
            n = common_prefix_len(first[:n], t.stem[:n])
            if n < min_tokens:
                return 0
    return n if n >= min_tokens else 0


def _pack_rows(sizes: list[int], budget: int, ordered: bool = False) -> list[list[int]]:
    """Greedy first-fit of trees (by size, largest first) into rows of at most ``budget`` tokens; ``ordered``:
    next fit in input order."""
    rows: list[list[int]] = []
    if ordered:
        free = 0
        for i, size in enumerate(sizes):
            if not rows or size > free:
                rows.append([])
                free = budget
            rows[-1].append(i)
            free -= size
        return rows
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    room: list[int] = []
    for i in order:
        for r, free in enumerate(room):
            if sizes[i] <= free:
                rows[r].append(i)
                room[r] -= sizes[i]
                break
        else:
            rows.append([i])
            room.append(budget - sizes[i])
    return rows


class PrefixStore:
    """Keeps the KV cache of the last shared prefix, so consecutive calls with the same few-shot block
    (a study sends its requests in chunks) compute it once. Rows crop the cache back to the prefix after use.
    A change of the model's dtype drops the cache by itself; call ``clear()`` after changing weights in place."""

    def __init__(self) -> None:
        self.key: tuple[int, ...] = ()
        self.cache = None
        self.dtype: torch.dtype | None = None

    def get(self, model: torch.nn.Module, prefix: list[int], min_tokens: int, device: torch.device):
        """``(cache, length)`` for the longest usable start of ``prefix``: the kept cache, cropped if this call
        shares less of it, when at least ``min_tokens`` are shared; else a fresh forward over ``prefix``."""
        dtype = next(model.parameters()).dtype
        if dtype != self.dtype:  # a cache computed in another precision would silently skew every score
            self.clear()
            self.dtype = dtype
        shared = common_prefix_len(list(self.key), prefix)
        if self.cache is not None and shared >= min_tokens:
            if shared < len(self.key):
                self.cache.crop(shared - len(self.key))  # transformers 5 crops by a negative count
                self.key = self.key[:shared]
            if shared < len(prefix):  # extend the kept cache to this call's whole prefix
                try:
                    model(torch.tensor([prefix[shared:]], device=device), **with_cache(model, self.cache),
                          use_cache=True, logits_to_keep=1)
                except BaseException:
                    self.clear()  # a half-extended cache must not be reused
                    raise
                self.key = tuple(prefix)
            return self.cache, len(self.key)
        self.clear()  # never keep a stale cache if the forward below fails
        out = model(torch.tensor([prefix], device=device), use_cache=True, logits_to_keep=1)
        self.key, self.cache = tuple(prefix), output_cache(out)
        return self.cache, len(prefix)

    def clear(self) -> None:
        self.key, self.cache = (), None


def run_trees(model: torch.nn.Module, trees: list[Tree], *, max_tokens: int = 512, min_prefix: int = 16,
              store: PrefixStore | None = None, attention: str = "dense", prefetch: bool = False
              ) -> list[TreeOutput]:
    """Score every branch of every tree. Returns per-branch token logprobs in input order.

    ``max_tokens`` bounds a row: with a dense mask attention costs ``n * (prefix + n)``, so short rows are faster
    on a CPU (measured: 512 beats 2048 by ~25%); a GPU with ``attention="flex"`` (no dense mask, see ``flex.py``)
    takes tens of thousands. ``prefetch`` builds row i+1 on a worker thread while row i runs, and reads row i's
    results back only after row i+1 is launched, so a GPU never waits for the host.
    """
    outputs: list[TreeOutput] = []
    for _, so_far in iter_trees(model, trees, max_tokens=max_tokens, min_prefix=min_prefix, store=store,
                                attention=attention, prefetch=prefetch):
        outputs = so_far
    return outputs


def iter_trees(model: torch.nn.Module, trees: list[Tree], *, max_tokens: int = 512, min_prefix: int = 16,
               store: PrefixStore | None = None, attention: str = "dense", prefetch: bool = False,
               ordered: bool = False) -> Iterator[tuple[list[int], list[TreeOutput]]]:
    """:func:`run_trees`, yielding ``(indices of the trees just finished, outputs so far)`` after each row.
    ``ordered`` packs rows in input order (next fit), so trees finish roughly in order: a caller can hand on
    the first requests' results while later rows still run."""
    with torch.no_grad():
        device = next(model.parameters()).device
        dtype = next(model.parameters()).dtype
        prefix_len = shared_prefix_len(trees, min_prefix)
        store = store or PrefixStore()
        cache = None
        if prefix_len:
            cache, prefix_len = store.get(model, trees[0].stem[:prefix_len], min_prefix, device)
    sizes = [len(t.stem) - prefix_len + sum(max(len(b) - 1, 0) for b in t.branches) for t in trees]
    rows = _pack_rows(sizes, max_tokens, ordered=ordered)
    outputs: list[TreeOutput | None] = [None] * len(trees)

    def prepare(row: list[int]) -> tuple[RowPlan, dict[str, Any]]:
        plan = build_row([trees[i] for i in row], prefix_len)
        return plan, _inputs(plan, prefix_len, dtype, device, attention)

    try:
        with (flex_attention_of(model) if attention == "flex" else contextlib.nullcontext()):
            pending = None
            for row, (plan, inputs) in zip(rows, _prefetched(prepare, rows, prefetch), strict=True):
                with torch.no_grad():
                    result = _forward(model, plan, inputs, cache)
                if pending is not None:
                    _finish(*pending, trees, outputs)
                    yield pending[0], outputs  # type: ignore[misc]
                pending = (row, plan, result)
            if pending is not None:
                _finish(*pending, trees, outputs)
                yield pending[0], outputs  # type: ignore[misc]
    except BaseException:
        store.clear()  # a row may have failed before cropping the cache back to the prefix
        raise


def _prefetched(prepare: Callable[[T], U], items: list[T], enabled: bool) -> Iterator[U]:
    """``prepare(item)`` for each item in order; with ``enabled``, item i+1 is prepared on a worker thread while
    the caller consumes item i."""
    if not enabled or len(items) < 2:
        yield from (prepare(item) for item in items)
        return
    with ThreadPoolExecutor(1, thread_name_prefix="alignlab-rows") as pool:
        future = pool.submit(prepare, items[0])
        for i in range(len(items)):
            value = future.result()
            if i + 1 < len(items):
                future = pool.submit(prepare, items[i + 1])
            yield value


def _inputs(plan: RowPlan, past: int, dtype: torch.dtype, device: torch.device, attention: str) -> dict[str, Any]:
    """The row's device tensors: ids, positions, kept-logit columns, scored tokens, and its attention mask."""
    pin = device.type == "cuda"

    def put(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a)
        return t.pin_memory().to(device, non_blocking=True) if pin else t.to(device)

    mask = flex_block_mask(plan, past, device) if attention == "flex" else dense_mask(plan, past, dtype, device)
    return {"ids": put(plan.ids)[None], "positions": put(plan.positions)[None], "queries": put(plan.queries),
            "gather_q": put(plan.gather_q), "targets": put(plan.targets), "last_q": put(plan.last_q), "mask": mask}


def _forward(model: torch.nn.Module, plan: RowPlan, t: dict[str, Any], cache: Any) -> dict[str, torch.Tensor]:
    """Run one row; the scored tokens' logprobs and greedy flags stay on the device (no sync here)."""
    kwargs = {**with_cache(model, cache), "use_cache": True} if cache is not None else {"use_cache": False}
    out = model(t["ids"], attention_mask=t["mask"], position_ids=t["positions"], logits_to_keep=t["queries"],
                **kwargs)
    if cache is not None:
        cache.crop(-plan.n)
    logits = out.logits[0]  # (Q, V)
    lps, greedy = [], []
    for lo in range(0, len(t["gather_q"]), LOGPROB_CHUNK):  # bounds the float32 copy of the logits
        q, target = t["gather_q"][lo:lo + LOGPROB_CHUNK], t["targets"][lo:lo + LOGPROB_CHUNK]
        logprobs = logits[q].float().log_softmax(-1)
        lps.append(logprobs.gather(1, target[:, None])[:, 0])
        greedy.append(logprobs.argmax(-1) == target)
    empty = torch.empty(0, device=logits.device)
    return {"lp": torch.cat(lps) if lps else empty, "greedy": torch.cat(greedy) if greedy else empty.bool(),
            "last": logits[t["last_q"]].float().log_softmax(-1)}


def _finish(row: list[int], plan: RowPlan, result: dict[str, torch.Tensor], trees: list[Tree],
            outputs: list[TreeOutput | None]) -> None:
    """Copy one row's results to the host and split them per tree and branch."""
    lps, greedy = result["lp"].tolist(), result["greedy"].tolist()
    last = dict(zip(plan.want_last, result["last"].cpu(), strict=True)) if plan.want_last else {}
    g = 0
    for j, (i, lengths) in enumerate(zip(row, plan.branch_lengths, strict=True)):
        branch_lp, branch_greedy = [], []
        for length in lengths:
            branch_lp.append(lps[g:g + length])
            branch_greedy.append(greedy[g:g + length])
            g += length
        outputs[i] = TreeOutput(branch_lp, branch_greedy, last.get(j))
