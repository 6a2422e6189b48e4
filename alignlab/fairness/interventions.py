"""Asking a batch of items under one intervention, and the chunked, resumable loop every fairness study shares.

Q and Q+IF are one ``score`` call: the human turn, the assistant prefill, then each answer option scored as a
continuation and renormalised over the options. Q+IF+CoT (Ganguli et al. 2023 §3) first samples the assistant's
reasoning after the paper's opening words, for the whole chunk in one batched ``generate`` call, then adds the
paper's second human turn and scores the options after the final prefill, again in one ``score`` call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from alignlab.metrics.behaviors import normalized_probs
from alignlab.models.base import Model
from alignlab.models.render import render_raw_hh
from alignlab.models.types import Conversation, GenerateParams, GenerateRequest, PromptFormat, ScoreRequest
from alignlab.runs.run import Run

PROMPT_FORMATS = ("raw_hh", "chat")
RAW_HH_STOP = ("\n\nHuman:", "\n\nAssistant:")  # a raw_hh sample ends where the model starts a new turn

Item = TypeVar("Item")
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Dialogue:
    """How one item is asked under one intervention.

    ``answer_prefill`` is the assistant's text right before the scored ``options``; with ``cot_prefill`` set the
    dialogue is Human: ``human`` / Assistant: ``cot_prefill`` + sample / Human: ``followup`` / Assistant:
    ``answer_prefill``, else Human: ``human`` / Assistant: ``answer_prefill``.
    """

    human: str
    answer_prefill: str
    options: tuple[str, ...]
    cot_prefill: str | None = None
    followup: str | None = None

    def __post_init__(self) -> None:
        if (self.cot_prefill is None) != (self.followup is None):
            raise ValueError("a chain-of-thought dialogue needs both cot_prefill and followup")


@dataclass(frozen=True)
class CotSettings:
    """Sampling of the Q+IF+CoT reasoning (the paper samples up to 256 tokens)."""

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"CoT max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"CoT temperature must be non-negative, got {self.temperature}")


@dataclass(frozen=True)
class Answer:
    """The options' renormalised probabilities, their raw log-probabilities, the reasoning (CoT only) and the
    text the model was scored on (where the backend can render it)."""

    probs: tuple[float, ...]
    logprobs: tuple[float, ...]
    reasoning: str | None
    prompt: str | None


def cot_conversation(d: Dialogue, prompt_format: PromptFormat) -> Conversation:
    """The first turn of a CoT dialogue: the question, then the assistant's opening words to continue."""
    return Conversation.of(("user", d.human), prefill=d.cot_prefill or "", format=prompt_format)


def answer_conversation(d: Dialogue, reasoning: str | None, prompt_format: PromptFormat) -> Conversation:
    """The conversation after which the options are scored."""
    if d.cot_prefill is None:
        return Conversation.of(("user", d.human), prefill=d.answer_prefill, format=prompt_format)
    said = (d.cot_prefill + (reasoning or "")).rstrip()
    return Conversation.of(("user", d.human), ("assistant", said), ("user", d.followup or ""),
                           prefill=d.answer_prefill, format=prompt_format)


def clean_sample(text: str) -> str:
    """A sample cut before any new turn it started (the backend may keep the stop string)."""
    cut = min((i for s in RAW_HH_STOP if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def ask(model: Model, dialogues: Sequence[Dialogue], prompt_format: PromptFormat, cot: CotSettings) -> list[Answer]:
    """Every dialogue's answer: one batched ``generate`` for all CoT turns, then one batched ``score``."""
    reasoning: dict[int, str] = {}
    cot_index = [i for i, d in enumerate(dialogues) if d.cot_prefill is not None]
    if cot_index:
        params = GenerateParams(max_new_tokens=cot.max_new_tokens, temperature=cot.temperature, top_p=cot.top_p,
                                stop=RAW_HH_STOP if prompt_format == "raw_hh" else (), seed=cot.seed)
        results = model.generate([GenerateRequest(cot_conversation(dialogues[i], prompt_format), params)
                                  for i in cot_index])
        reasoning = {i: clean_sample(r.text) for i, r in zip(cot_index, results, strict=True)}
    conversations = [answer_conversation(d, reasoning.get(i), prompt_format) for i, d in enumerate(dialogues)]
    scored = model.score([ScoreRequest(c, d.options) for c, d in zip(conversations, dialogues, strict=True)])
    return [Answer(tuple(normalized_probs(s.logprobs).tolist()), tuple(s.logprobs), reasoning.get(i),
                   prompt_text(model, c)) for i, (c, s) in enumerate(zip(conversations, scored, strict=True))]


def prompt_text(model: Model, conv: Conversation) -> str | None:
    """The exact text the model saw, where the backend can say (chat templates need its tokenizer)."""
    render = getattr(model.backend, "render", None)
    if callable(render):
        return render(conv)
    return render_raw_hh(conv) if conv.format == "raw_hh" else None


def sample_key(model: Model, intervention: str, prompt_format: str, item_id: str) -> str:
    return f"{model.spec}|{model.fingerprint_id}|{intervention}|{prompt_format}|{item_id}"


def run_items(run: Run, models: Sequence[Model], items: dict[str, Sequence[Item]], *,
              item_id: Callable[[Item], str], dialogue: Callable[[Item, str], Dialogue],
              record: Callable[[Item, Answer], dict[str, Any]], section: str, prompt_format: PromptFormat,
              cot: CotSettings, chunk_size: int, progress: Progress | None = None) -> None:
    """Ask every item not yet in ``run`` under each intervention (``items``: intervention -> its items; CoT costs
    far more, so callers may give it fewer), one chunk at a time, appending each chunk's records."""
    for model in models:
        for intervention, chosen in items.items():
            def evaluate(chunk: list[Item], m: Model = model, iv: str = intervention) -> list[dict[str, Any]]:
                answers = ask(m, [dialogue(it, iv) for it in chunk], prompt_format, cot)
                return [{"section": section, "model": m.spec, "key": sample_key(m, iv, prompt_format, item_id(it)),
                         "intervention": iv, "prompt_format": prompt_format, "id": item_id(it), **record(it, a),
                         "probs": list(a.probs), "logprobs": list(a.logprobs), "choice": int(np.argmax(a.probs)),
                         "reasoning": a.reasoning, "prompt": a.prompt} for it, a in zip(chunk, answers, strict=True)]

            run.evaluate_in_chunks(
                model, chosen, lambda it, m=model, iv=intervention: sample_key(m, iv, prompt_format, item_id(it)),
                evaluate, chunk_size=chunk_size, progress=progress, label=f"{section} {model.spec} {intervention}")
