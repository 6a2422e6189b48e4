"""From queries to their most influential training sequences (Grosse et al. 2023: query batching, TF-IDF filtering).

Per chunk of queries: precondition their gradients (rank r), score the union of their candidate sets with one
training pass (per-query masks drop non-candidates), keep each query's top-k, then re-score the union of the
top-k sets at full rank with per-layer and per-token scores, and re-rank. Scores are unnormalised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from alignlab.influence import distributed as dist
from alignlab.influence.candidates import union_with_masks
from alignlab.influence.config import QueryConfig
from alignlab.influence.data import make_batches
from alignlab.influence.scores import PairwiseScores, Preconditioner, pairwise_scores, precondition_queries
from alignlab.influence.store import layer_index

Progress = Callable[[str, int, int], None]


def _scores_over(model: torch.nn.Module, pre: Preconditioner, seqs: Sequence[Sequence[int]], rows: list[int],
                 queries: Any, batch_size: int, pad_id: int, per_token: bool, progress: Progress | None,
                 label: str) -> PairwiseScores:
    """Pairwise scores over ``rows`` (data parallel: each rank scores its shard, rank order preserved)."""
    mine = dist.shard(rows, batch_size)
    batches = make_batches(seqs, mine, batch_size, pad_id)
    if batches:
        part = pairwise_scores(model, pre.factors.tracked, batches, queries, per_token=per_token,
                               progress=progress, label=label, head=pre.factors.head)
        part = PairwiseScores(part.total.cpu(), {k: v.cpu() for k, v in part.per_layer.items()},
                              None if part.per_token is None else part.per_token.cpu())
    else:
        part = None
    parts = [p for p in dist.gather_objects(part) if p is not None]
    per_token = None
    if per_token_parts := [p.per_token for p in parts if p.per_token is not None]:
        width = max(t.shape[-1] for t in per_token_parts)
        per_token = torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[-1])) for t in per_token_parts], 1)
    return PairwiseScores(torch.cat([p.total for p in parts], 1),
                          {k: torch.cat([p.per_layer[k] for p in parts], 1) for k in parts[0].per_layer}, per_token)


def rank_queries(model: torch.nn.Module, pre: Preconditioner, train: Sequence[Sequence[int]],
                 queries: Sequence[Sequence[int]], starts: Sequence[int], candidates: Sequence[Sequence[int]] | None,
                 config: QueryConfig, pad_id: int, progress: Progress | None = None) -> list[dict[str, Any]]:
    """One result dict per query: top-k rows with full-rank, low-rank, per-layer and per-token scores, plus the
    sorted scores of every candidate (for the sparsity plot)."""
    results: list[dict[str, Any]] = []
    all_rows = list(range(len(train)))
    for lo in range(0, len(queries), config.query_batch_size):
        chunk = list(range(lo, min(lo + config.query_batch_size, len(queries))))
        q_batches = make_batches(queries, chunk, config.batch_size, pad_id, starts)
        low = precondition_queries(model, pre, q_batches, config.rank, config.oversample, config.seed)
        cands = [candidates[q] for q in chunk] if candidates is not None else [all_rows] * len(chunk)
        rows, mask = union_with_masks(cands)
        ranked = _scores_over(model, pre, train, rows, low, config.batch_size, pad_id, False, progress,
                              f"ranking (rank {config.rank or 'full'})")
        masked = ranked.total.masked_fill(~mask, float("-inf"))
        k = min(config.top_k, int(mask.sum(1).min()))
        top_cols = masked.topk(k, dim=1).indices  # [Q, k]
        top_rows = [[rows[c] for c in cols] for cols in top_cols.tolist()]
        full = low if config.rank is None else precondition_queries(model, pre, q_batches, None)
        re_rows, _ = union_with_masks(top_rows)
        rescored = _scores_over(model, pre, train, re_rows, full, config.batch_size, pad_id, True, progress,
                                "full-rank re-scoring")
        for j, q in enumerate(chunk):
            results.append(_result(q, j, top_rows[j], re_rows, rescored, rows, ranked, mask[j], train))
    return results


def _result(q: int, j: int, top: list[int], re_rows: list[int], rescored: PairwiseScores, rows: list[int],
            ranked: PairwiseScores, mask: torch.Tensor, train: Sequence[Sequence[int]]) -> dict[str, Any]:
    col = {r: c for c, r in enumerate(re_rows)}
    low_col = {r: c for c, r in enumerate(rows)}
    entries = []
    for r in top:
        c = col[r]
        layers: dict[int, float] = {}
        for name, values in rescored.per_layer.items():
            layers[layer_index(name)] = layers.get(layer_index(name), 0.0) + float(values[j, c])
        token_scores = rescored.per_token[j, c, :len(train[r])] if rescored.per_token is not None else None
        entries.append({"train_index": r, "score": float(rescored.total[j, c]),
                        "score_ranking_pass": float(ranked.total[j, low_col[r]]),
                        "layer_scores": [layers[k] for k in sorted(layers)], "layers": sorted(layers),
                        # token t's score is the gradient at position t, which predicts token t + 1
                        "token_scores": None if token_scores is None else token_scores.tolist()})
    entries.sort(key=lambda e: -e["score"])
    scored = ranked.total[j][mask].numpy()
    return {"query_index": q, "top": entries, "n_scored": int(mask.sum()),
            "sorted_scores": np.sort(scored)[::-1].tolist()}


def power_law_exponent(sorted_scores: Sequence[float], min_points: int = 5) -> float | None:
    """Slope ``α`` of ``log score = c - α log rank`` fitted by least squares over the positive scores (the paper's
    sparsity check: heavy-tailed influence gives a straight line on log-log axes)."""
    pos = np.array([s for s in sorted_scores if s > 0], dtype=float)
    if len(pos) < min_points:
        return None
    ranks = np.arange(1, len(pos) + 1, dtype=float)
    slope = np.polyfit(np.log(ranks), np.log(pos), 1)[0]
    return float(-slope)
