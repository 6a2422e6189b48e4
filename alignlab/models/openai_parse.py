"""Reading OpenAI-compatible responses: echoed prompt logprobs, token logprobs, error bodies, ``Retry-After``."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from alignlab.models.packing import common_prefix_len
from alignlab.models.render import render_raw_hh
from alignlab.models.types import ContinuationScore, Conversation, ModelError, Prompt


class NoEchoError(ModelError):
    """The server returned no prompt logprobs for an echo request."""


@dataclass(frozen=True)
class Echo:
    """One echoed prompt: its tokens, their logprobs (first None) and top-1 logprob per position."""

    tokens: list[tuple[str, int | None]]  # (token text, text offset)
    logprobs: list[float | None]
    top: list[float | None]


def local_text(prompt: Prompt) -> str | None:
    """The exact text of strings and raw_hh conversations; None for chat conversations (server template)."""
    if isinstance(prompt, str):
        return prompt
    return render_raw_hh(prompt) if prompt.format == "raw_hh" else None


def messages(conv: Conversation) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in conv.messages]


def error_message(resp: httpx.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return resp.text[:500] or resp.reason_phrase
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if err is not None:
            return str(err)[:500]
    return str(data)[:500]


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), 600.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), 600.0)


def legacy_token_logprobs(choice: dict[str, Any]) -> tuple[float, ...] | None:
    lps = (choice.get("logprobs") or {}).get("token_logprobs")
    return None if lps is None else tuple(float(x) for x in lps if x is not None)


def chat_token_logprobs(choice: dict[str, Any]) -> tuple[float, ...] | None:
    content = (choice.get("logprobs") or {}).get("content")
    return None if content is None else tuple(float(e["logprob"]) for e in content)


def parse_echo(choice: dict[str, Any], prompt: str | None, url: str) -> Echo:
    lp = choice.get("logprobs") or {}
    tokens, logprobs = lp.get("tokens"), lp.get("token_logprobs")
    echoed = prompt is None or (choice.get("text") or "").startswith(prompt)
    if not tokens or logprobs is None or len(tokens) != len(logprobs) or not echoed:
        raise NoEchoError(f"{url} returned no prompt logprobs: the server lacks echo + logprobs "
                          "(completions with echo=true, logprobs, max_tokens=0), which score() needs")
    offsets = lp.get("text_offset") or [None] * len(tokens)
    top = [max(t.values()) if t else None for t in (lp.get("top_logprobs") or [None] * len(tokens))]
    keep = len(tokens)
    if prompt and offsets[0] is not None:  # drop any generated token a server added despite max_tokens=0
        keep = sum(1 for o in offsets if o < len(prompt))
    return Echo(list(zip(tokens, offsets, strict=True))[:keep], list(logprobs[:keep]), top[:keep])


def continuation_score(ctx: Echo, full: Echo, url: str) -> ContinuationScore:
    """Score ``full`` after the tokens it shares with ``ctx``; a boundary merge is subtracted exactly."""
    shared = common_prefix_len(ctx.tokens, full.tokens)
    own, ctx_tail = full.logprobs[shared:], ctx.logprobs[shared:]
    if None in own or None in ctx_tail:
        raise ModelError(f"cannot score at {url}: the context is empty (or merges into the first "
                         "continuation token) and the server adds no BOS token to condition on")
    greedy = all(t is not None and lp >= t - 1e-6 for lp, t in zip(own, full.top[shared:], strict=True))
    return ContinuationScore(
        logprob=float(sum(own) - sum(ctx_tail)),  # type: ignore[arg-type]
        token_logprobs=tuple(own),  # type: ignore[arg-type]
        tokens=tuple(t for t, _ in full.tokens[shared:]),
        is_greedy=greedy,
        boundary_merge=shared < len(ctx.tokens),
    )


def match_option(text: str, options: Sequence[str]) -> int | None:
    """Index of the option a sampled token spells (exactly, else the one equal up to surrounding spaces)."""
    if text in options:
        return list(options).index(text)
    loose = [i for i, o in enumerate(options) if o.strip() == text.strip()]
    return loose[0] if len(loose) == 1 else None
