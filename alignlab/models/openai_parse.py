"""Reading OpenAI-compatible responses: choices, echoed prompt logprobs, token logprobs, error bodies,
``Retry-After``. A body of the wrong shape raises :class:`Malformed` (the request is retried)."""

from __future__ import annotations

import email.utils
import math
import re
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


class Malformed(Exception):
    """A 2xx answer whose body is not the shape asked for (truncated, fewer choices, missing fields)."""


STRING_ONLY = re.compile(r"\b(must|should) be an? (valid |single )?str(ing)?\b|\bstring_type\b|\bnot an? str(ing)?\b"
                         r"|\bexpected an? str(ing)?\b")


def wants_string_prompt(status: int, message: str) -> bool:
    """Whether a rejection says the prompt must be one string (``transformers serve``: "prompt must be a
    string."; a pydantic server: "Input should be a valid string" at ``prompt``)."""
    text = message.lower()
    return status in (400, 422) and "prompt" in text and STRING_ONLY.search(text) is not None


def choices_of(data: Any, key: str, count: int | None = None) -> list[dict[str, Any]]:
    """The choices of a completion answer in index order, each with ``key`` ("text" or "message");
    exactly ``count`` of them (None: at least one)."""
    if not isinstance(data, dict):
        raise Malformed(f"expected a JSON object, got {type(data).__name__}")
    choices = data.get("choices")
    if not isinstance(choices, list):
        raise Malformed("no 'choices' list")
    for c in choices:
        if not isinstance(c, dict) or not isinstance(c.get(key), str if key == "text" else dict):
            raise Malformed(f"a choice without {key!r}")
        if not isinstance(c.get("index", 0), int) or not isinstance(c.get("logprobs") or {}, dict):
            raise Malformed("a choice with a bad 'index' or 'logprobs'")
    if count is None and not choices:
        raise Malformed("no choices")
    if count is not None and len(choices) != count:
        raise Malformed(f"{len(choices)} choices for {count} prompts")
    return sorted(choices, key=lambda c: c.get("index", 0))


def chat_text(choice: dict[str, Any]) -> str:
    """The reply text of a chat choice ("" for a null content)."""
    content = choice["message"].get("content")
    if content is not None and not isinstance(content, str):
        raise Malformed("a chat message whose content is not a string")
    return content or ""


def _number(x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or math.isnan(x):
        raise Malformed(f"a logprob that is not a number: {x!r}")
    return float(x)


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
    if lps is not None and not isinstance(lps, list):
        raise Malformed("'token_logprobs' is not a list")
    return None if lps is None else tuple(_number(x) for x in lps if x is not None)


def chat_entries(choice: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The ``logprobs.content`` entries of a chat choice (None when absent), each with a token and a logprob."""
    content = (choice.get("logprobs") or {}).get("content")
    if content is None:
        return None
    if not isinstance(content, list) or not all(isinstance(e, dict) and isinstance(e.get("token"), str)
                                                and not isinstance(e.get("logprob"), bool) for e in content):
        raise Malformed("chat logprobs without a token or logprob")
    for e in content:
        _number(e.get("logprob"))
    return content


def chat_token_logprobs(choice: dict[str, Any]) -> tuple[float, ...] | None:
    content = chat_entries(choice)
    return None if content is None else tuple(float(e["logprob"]) for e in content)


def top_next_legacy(choice: dict[str, Any]) -> dict[str, float] | None:
    """The first position's ``top_logprobs`` of a completions choice; None when the server gave none."""
    tops = (choice.get("logprobs") or {}).get("top_logprobs") or []
    if not isinstance(tops, list) or not isinstance(tops[0] if tops else {}, dict | None):
        raise Malformed("'top_logprobs' is not a list of objects")
    if not tops or not tops[0]:
        return None
    return {str(k): _number(v) for k, v in tops[0].items()}


def top_next_chat(choice: dict[str, Any]) -> dict[str, float] | None:
    """The first token's top logprobs of a chat choice, the chosen token included; None when absent."""
    content = chat_entries(choice) or []
    if not content or not content[0].get("top_logprobs"):
        return None
    alternatives = content[0]["top_logprobs"]
    if not isinstance(alternatives, list):
        raise Malformed("'top_logprobs' is not a list")
    out: dict[str, float] = {}
    for entry in [*alternatives, content[0]]:
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            raise Malformed("a top logprob without a token")
        out.setdefault(entry["token"], _number(entry.get("logprob")))
    return out


def parse_echo(choice: dict[str, Any], prompt: str | None, url: str) -> Echo:
    lp = choice.get("logprobs") or {}
    tokens, logprobs = lp.get("tokens"), lp.get("token_logprobs")
    echoed = prompt is None or (choice.get("text") or "").startswith(prompt)
    if not tokens or logprobs is None or not echoed:
        raise NoEchoError(f"{url} returned no prompt logprobs: the server lacks echo + logprobs "
                          "(completions with echo=true, logprobs, max_tokens=0), which score() needs")
    offsets = lp.get("text_offset") or [None] * len(tokens)
    tops = lp.get("top_logprobs") or [None] * len(tokens)
    lengths = {len(x) if isinstance(x, list) else -1 for x in (tokens, logprobs, offsets, tops)}
    if len(lengths) != 1 or not all(isinstance(t, str) for t in tokens) \
            or not all(isinstance(t, dict | None) for t in tops) \
            or not (all(isinstance(o, int) for o in offsets) or all(o is None for o in offsets)):
        raise Malformed("echoed tokens, logprobs, offsets and top logprobs do not line up")
    logprobs = [None if x is None else _number(x) for x in logprobs]
    top = [max(_number(v) for v in t.values()) if t else None for t in tops]
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
