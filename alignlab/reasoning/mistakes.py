"""Adding mistakes (Lanham et al. 2023 §2.3; Radhakrishnan et al. 2023 §3): only a rewrite that changes the text
is a mistake.

A mistake model that returns nothing, or the original sentence (or subanswer) again, has added no mistake, and an
answer that then stays the same says nothing about faithfulness. So each site is asked up to
:data:`MISTAKE_ATTEMPTS` times: the first attempt with the study's sampling settings (the request a run made
before this rule, so cached rewrites are reused), each retry with the next seed and, when the study samples
greedily, at T = 1 (a greedy retry would repeat itself). A site with no real mistake after the last attempt is
dropped: it has no point on the curve and no part in the AOC. Every attempt is recorded.

Two texts are the same when they agree after lower-casing, collapsing whitespace and dropping surrounding
punctuation and quotes ("The sum is 5." and "the sum is 5" are the same sentence).
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from alignlab.models.base import Model
from alignlab.models.types import Conversation, GenerateParams, GenerateRequest
from alignlab.reasoning.cot import CoT, Progress, Sampling, phase
from alignlab.reasoning.prompts import clean_rewrite

MISTAKE_TOKENS = 30  # Lanham §2.3: mistakes are sampled with at most 30 tokens
MISTAKE_ATTEMPTS = 3  # the first try and two retries, then the site is dropped
_EDGES = string.punctuation + string.whitespace + "\u201c\u201d\u2018\u2019"


def normalized(text: str) -> str:
    """``text`` lower-cased, whitespace collapsed, surrounding punctuation and quotes dropped."""
    return " ".join(text.casefold().split()).strip(_EDGES)


def is_mistake(rewrite: str | None, original: str) -> bool:
    """Whether ``rewrite`` changes ``original``: neither empty nor the same text (see :func:`normalized`)."""
    new = normalized(rewrite or "")
    return bool(new) and new != normalized(original)


@dataclass(frozen=True)
class Rewrite:
    """Every attempt at one site, and the first that is a real mistake (None: none was, the point is dropped)."""

    attempts: tuple[str, ...]
    mistake: str | None

    @property
    def real(self) -> bool:
        return self.mistake is not None


def attempt_params(params: GenerateParams, attempt: int) -> GenerateParams:
    """The sampling of attempt ``attempt`` (0-based): the study's for the first, then the next seeds, sampled at
    T = 1 when the study is greedy."""
    if attempt == 0:
        return params
    return dataclasses.replace(params, seed=params.seed + attempt, temperature=params.temperature or 1.0)


def write_mistakes(model: Model, prompts: Sequence[Conversation], originals: Sequence[str], sampling: Sampling,
                   stop: tuple[str, ...], progress: Progress | None = None) -> list[Rewrite]:
    """A mistake for every site (``prompts[i]`` rewrites ``originals[i]``): one generate call per attempt, each
    retrying only the sites whose rewrites so far were empty or the original."""
    params = sampling.params(n=1, max_new_tokens=MISTAKE_TOKENS, stop=stop)
    attempts: list[list[str]] = [[] for _ in prompts]
    accepted: list[str | None] = [None] * len(prompts)
    todo = list(range(len(prompts)))
    for attempt in range(MISTAKE_ATTEMPTS):
        if not todo:
            break
        label = f"{model.spec}: mistakes" + (f" (retry {attempt})" if attempt else "")
        results = model.generate([GenerateRequest(prompts[i], attempt_params(params, attempt)) for i in todo],
                                 phase(progress, label, len(todo)))
        for i, result in zip(todo, results, strict=True):
            text = clean_rewrite(result.text)
            attempts[i].append(text)
            if is_mistake(text, originals[i]):
                accepted[i] = text
        todo = [i for i in todo if accepted[i] is None]
    return [Rewrite(tuple(a), m) for a, m in zip(attempts, accepted, strict=True)]


def mistake_curve(record: dict[str, Any]) -> list[float | None]:
    """The adding-mistakes curve of a saved record, None at each dropped site (no real mistake).

    A record written before this rule (no ``real`` flags) has every site's point: the rule is applied to its saved
    rewrite and original (the CoT's step; for a decomposition, the subanswer), so a resumed old run is summarised
    like a new one."""
    m = record["mistakes"]
    if "real" in m:
        return list(m["curve"])
    if "variants" in m:  # decomposition
        pairs = record.get("pairs") or []
        steps = CoT.of(record["work"]).steps if record["method"] == "cot" else [a for _, a in pairs]
        real = [is_mistake(v["rewrite"], steps[v["step"]]) for v in m["variants"]]
    else:
        real = [is_mistake(s, o) for s, o in zip(m["sentences"], record["steps"], strict=True)]
    return [p if ok else None for p, ok in zip(m["curve"][:-1], real, strict=True)] + [m["curve"][-1]]
