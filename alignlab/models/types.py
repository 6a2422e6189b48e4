"""Request and result types of the model layer: the one contract every backend implements.

Three request types (see DESIGN.md):

- ``generate(prompt, params)``        -> text (+ token logprobs when asked)
- ``score(context, continuations)``   -> summed and per-token logprobs of each continuation
- ``next_token(prompt, options)``     -> normalised probabilities over single-token options

A prompt is a plain string or a :class:`Conversation` (messages + optional assistant prefill).
All types are frozen and JSON-serialisable through :func:`to_jsonable`, which the request cache uses as its key.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]
PromptFormat = Literal["chat", "raw_hh"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Conversation:
    """Messages plus optional text forced at the start of the assistant's reply (the papers' prefill)."""

    messages: tuple[Message, ...]
    prefill: str = ""
    format: PromptFormat = "chat"

    @staticmethod
    def of(*turns: tuple[str, str], prefill: str = "", format: PromptFormat = "chat") -> Conversation:
        """``Conversation.of(("user", "Hi"), prefill="Sure")``."""
        return Conversation(tuple(Message(role, text) for role, text in turns), prefill, format)  # type: ignore[arg-type]


Prompt = str | Conversation


@dataclass(frozen=True)
class GenerateParams:
    """Sampling settings. ``temperature == 0`` is greedy decoding."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    n: int = 1
    seed: int = 0
    logprobs: bool = False


@dataclass(frozen=True)
class GenerateRequest:
    prompt: Prompt
    params: GenerateParams = field(default_factory=GenerateParams)


Tokenization = Literal["joint", "separate"]
OMIT_DEFAULT = {"omit_default": True}  # field metadata: left out of to_jsonable (and cache keys) at its default


@dataclass(frozen=True)
class ScoreRequest:
    """Score every continuation after one shared context.

    ``tokenization``: ``"joint"`` tokenises ``context + continuation`` as one string (a token merge at the
    boundary is handled exactly); ``"separate"`` tokenises the continuation alone, without special tokens, and
    appends its ids to the context's, as BIG-bench's HF reference model does.
    """

    context: Prompt
    continuations: tuple[str, ...]
    tokenization: Tokenization = field(default="joint", metadata=OMIT_DEFAULT)

    def __post_init__(self) -> None:
        if self.tokenization not in ("joint", "separate"):
            raise ValueError(f"tokenization must be 'joint' or 'separate', got {self.tokenization!r}")


@dataclass(frozen=True)
class NextTokenRequest:
    """Distribution over options that are each exactly one token after the prompt."""

    prompt: Prompt
    options: tuple[str, ...]


Request = GenerateRequest | ScoreRequest | NextTokenRequest


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: str = "length"  # "stop" | "length" | "eos"
    token_logprobs: tuple[float, ...] | None = None


@dataclass(frozen=True)
class GenerateResult:
    samples: tuple[Generation, ...]
    approximate: bool = False

    @property
    def text(self) -> str:
        return self.samples[0].text


@dataclass(frozen=True)
class ContinuationScore:
    """Log-probability of one continuation.

    ``logprob`` is log p(context + continuation) - log p(context), each string taken with its own
    tokenisation. Without a token merge at the boundary this is the plain sum of the continuation's
    token logprobs; ``boundary_merge`` says when a merge was detected and handled exactly.
    """

    logprob: float
    token_logprobs: tuple[float, ...]
    tokens: tuple[str, ...]
    is_greedy: bool
    boundary_merge: bool = False


@dataclass(frozen=True)
class ScoreResult:
    scores: tuple[ContinuationScore, ...]

    @property
    def logprobs(self) -> list[float]:
        return [s.logprob for s in self.scores]


@dataclass(frozen=True)
class NextTokenResult:
    """``probs`` are normalised over the options; ``logprobs`` are the raw next-token logprobs.

    ``approximate`` marks results estimated by sampling (servers that return no logprobs).
    """

    probs: tuple[float, ...]
    logprobs: tuple[float, ...]
    approximate: bool = False


Result = GenerateResult | ScoreResult | NextTokenResult


class ModelError(RuntimeError):
    """A request the backend cannot serve (missing logprobs, unreachable server, multi-token option...)."""


def to_jsonable(obj: Any) -> Any:
    """Dataclasses -> tagged dicts, tuples -> lists; stable for hashing. A field marked ``OMIT_DEFAULT`` is left out
    at its default value, so adding such a field keeps every earlier request's cache key."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {"__type__": type(obj).__name__}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.metadata.get("omit_default") and value == f.default:
                continue
            out[f.name] = to_jsonable(value)
        return out
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    return obj


_TYPES: dict[str, type] = {}


def from_jsonable(obj: Any) -> Any:
    """Inverse of :func:`to_jsonable` for the types of this module."""
    if isinstance(obj, list):
        return tuple(from_jsonable(x) for x in obj)
    if isinstance(obj, dict) and "__type__" in obj:
        cls = _TYPES[obj["__type__"]]
        return cls(**{k: from_jsonable(v) for k, v in obj.items() if k != "__type__"})
    return obj


def canonical_json(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


for _cls in (Message, Conversation, GenerateParams, GenerateRequest, ScoreRequest, NextTokenRequest, Generation,
             GenerateResult, ContinuationScore, ScoreResult, NextTokenResult):
    _TYPES[_cls.__name__] = _cls
