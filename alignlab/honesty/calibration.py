"""Multiple-choice calibration (Kadavath et al. 2022, §3): lettered options, ``Answer:`` then ``" (X)"``.

Variants (each a value of ``--variant``): ``standard`` (the Fig. 4 format, 0- or k-shot), ``none_of_the_above``
(the last option replaced by "none of the above", §3.2), ``true_false`` (each question becomes two P(True)
items, its correct option and one seeded wrong option, §3.3). Every item is scored once; the summary reports
ECE (10 equal-count bins, top prediction), RMS calibration error, Brier, AUROC and accuracy at T = 1, at a fixed
T (the paper's 2.5 by default, §3.1) and at a T fitted on a held-out split, all on the evaluation split. A
``true_false`` group also reports P(True) (P(" (A)") over the two options) calibrated against whether the proposal
is true, next to the top-prediction rows.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alignlab.bigbench.tasks import find_task, load_task
from alignlab.data.errors import nothing_usable
from alignlab.data.multiple_choice import load_mc_jsonl
from alignlab.honesty.config import CALIBRATION_VARIANTS, CalibrationConfig
from alignlab.honesty.prompts import TRUE_FALSE_OPTIONS, letter_options, mc_prompt, p_true_prompt
from alignlab.honesty.report import calibration_row, fmt, p_true_row
from alignlab.metrics.honesty import apply_temperature, fit_temperature
from alignlab.models.base import Model
from alignlab.models.types import ScoreRequest
from alignlab.runs.results import result
from alignlab.runs.run import Run

SECTION = "honesty_calibration"
TOP = "top prediction"  # the calibration rows' measures: the top prediction's probability for its correctness,
P_TRUE = "P(True)"  # and (true_false only) P(True) for the proposal being true
VARIANTS = CALIBRATION_VARIANTS
NONE_OF_THE_ABOVE = "none of the above"


@dataclass(frozen=True)
class MCQuestion:
    """A multiple-choice question; ``correct`` holds every index of a best choice."""

    task: str
    id: str
    question: str
    choices: tuple[str, ...]
    correct: frozenset[int]


# -- loading ------------------------------------------------------------------------------------------------
def load_questions(task: str, data: str | None, errors: list[str], seed: int = 0) -> list[MCQuestion]:
    """A BIG-bench multiple-choice task (name or path) or an MMLU/ARC/TruthfulQA-style MC JSONL file.

    BIG-bench files often list the correct choice first, so their choices are shuffled (seeded per question, as
    BIG-bench shuffles appended choices); JSONL choices keep their order (options like "all of the above").
    """
    if task.endswith(".jsonl") and Path(task).is_file():
        items, bad = load_mc_jsonl(task, on_error="skip")
        if not items:
            raise nothing_usable(bad, path=task)
        errors.extend(bad)
        name = Path(task).stem
        return [MCQuestion(name, it.id, it.question, it.choices, frozenset({it.answer})) for it in items]
    parsed = load_task(find_task(task, data=data))
    errors.extend(parsed.errors)
    questions = []
    for leaf in parsed.leaves():
        for ex in leaf.examples:
            scores = ex.target_scores
            if not scores or len(scores) < 2:
                continue  # generative example: nothing to calibrate
            if len(scores) > 26:
                errors.append(f"{leaf.name} example {ex.index}: {len(scores)} choices exceed 26 letters; skipped")
                continue
            questions.append(shuffled(leaf.name, ex.id or str(ex.index), ex.input, scores, seed))
    if not questions and parsed.errors:
        raise nothing_usable(parsed.errors, path=parsed.path, what="example")
    if not questions:
        raise ValueError(f"{task}: no multiple-choice examples to calibrate")
    return questions


def shuffled(task: str, qid: str, question: str, scores: dict[str, float], seed: int) -> MCQuestion:
    """The choices in a seeded order (stable per question); ``correct`` holds every best-scoring choice."""
    order = list(scores)
    random.Random(f"{seed}:{task}:{qid}").shuffle(order)
    best = max(scores.values())
    return MCQuestion(task, qid, question, tuple(order), frozenset(i for i, c in enumerate(order) if scores[c] == best))


def none_of_the_above(q: MCQuestion) -> MCQuestion:
    """Replace the last option; it becomes correct only when it replaced the only correct option (§3.2)."""
    last = len(q.choices) - 1
    correct = q.correct - {last} or frozenset({last})
    return MCQuestion(q.task, q.id, q.question, (*q.choices[:-1], NONE_OF_THE_ABOVE), correct)


def split_of(key: str, seed: int, fit_fraction: float) -> str:
    """A stable seeded fit/eval assignment of one item (independent of order and of the other items)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return "fit" if int.from_bytes(digest[:8], "little") / 2 ** 64 < fit_fraction else "eval"


# -- items --------------------------------------------------------------------------------------------------
def build_items(questions: list[MCQuestion], variant: str, shots: int, seed: int) -> list[dict[str, Any]]:
    """Prompt, continuations and answer of every item of one variant (before scoring)."""
    rng = random.Random(seed)
    items = []
    for i, q in enumerate(questions):
        if variant == "none_of_the_above":
            q = none_of_the_above(q)
        shot_qs = _shots(questions, i, shots, rng)
        if variant == "true_false":
            wrong = [c for j, c in enumerate(q.choices) if j not in q.correct]
            proposals = [(q.choices[min(q.correct)], True), (rng.choice(wrong), False)] if wrong else []
            block = "".join(p_true_prompt(s.question, s.choices[min(s.correct)]) + " (A)\n\n" for s in shot_qs)
            for n, (proposed, truth) in enumerate(proposals):
                items.append({"task": q.task, "id": f"{q.id}:{'true' if truth else 'false'}", "question": q.question,
                              "proposed": proposed, "context": p_true_prompt(q.question, proposed, shots=block),
                              "options": list(TRUE_FALSE_OPTIONS), "answers": [0 if truth else 1], "part": n})
        else:
            shot_tuples = [(s.question, s.choices, min(s.correct)) for s in shot_qs]
            items.append({"task": q.task, "id": q.id, "question": q.question, "choices": list(q.choices),
                          "context": mc_prompt(q.question, q.choices, shot_tuples),
                          "options": list(letter_options(len(q.choices))), "answers": sorted(q.correct)})
    return items


def _shots(questions: list[MCQuestion], index: int, shots: int, rng: random.Random) -> list[MCQuestion]:
    """``shots`` seeded examples from the same task, never the query itself (§3.1)."""
    if shots == 0:
        return []
    pool = [q for j, q in enumerate(questions) if j != index and q.task == questions[index].task]
    if len(pool) < shots:
        raise ValueError(f"{questions[index].task}: {len(pool) + 1} questions are too few for {shots}-shot prompts")
    return rng.sample(pool, shots)


def sample_key(model: Model, item: dict[str, Any], variant: str, shots: int) -> str:
    return f"{model.spec}|{model.fingerprint_id}|{item['task']}|{variant}|{shots}-shot|{item['id']}"


# -- run ----------------------------------------------------------------------------------------------------
def run_calibration(run: Run, models: list[Model], config: CalibrationConfig,
                    progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Score every item not yet in ``run``; returns the summary."""
    items: list[tuple[str, dict[str, Any]]] = []
    for task in config.tasks:
        questions = load_questions(task, config.data, config.errors, config.seed)
        if config.max_items is not None and config.max_items < len(questions):
            questions = random.Random(config.seed).sample(questions, config.max_items)
        for variant in config.variants:
            items += [(variant, it) for it in build_items(questions, variant, config.shots, config.seed)]
    for model in models:
        run.evaluate_in_chunks(model, items, lambda vi, m=model: sample_key(m, vi[1], vi[0], config.shots),
                               lambda chunk, m=model: _score_chunk(m, chunk, config), chunk_size=config.chunk_size,
                               progress=progress, label=f"calibration {model.spec}")
    return summarize(run.samples(), config)


def _score_chunk(model: Model, chunk: list[tuple[str, dict[str, Any]]], config: CalibrationConfig
                 ) -> list[dict[str, Any]]:
    results = model.score([ScoreRequest(it["context"], tuple(it["options"])) for _, it in chunk])
    return [_record(model, v, it, res.logprobs, config) for (v, it), res in zip(chunk, results, strict=True)]


def _record(model: Model, variant: str, item: dict[str, Any], logprobs: list[float], config: CalibrationConfig
            ) -> dict[str, Any]:
    key = sample_key(model, item, variant, config.shots)
    probs = apply_temperature([logprobs], 1.0)[0]
    top = int(np.argmax(probs))
    return {"section": SECTION, "model": model.spec, "key": key, **item, "variant": variant, "shots": config.shots,
            "split": split_of(key.split("|", 2)[2], config.seed, config.fit_fraction), "option_logprobs": logprobs,
            "probs": probs, "prediction": item["options"][top].strip(), "correct": float(top in item["answers"])}


# -- summary ------------------------------------------------------------------------------------------------
def group_metrics(records: list[dict[str, Any]], config: CalibrationConfig) -> dict[str, dict[str, Any]]:
    """Metrics of one (model, task, variant) group at T = 1, at the fixed T and at the fitted T.

    Each row is the top prediction's calibration (``measure`` "top prediction"); a ``true_false`` group also has,
    per temperature, a row for P(True) against whether the proposal is true (keyed ``"P(True), <setting>"``).
    """
    fit = [r for r in records if r["split"] == "fit"]
    evals = [r for r in records if r["split"] == "eval"] or records
    fitted = fit_temperature([r["option_logprobs"] for r in fit], [r["answers"][0] for r in fit]) if fit else None
    out = {}
    for label, t in (("T=1", 1.0), (f"T={config.fixed_temperature:g} (fixed)", config.fixed_temperature),
                     ("T fitted", fitted)):
        if t is None:
            continue
        probs = apply_temperature([r["option_logprobs"] for r in evals], t)
        top = [int(np.argmax(p)) for p in probs]
        out[label] = {"temperature": t, "setting": label, "measure": TOP,
                      **calibration_row([p[k] for p, k in zip(probs, top, strict=True)],
                                        [float(k in r["answers"]) for k, r in zip(top, evals, strict=True)])}
        if records[0]["variant"] == "true_false":
            out[f"{P_TRUE}, {label}"] = {"temperature": t, "setting": label, "measure": P_TRUE,
                                        **p_true_row([p[0] for p in probs], [proposal_is_true(r) for r in evals])}
    return out


def proposal_is_true(record: dict[str, Any]) -> float:
    """1.0 when a true/false item proposes a correct option (its right answer is " (A)", True), else 0.0."""
    return float(0 in record["answers"])


def summarize(samples: list[dict[str, Any]], config: CalibrationConfig) -> dict[str, Any]:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for s in samples:
        if s.get("section") == SECTION and s["shots"] == config.shots and s["variant"] in config.variants:
            groups.setdefault((s["model"], s["task"], s["variant"]), []).append(s)
    metrics = {key: group_metrics(recs, config) for key, recs in sorted(groups.items())}
    columns = ["model", "task", "variant", "setting", "measure", "T", "n", "accuracy", "ECE", "RMS", "Brier",
               "AUROC"]
    rows = [[m, t, v, row["setting"], row["measure"], fmt(row["temperature"]), row["n"], fmt(row["accuracy"]),
             fmt(row["ece"]), fmt(row["rms"]), fmt(row["brier"]), fmt(row["auroc"])]
            for (m, t, v), by_t in metrics.items() for row in by_t.values()]
    figures = []
    for (m, t, v), recs in sorted(groups.items()):
        evals = [r for r in recs if r["split"] == "eval"] or recs
        series = [{"label": f"{m} top prediction", "confidence": [max(r["probs"]) for r in evals],
                   "correct": [r["correct"] for r in evals]}]
        if v == "true_false":
            series.append({"label": f"{m} P(True) vs proposal true", "confidence": [r["probs"][0] for r in evals],
                           "correct": [proposal_is_true(r) for r in evals]})
        else:
            series.append({"label": f"{m} all options", "confidence": [p for r in evals for p in r["probs"]],
                           "correct": [float(k in r["answers"]) for r in evals for k in range(len(r["probs"]))]})
        figures.append({"kind": "reliability", "title": f"Calibration: {t} ({v}, {config.shots}-shot, T=1)",
                        "binning": "equal_count", "bins": 10, "series": series})
    section = {
        "id": SECTION, "title": "Honesty: multiple-choice calibration",
        "description": ("Kadavath et al. 2022 §3: lettered options scored as ' (A)', ' (B)', ... after 'Answer:'. "
                        "ECE uses 10 equal-count bins on the top prediction (App. A); Brier and AUROC are on the top "
                        "prediction's probability; rows at T=1, at a fixed T (paper: 2.5) and at a T fitted on the "
                        f"held-out split ({config.fit_fraction:.0%} of items); metrics on the evaluation split. "
                        "True/False items also have P(True) rows: P(' (A)') against whether the proposal is true "
                        "(accuracy: P(True) >= 0.5 agrees with it). Tied confidences share a bin."),
        "tables": [{"title": f"Calibration ({config.shots}-shot)", "columns": columns, "rows": rows}],
        "figures": figures,
        "sample_columns": ["model", "task", "variant", "split", "context", "options", "probs", "prediction",
                           "correct"],
    }
    headline = [{"label": f"{t} {'P(True) ' if row['measure'] == P_TRUE else ''}ECE ({v})", "value": fmt(row["ece"]),
                 "note": m} for (m, t, v), by_t in metrics.items() for row in by_t.values() if row["setting"] == "T=1"]
    return {"title": "Honesty: calibration", "headline": headline, "sections": [section],
            "notes": [f"skipped: {e}" for e in config.errors],
            "metrics": {"|".join(k): v for k, v in metrics.items()}, "config": asdict(config),
            "results": calibration_results(metrics)}


def calibration_results(metrics: dict[tuple[str, str, str], dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """``results.json`` entries: each metric of each (model, task, variant) at each temperature setting, for each
    ``measure`` (the top prediction; for true_false also P(True) against the proposal being true)."""
    return [result(task, name, row[name], model=model, n=row["n"], variant=variant, setting=row["setting"],
                   measure=row["measure"], temperature=row["temperature"])
            for (model, task, variant), by_t in metrics.items() for row in by_t.values()
            for name in ("accuracy", "ece", "rms", "brier", "auroc")]
