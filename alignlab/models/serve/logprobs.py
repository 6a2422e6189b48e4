"""Token logprobs for ``alignlab serve`` from one forward pass of the hf backend over the prompt and the
re-tokenised generated text (the sampled tokens, unless a sampler picked a non-canonical tokenisation).

Token texts are the exact spans of the prompt or reply (``text_offset`` indexes them); a BOS token the
tokenizer adds, and an end-of-sequence token, are listed by name with zero width. A prompt given as token ids
is scored as those ids, and its text is their decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import torch

from alignlab.models.hf import HFBackend
from alignlab.models.serve.schema import ApiError
from alignlab.models.types import Generation

CONTEXT_TOKENS = 4  # tokens of left context used to decode one token's text


# -- logprobs from one forward pass ---------------------------------------------------------------
@dataclass
class TokenInfo:
    """Reported tokens: text, offset, logprob (None for the very first) and top alternatives."""

    tokens: list[str]
    offsets: list[int]
    logprobs: list[float | None]
    top: list[list[tuple[str, float]] | None]


@torch.no_grad()
def _forward(hf: HFBackend, ids: list[int], first: int, k: int
             ) -> tuple[list[float], list[list[tuple[int, float]]]]:
    """log p(ids[t] | ids[:t]) and the top-k next tokens there, for t in [first, len(ids)); first >= 1."""
    if first >= len(ids):
        return [], []
    device = next(hf.model.parameters()).device
    out = hf.model(torch.tensor([ids], device=device), use_cache=False, logits_to_keep=len(ids) - first + 1)
    lp = out.logits[0, :-1].float().log_softmax(-1)  # (len(ids) - first, V)
    chosen = lp.gather(1, torch.tensor(ids[first:], device=lp.device)[:, None])[:, 0].tolist()
    values, indices = lp.topk(k, -1)  # (len(ids) - first, k)
    rows = zip(indices.tolist(), values.tolist(), strict=True)
    return chosen, [list(zip(i, v, strict=True)) for i, v in rows]


def _decode_after(tok: Any, contexts: list[list[int]], ids: list[int]) -> list[str]:
    """Text each token of ``ids`` adds after its context (so SentencePiece keeps a leading space)."""
    with_token = [c + [i] for c, i in zip(contexts, ids, strict=True)]
    texts = tok.batch_decode(with_token + contexts, skip_special_tokens=False,
                             clean_up_tokenization_spaces=False)
    return [texts[j][len(texts[len(ids) + j]):] for j in range(len(ids))]


def _context(ids: list[int], t: int) -> list[int]:
    return ids[max(0, t - CONTEXT_TOKENS):t]


def _spans(tok: Any, ids: list[int], lo: int, hi: int, text: str, base: int) -> tuple[list[str], list[int]]:
    """Pieces of ``text`` that ids[lo:hi] spell, and their offsets from ``base``."""
    if hi <= lo:
        return [], []
    lengths = [len(p) for p in _decode_after(tok, [_context(ids, t) for t in range(lo, hi)], ids[lo:hi])]
    starts = [min(s, len(text)) for s in accumulate([0, *lengths[:-1]])]
    ends = starts[1:] + [len(text)]
    return [text[s:e] for s, e in zip(starts, ends, strict=True)], [base + s for s in starts]


def _added_bos(hf: HFBackend, text: str) -> int:
    bos = hf.tokenizer.bos_token
    return int(hf.add_bos and not (bos and text.startswith(bos)))


def token_info(hf: HFBackend, text: str, gen: Generation, echo: bool, k: int,
               prompt_ids: list[int] | None = None) -> TokenInfo:
    """Logprobs of the prompt (when ``echo``) and of the generated text, from one forward pass. ``prompt_ids``:
    the prompt as the client's token ids (``text`` is their decoding), else ``text`` is encoded.

    A generation that ended on end-of-sequence lists that token last; one that produced only tokens the
    decoder drops (special tokens) lists the most likely token there, so the next-token distribution is
    always reported when a token was generated.
    """
    tok = hf.tokenizer
    p_ids = hf.encode(text) if prompt_ids is None else list(prompt_ids)
    if not p_ids:
        raise ApiError(400, "empty prompt: the tokenizer adds no BOS token to condition on", "prompt")
    g_ids = tok(gen.text, add_special_tokens=False).input_ids if gen.text else []
    eos = tok.eos_token_id if tok.eos_token_id is not None else 0
    dropped = not g_ids and gen.finish_reason not in ("empty", "eos")
    extra = [eos] if gen.finish_reason == "eos" or dropped else []
    ids = p_ids + g_ids + extra
    first = 0 if echo else len(p_ids)
    chosen, tops = _forward(hf, ids, max(first, 1), max(k, 1))
    if dropped:
        ids[-1], chosen[-1] = tops[-1][0]
    tops = [row[:k] for row in tops]
    info = TokenInfo([], [], [], [])
    if echo:
        n_bos = _added_bos(hf, text) if prompt_ids is None else 0
        pieces, offsets = _spans(tok, ids, n_bos, len(p_ids), text, 0)
        info.tokens += [tok.bos_token] * n_bos + pieces
        info.offsets += [0] * n_bos + offsets
        info.logprobs.append(None)
        info.top.append(None)
    pieces, offsets = _spans(tok, ids, len(p_ids), len(p_ids) + len(g_ids), gen.text, len(text))
    info.tokens += pieces + [tok.convert_ids_to_tokens(i) for i in ids[len(ids) - len(extra):]]
    info.offsets += offsets + [len(text) + len(gen.text)] * len(extra)
    info.logprobs += chosen
    positions = range(max(first, 1), len(ids))
    contexts = [_context(ids, t) for t, row in zip(positions, tops, strict=True) for _ in row]
    alt_text = iter(_decode_after(tok, contexts, [i for row in tops for i, _ in row]))
    info.top += [[(next(alt_text), v) for _, v in row] for row in tops]
    return info


def legacy_logprobs(info: TokenInfo) -> dict[str, Any]:
    tops: list[dict[str, float] | None] = []
    for token, lp, row in zip(info.tokens, info.logprobs, info.top, strict=True):
        if row is None or lp is None:
            tops.append(None)
            continue
        entry: dict[str, float] = {}
        for text, value in [*row, (token, lp)]:  # OpenAI lists the chosen token too
            entry.setdefault(text, value)
        tops.append(entry)
    return {"tokens": info.tokens, "token_logprobs": info.logprobs, "top_logprobs": tops,
            "text_offset": info.offsets}


def chat_logprobs(info: TokenInfo) -> dict[str, Any]:
    def item(text: str, lp: float) -> dict[str, Any]:
        return {"token": text, "logprob": lp, "bytes": list(text.encode("utf-8"))}

    return {"content": [{**item(t, lp), "top_logprobs": [item(a, v) for a, v in row or []]}
                        for t, lp, row in zip(info.tokens, info.logprobs, info.top, strict=True)
                        if lp is not None]}
