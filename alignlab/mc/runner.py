"""Scoring a multiple-choice benchmark: every choice as a continuation, accuracy with bootstrap CIs per group."""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

from alignlab.mc.benchmark import Benchmark, Question
from alignlab.mc.config import MCConfig
from alignlab.metrics.stats import bootstrap_ci
from alignlab.models.base import Model
from alignlab.models.types import ScoreRequest
from alignlab.runs.results import result
from alignlab.runs.run import Run

ALL = "all"


def select(benchmark: Benchmark, config: MCConfig) -> list[Question]:
    """The questions, or a seeded ``limit`` of them in their original order; ids must be unique."""
    questions = list(benchmark.questions(config))
    seen: set[str] = set()
    for q in questions:
        if q.id in seen:
            raise ValueError(f"{benchmark.name}: duplicate question id {q.id!r}")
        seen.add(q.id)
    if not questions:
        raise ValueError(f"{benchmark.name}: no questions")
    if config.limit is None or config.limit >= len(questions):
        return questions
    rng = np.random.default_rng([config.seed, zlib.crc32(benchmark.name.encode())])
    return [questions[i] for i in np.sort(rng.choice(len(questions), config.limit, replace=False))]


def evaluate(benchmark: Benchmark, run: Run, model: Model, config: MCConfig,
             progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Score every selected question on ``model`` into ``run`` (skipping those done); returns the summary."""
    questions = select(benchmark, config)

    def score(chunk: list[Question]) -> list[dict[str, Any]]:
        scored = model.score([ScoreRequest(q.prompt, q.choices) for q in chunk])
        return [record(benchmark, model, q, s.logprobs, [len(c.token_logprobs) for c in s.scores], config)
                for q, s in zip(chunk, scored, strict=True)]

    run.evaluate_in_chunks(model, questions, lambda q: f"{benchmark.name}|{model.spec}|{q.id}", score,
                           chunk_size=config.chunk_size, progress=progress, label=f"{benchmark.name}: {model.spec}")
    return summarize(benchmark, [s for s in run.samples() if s.get("section") == benchmark.name], config)


def record(benchmark: Benchmark, model: Model, q: Question, logprobs: tuple[float, ...], lengths: list[int],
           config: MCConfig) -> dict[str, Any]:
    """One sample: the choices' log-probabilities, the chosen index (first on a tie) and whether it is right."""
    scores = [lp / max(n, 1) for lp, n in zip(logprobs, lengths, strict=True)] if config.scoring == "mean" \
        else list(logprobs)
    choice = int(np.argmax(scores))
    top = max(scores)
    probs = [math.exp(s - top) for s in scores]
    return {"key": f"{benchmark.name}|{model.spec}|{q.id}", "section": benchmark.name, "model": model.spec,
            "id": q.id, "group": q.group, "choices": list(q.choices), "logprobs": list(logprobs),
            "tokens": lengths, "probs": [p / sum(probs) for p in probs], "prediction": choice, "answer": q.answer,
            "correct": choice == q.answer}


def summarize(benchmark: Benchmark, samples: list[dict[str, Any]], config: MCConfig) -> dict[str, Any]:
    """Accuracy per model and group with a seeded bootstrap 95% CI over questions."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for s in samples:
        groups[(s["model"], ALL)].append(float(s["correct"]))
        if s["group"]:
            groups[(s["model"], s["group"])].append(float(s["correct"]))
    results, rows = [], []
    for (model, group), correct in groups.items():
        ci = bootstrap_ci(correct, seed=config.seed)
        results.append(result(f"{benchmark.name}/{group}", "accuracy", float(np.mean(correct)), model=model,
                              n=len(correct), ci=ci, scoring=config.scoring))
        rows.append([model, group, len(correct), round(float(np.mean(correct)), 4), round(ci[0], 4), round(ci[1], 4)])
    chance = float(np.mean([1 / len(s["choices"]) for s in samples])) if samples else None
    section = {"id": benchmark.name, "title": benchmark.name, "description": benchmark.reproduces,
               "tables": [{"title": f"Accuracy ({config.scoring} log-probability scoring)",
                           "columns": ["model", "group", "n", "accuracy", "95% CI low", "95% CI high"], "rows": rows}],
               "sample_columns": ["model", "id", "group", "choices", "probs", "prediction", "answer", "correct"]}
    headline = [{"label": f"{benchmark.name} accuracy", "value": r["value"], "ci": r["ci"], "note": r["model"]}
                for r in results if r["task"].endswith(f"/{ALL}")]
    notes = [f"chance accuracy: {chance:.3f}"] if chance is not None else []
    return {"title": benchmark.name, "headline": headline, "sections": [section], "notes": notes,
            "results": results, "config": config.as_dict()}
