"""Batched sampling for the ``hf`` backend, with the KV cache of a shared prompt prefix computed once.

Each request is expanded into ``n`` sample rows. Rows are sorted by prompt length and batched by a token
budget (``backend.max_generate_tokens``: prompt + new tokens over a batch) and a row limit
(``backend.max_generate_rows``). Within a batch the longest common token prefix (a few-shot block, a CoT prefix)
runs once with batch size 1; its cache is repeated across rows, and each row's own suffix is right-aligned after it:

    [shared prefix][pad ... pad][row suffix] -> decode one token per row per step

Each step's log-softmax, greedy choices and chosen log-probabilities are computed for the whole batch on the device
and only the sampled rows' logits come to the host. Every sampled row draws from its own ``torch.Generator``
seeded by (params.seed, sample index, prompt) on the host, so a sample does not depend on which other requests
share its batch or on the device. :func:`generate_stream` hands on each request as soon as its last sample row is
decoded, so a caller can cache finished requests while later batches run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from alignlab.models.compat import output_cache, with_cache
from alignlab.models.packing import common_prefix_len
from alignlab.models.types import GenerateParams, GenerateRequest, GenerateResult, Generation

MAX_ROWS = 32  # rows per batch when the backend sets no max_generate_rows
STOP_WINDOW = 8  # tokens decoded beyond the longest stop string when checking for it


@dataclass
class _Row:
    request: int
    sample: int
    ids: list[int]
    params: GenerateParams
    generator: torch.Generator


def _row_seed(params: GenerateParams, sample: int, text: str) -> int:
    digest = hashlib.sha256(f"{params.seed}:{sample}:{text}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def generate_batch(backend, requests: list[GenerateRequest]) -> list[GenerateResult]:
    results: list[GenerateResult | None] = [None] * len(requests)
    for positions, outs in generate_stream(backend, requests):
        for i, out in zip(positions, outs, strict=True):
            results[i] = out
    return results  # type: ignore[return-value]


def generate_stream(backend, requests: list[GenerateRequest]) -> Iterator[tuple[list[int], list[GenerateResult]]]:
    """``(request positions, results)`` for the requests whose every sample row is decoded, after each batch."""
    rows: list[_Row] = []
    for r, req in enumerate(requests):
        text = backend.render(req.prompt)
        ids = backend.encode(text)
        for s in range(req.params.n):
            gen = torch.Generator().manual_seed(_row_seed(req.params, s, text))
            rows.append(_Row(r, s, ids, req.params, gen))
    rows.sort(key=lambda row: len(row.ids))
    samples: dict[tuple[int, int], Generation] = {}
    left = [req.params.n for req in requests]
    max_rows = getattr(backend, "max_generate_rows", None) or MAX_ROWS
    batches: list[list[_Row]] = [[]]
    for row in rows:
        batch = batches[-1]
        tokens = (len(row.ids) + row.params.max_new_tokens) * (len(batch) + 1)
        if batch and (tokens > max(backend.max_generate_tokens, 1) or len(batch) >= max_rows):
            batches.append([])
        batches[-1].append(row)
    done_first = [r for r, req in enumerate(requests) if req.params.n == 0]
    if done_first:
        yield done_first, [GenerateResult(()) for _ in done_first]
    for batch in batches:
        if not batch:
            continue
        _decode(backend, batch, samples)
        finished = []
        for row in batch:
            left[row.request] -= 1
            if left[row.request] == 0:
                finished.append(row.request)
        if finished:
            yield finished, [GenerateResult(tuple(samples[(r, s)] for s in range(requests[r].params.n)))
                             for r in finished]


def _shared_prefix(rows: list[_Row], min_tokens: int) -> int:
    n = min(len(r.ids) for r in rows) - 1
    for r in rows[1:]:
        n = min(n, common_prefix_len(rows[0].ids, r.ids))
    return n if n >= min_tokens and len(rows) > 1 else 0


@torch.no_grad()
def _decode(backend, rows: list[_Row], samples: dict[tuple[int, int], Generation]) -> None:
    model, tok = backend.model, backend.tokenizer
    device = next(model.parameters()).device
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    eos = _eos_ids(backend)
    prefix_len = _shared_prefix(rows, backend.min_shared_prefix)
    cache = None
    if prefix_len:
        cache = output_cache(model(torch.tensor([rows[0].ids[:prefix_len]], device=device), use_cache=True))
        cache.batch_repeat_interleave(len(rows))
    suffixes = [r.ids[prefix_len:] for r in rows]
    width = max(len(s) for s in suffixes)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), prefix_len + width), dtype=torch.long)
    mask[:, :prefix_len] = 1
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for i, s in enumerate(suffixes):
        ids[i, width - len(s):] = torch.tensor(s)
        mask[i, prefix_len + width - len(s):] = 1
        positions[i, width - len(s):] = torch.arange(prefix_len, prefix_len + len(s))
    ids, mask, positions = ids.to(device), mask.to(device), positions.to(device)  # they stay on the device
    next_pos = torch.tensor([len(r.ids) for r in rows], device=device)
    max_new = max(r.params.max_new_tokens for r in rows)
    generated: list[list[int]] = [[] for _ in rows]
    logprobs: list[list[float]] = [[] for _ in rows]
    done = [r.params.max_new_tokens == 0 for r in rows]
    finish = ["length"] * len(rows)
    step_ids = ids
    sampled = [i for i, r in enumerate(rows) if r.params.temperature > 0]
    for _ in range(max_new):
        if all(done):
            break
        out = model(step_ids, attention_mask=mask, position_ids=positions, **with_cache(model, cache),
                    use_cache=True, logits_to_keep=1)
        cache = output_cache(out)
        logits = out.logits[:, -1].float()
        chosen = logits.argmax(-1)  # greedy rows; sampled rows draw on the host with their own generator
        drawing = [i for i in sampled if not done[i]]
        if drawing:
            host = logits[drawing].cpu()
            drawn = [_sample(host[k], rows[i].params, rows[i].generator) for k, i in enumerate(drawing)]
            chosen[torch.tensor(drawing, device=device)] = torch.tensor(drawn, device=device)
        picked = logits.log_softmax(-1).gather(1, chosen[:, None])[:, 0]
        tokens, token_lps = chosen.tolist(), picked.tolist()
        for i, row in enumerate(rows):
            if done[i]:
                tokens[i] = pad
                continue
            generated[i].append(tokens[i])
            logprobs[i].append(token_lps[i])
            done[i], finish[i] = _finished(tok, row, generated[i], tokens[i], eos)
        step_ids = torch.tensor(tokens, dtype=torch.long, device=device)[:, None]
        mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=torch.long, device=device)], dim=1)
        positions = next_pos[:, None].clone()
        next_pos += 1
    for i, row in enumerate(rows):
        text, lps = _final_text(tok, row, generated[i], logprobs[i], eos)
        samples[(row.request, row.sample)] = Generation(
            text, finish[i], tuple(lps) if row.params.logprobs else None)


def _eos_ids(backend) -> set[int]:
    ids = set()
    if backend.tokenizer.eos_token_id is not None:
        ids.add(backend.tokenizer.eos_token_id)
    cfg = getattr(backend.model, "generation_config", None)
    extra = getattr(cfg, "eos_token_id", None)
    if isinstance(extra, int):
        ids.add(extra)
    elif extra:
        ids.update(extra)
    return ids


def _sample(logits: torch.Tensor, params: GenerateParams, generator: torch.Generator) -> int:
    if params.temperature <= 0:
        return int(logits.argmax())
    scores = logits / params.temperature
    if params.top_k > 0:
        kth = torch.topk(scores, min(params.top_k, scores.numel())).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=True)
        cumulative = sorted_scores.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_scores.softmax(-1) >= params.top_p  # keep the token that crosses top_p
        scores = scores.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
    return int(torch.multinomial(scores.softmax(-1), 1, generator=generator))


def _finished(tok, row: _Row, generated: list[int], token: int, eos: set[int]) -> tuple[bool, str]:
    if token in eos:
        return True, "eos"
    if row.params.stop:  # a stop string just completed ends in the last tokens: decode only those
        window = max(len(s) for s in row.params.stop) + STOP_WINDOW
        text = tok.decode(generated[-window:], skip_special_tokens=True)
        if any(s in text for s in row.params.stop):
            return True, "stop"
    if len(generated) >= row.params.max_new_tokens:
        return True, "length"
    return False, "length"


def _final_text(tok, row: _Row, generated: list[int], lps: list[float], eos: set[int]) -> tuple[str, list[float]]:
    if generated and generated[-1] in eos:
        generated, lps = generated[:-1], lps[:-1]
    text = tok.decode(generated, skip_special_tokens=True)
    cut = min((text.find(s) for s in row.params.stop if s in text), default=-1)
    return (text[:cut] if cut >= 0 else text), lps
