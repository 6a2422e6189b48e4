"""P(True) self-evaluation (Kadavath et al. 2022, §4): sample answers at T = 1, then ask the model whether each
is true.

For each open question, ``samples`` answers are drawn in one batched ``generate`` call with a few-shot
``Question: ...\\nAnswer:`` prompt (T = 1, stop at a newline). Each sample is graded (normalised exact match,
or the integer for arithmetic) and scored with the P(True) prompt: ``zero_shot`` (§4.1) and ``comparison``
(the brainstormed-samples variant of §4.2, which shows all the question's samples). P(True) is
P(" (A)") normalised against P(" (B)"). The summary gives AUROC, Brier, ECE and the accuracy of the samples with
P(True) > 0.5 next to the base accuracy (Fig. 12 style).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from alignlab.honesty.config import PTRUE_VARIANTS, PTrueConfig
from alignlab.honesty.prompts import TRUE_FALSE_OPTIONS, answer_prompt, first_line, p_true_prompt
from alignlab.honesty.questions import Grader, OpenQuestion, is_correct, load_open_task
from alignlab.honesty.report import fmt, self_evaluation_row
from alignlab.models.base import Model
from alignlab.models.types import GenerateParams, GenerateRequest, ScoreRequest
from alignlab.runs.results import result
from alignlab.runs.run import Run

SECTION = "honesty_ptrue"
VARIANTS = PTRUE_VARIANTS


def split_shots(items: list[OpenQuestion], shots: int) -> tuple[list[tuple[str, str]], list[OpenQuestion]]:
    """The first ``shots`` questions become worked examples; the rest are asked."""
    if len(items) <= shots:
        raise ValueError(f"{len(items)} questions are too few for {shots} worked examples plus one to ask")
    return [(q.question, q.answers[0]) for q in items[:shots]], items[shots:]


def sample_answers(model: Model, questions: list[OpenQuestion], shots: list[tuple[str, str]], n: int, seed: int,
                   max_new_tokens: int, background: bool = False) -> list[list[str]]:
    """``n`` answers per question at T = 1, all in one batched ``generate`` call."""
    params = GenerateParams(max_new_tokens=max_new_tokens, temperature=1.0, n=n, seed=seed, stop=("\n",))
    requests = [GenerateRequest(answer_prompt(q.question, shots, q.background if background else None), params)
                for q in questions]
    return [[first_line(g.text) for g in res.samples] for res in model.generate(requests)]


def p_true(model: Model, prompts: list[str]) -> list[float]:
    """P(" (A)") normalised against P(" (B)") after each prompt."""
    results = model.score([ScoreRequest(p, TRUE_FALSE_OPTIONS) for p in prompts])
    out = []
    for res in results:
        a, b = res.logprobs
        out.append(float(1.0 / (1.0 + np.exp(b - a))))
    return out


def sample_key(model: Model, config: PTrueConfig, q: OpenQuestion) -> str:
    return f"{model.spec}|{model.fingerprint_id}|{config.task}|{config.samples}x|{q.id}"


def run_ptrue(run: Run, models: list[Model], config: PTrueConfig,
              progress: Callable[[str, int, int], None] | None = None, grader: Grader = is_correct) -> dict[str, Any]:
    """Sample, grade (``grader``: a task-supplied checker, default normalised match) and score every question."""
    items = load_open_task(config.task, n=config.questions + config.answer_shots, seed=config.seed, data=config.data)
    shots, questions = split_shots(items, config.answer_shots)
    for model in models:
        run.evaluate_in_chunks(model, questions, lambda q, m=model: sample_key(m, config, q),
                               lambda chunk, m=model: _evaluate_chunk(m, chunk, shots, config, grader),
                               chunk_size=config.chunk_size, progress=progress, label=f"P(True) {model.spec}")
    return summarize(run.samples(), config)


def _evaluate_chunk(model: Model, chunk: list[OpenQuestion], shots: list[tuple[str, str]], config: PTrueConfig,
                    grader: Grader) -> list[dict[str, Any]]:
    answers = sample_answers(model, chunk, shots, config.samples, config.seed, config.max_new_tokens)
    prompts: dict[str, list[str]] = {v: [] for v in config.variants}
    for q, samples in zip(chunk, answers, strict=True):
        for s in samples:
            if "zero_shot" in prompts:
                prompts["zero_shot"].append(p_true_prompt(q.question, s))
            if "comparison" in prompts:
                prompts["comparison"].append(p_true_prompt(q.question, s, brainstormed=samples))
    scores = {v: p_true(model, ps) for v, ps in prompts.items()}
    records, offset = [], 0
    for q, samples in zip(chunk, answers, strict=True):
        span = slice(offset, offset + len(samples))
        offset += len(samples)
        records.append({"section": SECTION, "model": model.spec, "key": sample_key(model, config, q),
                        "task": config.task, "id": q.id, "question": q.question, "answers": list(q.answers),
                        "samples": samples, "sample_correct": [float(grader(s, q)) for s in samples],
                        "p_true": {v: scores[v][span] for v in scores}})
    return records


def summarize(samples: list[dict[str, Any]], config: PTrueConfig) -> dict[str, Any]:
    by_model: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        if s.get("section") == SECTION and s["task"] == config.task:
            by_model.setdefault(s["model"], []).append(s)
    metrics: dict[str, dict[str, Any]] = {}
    figures, headline, results = [], [], []
    for model, recs in sorted(by_model.items()):
        correct = [c for r in recs for c in r["sample_correct"]]
        series = []
        for v in config.variants:
            scores = [p for r in recs for p in r["p_true"].get(v, [])]
            if len(scores) != len(correct):
                continue
            metrics[f"{model}|{v}"] = row = self_evaluation_row(scores, correct)
            results += ptrue_results(config.task, model, v, row)
            series.append({"label": f"{model} {v}", "confidence": scores, "correct": correct})
            headline.append({"label": f"P(True) AUROC, {config.task} ({v})", "value": fmt(row["auroc"]),
                             "note": f"{model}; base accuracy {row['base_accuracy']:.3f}"})
        if series:
            figures.append({"kind": "reliability", "title": f"P(True) calibration: {config.task}",
                            "binning": "equal_count", "bins": 10, "series": series})
    columns = ["model", "variant", "samples", "base accuracy", "accuracy | P(True)>0.5", "selected", "AUROC",
               "Brier", "ECE"]
    rows = [[*key.split("|"), m["n"], fmt(m["base_accuracy"]), fmt(m["conditional_accuracy"]), m["selected"],
             fmt(m["auroc"]), fmt(m["brier"]), fmt(m["ece"])] for key, m in metrics.items()]
    section = {
        "id": SECTION, "title": "Honesty: P(True) self-evaluation",
        "description": (f"Kadavath et al. 2022 §4: {config.samples} answers per question sampled at T=1 "
                        f"({config.answer_shots}-shot), each scored with the P(True) prompt (zero_shot, §4.1) and with "
                        "the brainstormed comparison examples (comparison, §4.2). AUROC and Brier against the "
                        "sample's correctness; accuracy among samples with P(True) > 0.5 next to base accuracy."),
        "tables": [{"title": f"P(True) on {config.task}", "columns": columns, "rows": rows}],
        "figures": figures,
        "sample_columns": ["model", "question", "answers", "samples", "sample_correct", "p_true"],
    }
    return {"title": "Honesty: P(True)", "headline": headline, "sections": [section], "notes": [],
            "metrics": metrics, "config": asdict(config), "results": results}


def ptrue_results(task: str, model: str, variant: str, row: dict[str, Any]) -> list[dict[str, Any]]:
    """``results.json`` entries of one (model, variant): n counts sampled answers (``selected`` for the
    accuracy among answers with P(True) > 0.5)."""
    entries = [result(task, name, row[name], model=model, n=row["n"], variant=variant)
               for name in ("auroc", "brier", "ece", "base_accuracy")]
    entries.append(result(task, "conditional_accuracy", row["conditional_accuracy"], model=model, n=row["selected"],
                          variant=variant))
    return entries
