"""Chain-of-thought sampling, step splitting and answer reading (Lanham et al. 2023 §2.1).

CoTs are sampled after ``Let's think step by step:`` (nucleus p = 0.95, T = 0.8 as in the paper) and split
into steps (sentences) by pysbd, a rule-based splitter that needs no downloaded data (the paper used NLTK's
punkt). Answers are read with one ``next_token`` call over the choice letters after
``The single, most likely answer is (``; integer answers (synthetic addition) are read greedily from
``<answer>...</answer>``. Every model call sends all its requests at once so the backend batches them and shares
prefixes; identical prompts are sent once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from alignlab.models.base import Model
from alignlab.models.types import (
    Conversation,
    GenerateParams,
    GenerateRequest,
    NextTokenRequest,
    PromptFormat,
    canonical_json,
)
from alignlab.reasoning.addition import ANSWER_CLOSE, parse_integer_answer
from alignlab.reasoning.prompts import TURN_STOPS, cot_prompt
from alignlab.reasoning.questions import Question

INTEGER_ANSWER_TOKENS = 16
Progress = Callable[[str, int, int], None]  # (label, done, total), as the CLI's progress bars take
Tick = Callable[[int], None]  # the model layer's progress callback: requests just completed


def phase(progress: Progress | None, label: str, total: int) -> Tick | None:
    """A model-call progress callback that drives the bar ``label`` (None without progress)."""
    if progress is None or total == 0:
        return None
    done = [0]
    progress(label, 0, total)

    def tick(n: int) -> None:
        done[0] += n
        progress(label, done[0], total)

    return tick


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of every generation in a study (CoTs, resamples, rewrites)."""

    samples: int = 5
    max_new_tokens: int = 128
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int = 0

    def params(self, n: int = 1, max_new_tokens: int | None = None, stop: tuple[str, ...] = TURN_STOPS,
               logprobs: bool = False) -> GenerateParams:
        return GenerateParams(max_new_tokens=max_new_tokens or self.max_new_tokens, temperature=self.temperature,
                              top_p=self.top_p, stop=stop, n=n, seed=self.seed, logprobs=logprobs)


@dataclass(frozen=True)
class CoT:
    """One CoT sample: its text (stripped), its steps, and the character offset where each step ends."""

    text: str
    steps: tuple[str, ...]
    ends: tuple[int, ...]
    tokens: int | None = None  # generated tokens, when the backend reports token logprobs

    @classmethod
    def of(cls, text: str, tokens: int | None = None) -> CoT:
        text = text.strip()
        spans = split_steps(text)
        return cls(text, tuple(s for s, _ in spans), tuple(e for _, e in spans), tokens)

    def prefix(self, k: int) -> str:
        """The first ``k`` steps exactly as written (original spacing kept, trailing space dropped)."""
        if not 0 <= k <= len(self.steps):
            raise ValueError(f"k must lie in 0..{len(self.steps)}, got {k}")
        return self.text[: self.ends[k - 1]].rstrip() if k else ""

    def replaced(self, k: int, sentence: str) -> str:
        """The text up to step ``k`` (0-based) with that step replaced by ``sentence``: the kept steps and their
        separators exactly as written, then the new sentence (the prefix a resample continues after)."""
        if not 0 <= k < len(self.steps):
            raise ValueError(f"k must lie in 0..{len(self.steps) - 1}, got {k}")
        start = self.text.index(self.steps[k], self.ends[k - 1] if k else 0)
        return (self.text[:start] + sentence.strip()).strip()


@lru_cache(maxsize=1)
def _segmenter():  # noqa: ANN202 - pysbd has no type hints
    import pysbd

    return pysbd.Segmenter(language="en", clean=False, char_span=True)


def split_steps(text: str) -> list[tuple[str, int]]:
    """Sentences of ``text`` as (sentence without surrounding space, end offset in ``text``)."""
    if not text.strip():
        return []
    out = []
    for span in _segmenter().segment(text):
        sentence = span.sent.strip()
        if sentence:
            out.append((sentence, span.start + len(span.sent.rstrip())))
    return out


def sample_cots(model: Model, questions: Sequence[Question], fmt: PromptFormat, sampling: Sampling,
                progress: Progress | None = None) -> list[list[CoT]]:
    """``sampling.samples`` CoTs per question, in one generate call."""
    params = sampling.params(n=sampling.samples, logprobs=True)
    results = model.generate([GenerateRequest(cot_prompt(q, fmt), params) for q in questions],
                             phase(progress, f"{model.spec}: CoT samples", len(questions)))
    return [[CoT.of(g.text, None if g.token_logprobs is None else len(g.token_logprobs)) for g in r.samples]
            for r in results]


def continue_cots(model: Model, items: Sequence[tuple[Question, str]], fmt: PromptFormat, sampling: Sampling,
                  progress: Progress | None = None) -> list[CoT]:
    """Resample the rest of each CoT after its kept (or modified) ``prefix``, one call for all items."""
    params = sampling.params(n=1)
    results = model.generate([GenerateRequest(cot_prompt(q, fmt, prefix=prefix), params) for q, prefix in items],
                             phase(progress, f"{model.spec}: resampled CoTs", len(items)))
    return [CoT.of(f"{prefix.strip()}{r.text}") for (_, prefix), r in zip(items, results, strict=True)]


@dataclass(frozen=True)
class Answer:
    """A read answer: the letter or integer (None when unreadable) and the letter probabilities."""

    value: str | None
    probs: tuple[float, ...] = ()


def read_answers(model: Model, questions: Sequence[Question], prompts: Sequence[Conversation],
                 progress: Progress | None = None) -> list[Answer]:
    """Answers of ``prompts`` (one per question): letters by next_token, integers by greedy generation.
    Each distinct prompt is sent once; all of a kind go in one call."""
    if len(questions) != len(prompts):
        raise ValueError(f"{len(questions)} questions but {len(prompts)} prompts")
    unique: dict[str, tuple[Question, Conversation]] = {}
    keys = []
    for q, p in zip(questions, prompts, strict=True):
        key = canonical_json((p, q.letters))
        unique.setdefault(key, (q, p))
        keys.append(key)
    letter = [(k, q, p) for k, (q, p) in unique.items() if q.kind == "letter"]
    integer = [(k, q, p) for k, (q, p) in unique.items() if q.kind == "integer"]
    found: dict[str, Answer] = {}
    tick = phase(progress, f"{model.spec}: answers", len(unique))
    for (k, q, _), r in zip(letter, model.next_token([NextTokenRequest(p, q.letters) for _, q, p in letter], tick),
                            strict=True):
        found[k] = Answer(q.letters[int(np.argmax(r.probs))], tuple(r.probs))
    params = GenerateParams(max_new_tokens=INTEGER_ANSWER_TOKENS, temperature=0.0, stop=(ANSWER_CLOSE, *TURN_STOPS))
    for (k, _, _), r in zip(integer, model.generate([GenerateRequest(p, params) for _, _, p in integer], tick),
                            strict=True):
        value = parse_integer_answer(r.text)
        found[k] = Answer(None if value is None else str(value))
    return [found[k] for k in keys]
