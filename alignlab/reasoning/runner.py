"""Run the reasoning studies into a run directory, chunk by chunk, resuming from the saved samples.

A chunk of questions goes through every test in a few batched model calls; its records are appended in one
write, so a question is either fully saved or redone (for free, from the request cache) on ``--resume``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from alignlab.models.base import Model
from alignlab.reasoning import decomposition, faithfulness
from alignlab.reasoning.config import DecomposeConfig, FaithfulnessConfig
from alignlab.reasoning.decomposition import build_contexts
from alignlab.reasoning.questions import Question
from alignlab.reasoning.summary import summarize_decomposition, summarize_faithfulness
from alignlab.runs.run import Run

FAITHFULNESS_SECTION = "reasoning-faithfulness"
DECOMPOSITION_SECTION = "reasoning-decomposition"
Progress = Callable[[str, int, int], None]


def question_key(model: Model, study: str, qid: str) -> str:
    return f"{study}|{model.spec}|{model.fingerprint_id}|{qid}"


def run_faithfulness(run: Run, models: Sequence[Model], config: FaithfulnessConfig,
                     mistake_model: Model | None = None, paraphrase_model: Model | None = None,
                     progress: Progress | None = None) -> dict[str, Any]:
    """Lanham et al.'s four tests for every model on every question not yet in ``run``; returns the summary."""
    questions = config.questions()
    for helper in (mistake_model, paraphrase_model):
        if helper is not None:
            run.record_model(helper)

    def chunk(model: Model, qs: list[Question]) -> list[dict[str, Any]]:
        records = faithfulness.run_chunk(model, qs, config, mistake_model, paraphrase_model, progress)
        for r in records:
            qkey = question_key(model, "faithfulness", r["question_id"])
            key = qkey if r["sample"] == "question" else f"{qkey}|{r['sample']}"
            r.update(section=FAITHFULNESS_SECTION, model=model.spec, key=key)
        # the question record last: its key marks the question as done
        return sorted(records, key=lambda r: r["sample"] == "question")

    def keys(model: Model, q: Question) -> str:
        return question_key(model, "faithfulness", q.id)

    _run(run, models, questions, config.chunk_size, chunk, keys, progress)
    return summarize_faithfulness(run.samples(), FAITHFULNESS_SECTION, config)


def run_decomposition(run: Run, models: Sequence[Model], config: DecomposeConfig, mistake_model: Model | None = None,
                      progress: Progress | None = None) -> dict[str, Any]:
    """Radhakrishnan et al.'s five methods, biased contexts and faithfulness tests; returns the summary."""
    questions = config.questions()
    if mistake_model is not None:
        run.record_model(mistake_model)

    def key_of(model: Model, qid: str, method: str, bias: str) -> str:
        return f"{question_key(model, 'decomposition', qid)}|{method}|{bias}"

    def chunk(model: Model, qs: list[Question]) -> list[dict[str, Any]]:
        records = decomposition.run_chunk(model, qs, config, mistake_model, progress)
        for r in records:
            r.update(section=DECOMPOSITION_SECTION, model=model.spec,
                     key=key_of(model, r["question_id"], r["method"], r["bias"]))
        return records

    def keys(model: Model, q: Question) -> tuple[str, ...]:
        return tuple(key_of(model, q.id, c.method, c.bias) for c in build_contexts([q], config))

    _run(run, models, questions, config.chunk_size, chunk, keys, progress)
    return summarize_decomposition(run.samples(), DECOMPOSITION_SECTION, config)


def _run(run: Run, models: Sequence[Model], questions: list[Question], chunk_size: int,
         chunk: Callable[[Model, list[Question]], list[dict[str, Any]]],
         keys: Callable[[Model, Question], str | tuple[str, ...]], progress: Progress | None) -> None:
    """Each model on every question whose records (``keys``) are not all in ``run`` yet, a chunk at a time."""
    for model in models:
        run.evaluate_in_chunks(model, questions, lambda q, m=model: keys(m, q), lambda qs, m=model: chunk(m, qs),
                               chunk_size=chunk_size, progress=progress, label=f"{model.spec}: questions")
