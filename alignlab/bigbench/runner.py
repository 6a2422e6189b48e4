"""BIG-bench JSON tasks (Srivastava et al. 2022, arXiv 2206.04615), scored as BIG-bench 1.0.0 scores them.

Multiple-choice examples: every choice is scored as a continuation of the formatted input (``cond_log_prob``
with ``absolute_normalization=True``, then renormalised over the choices unless the task sets
``absolute_normalization``), as ``JsonTask.evaluate_fixed_shot`` does; the metrics are BIG-bench's own
``multiple_choice_grade`` (hashed tie-break), ``calibration_multiple_choice_brier_score`` and
``expected_calibration_error`` (15 equal-width buckets). Generative examples: greedy generation, then BIG-bench's
post-processing (cut after the task's ``stop_string``, then the first match of ``output_regex``), scored by
``exact_str_match``, BLEU and ROUGE. Programmatic (``task.py``) tasks are refused: they run arbitrary code.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

from alignlab.bigbench.config import BigBenchConfig
from alignlab.bigbench.prompts import format_examples
from alignlab.bigbench.tasks import BigBenchTask, FormattedExample, find_task, load_task
from alignlab.metrics.bigbench import (
    bigbench_expected_calibration_error,
    calibration_multiple_choice_brier_score,
    multiple_choice_grade,
    normalized_log_probs,
)
from alignlab.metrics.stats import bootstrap_ci
from alignlab.metrics.text import bleu, exact_str_match, rouge
from alignlab.models.base import Model
from alignlab.models.types import GenerateParams, GenerateRequest, GenerateResult, ScoreRequest
from alignlab.runs.results import result
from alignlab.runs.run import Run

SECTION = "bigbench"


def load_examples(config: BigBenchConfig) -> tuple[list[FormattedExample], dict[str, BigBenchTask]]:
    """Every formatted example of every task, and the leaf task of each example by name.

    Skipped bad examples are recorded in ``config.errors``.
    """
    examples: list[FormattedExample] = []
    leaves: dict[str, BigBenchTask] = {}
    for name in config.tasks:
        task = load_task(find_task(name, data=config.data))
        config.errors.extend(task.errors)
        leaves.update({leaf.name: leaf for leaf in task.leaves()})
        examples.extend(format_examples(task, shots=config.shots, seed=config.seed, max_examples=config.max_examples))
    return examples, leaves


def sample_key(model: Model, ex: FormattedExample, shots: int) -> str:
    return f"{model.spec}|{model.fingerprint_id}|{ex.task}|{shots}-shot|{ex.index}"


def run_bigbench(run: Run, models: list[Model], config: BigBenchConfig,
                 progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Evaluate every model on every example not yet in ``run``; returns the summary."""
    examples, leaves = load_examples(config)
    for model in models:
        run.evaluate_in_chunks(model, examples, lambda ex, m=model: sample_key(m, ex, config.shots),
                               lambda chunk, m=model: _evaluate_chunk(m, chunk, leaves, config),
                               chunk_size=config.chunk_size, progress=progress)
    return summarize(run.samples(), run.manifest, config)


def _evaluate_chunk(model: Model, chunk: list[FormattedExample], leaves: dict[str, BigBenchTask],
                    config: BigBenchConfig) -> list[dict[str, Any]]:
    mc = [ex for ex in chunk if ex.kind == "multiple_choice"]
    gen = [ex for ex in chunk if ex.kind == "generative"]
    records = []
    for ex, scored in zip(mc, model.score([ScoreRequest(ex.context, ex.choices) for ex in mc]), strict=True):
        absolute = scored.logprobs
        log_probs = absolute if leaves[ex.task].absolute_normalization else normalized_log_probs(absolute)
        probs = np.exp(np.array(log_probs) - np.max(log_probs))
        probs /= probs.sum()
        correct = multiple_choice_grade([log_probs], [ex.target_scores])
        records.append({
            **_base_record(model, ex, config), "choices": list(ex.choices),
            "target_scores": list(ex.target_scores), "absolute_log_probs": list(absolute), "log_probs": log_probs,
            "probs": probs.tolist(), "prediction": ex.choices[int(np.argmax(log_probs))], "correct": correct,
        })
    requests = [GenerateRequest(ex.context, GenerateParams(max_new_tokens=config.max_new_tokens, temperature=0.0,
                                                           stop=_stops(leaves[ex.task]))) for ex in gen]
    for ex, generated in zip(gen, model.generate(requests), strict=True):
        response = postprocess(generated, leaves[ex.task])
        records.append({**_base_record(model, ex, config), "targets": list(ex.targets), "raw_response": generated.text,
                        "response": response, "correct": float(response in ex.targets)})
    return records


def _stops(task: BigBenchTask) -> tuple[str, ...]:
    return (task.stop_string,) if task.stop_string else ()


def postprocess(result: GenerateResult, task: BigBenchTask) -> str:
    """BIG-bench's ``postprocess_output``: keep the text up to and including ``stop_string``, then take the
    first match of ``output_regex`` (empty when nothing matches)."""
    text = result.text
    if task.stop_string and result.samples[0].finish_reason == "stop" and text:
        text += task.stop_string  # generation stopped before the stop string; BIG-bench keeps it
    if task.output_regex:
        text = next(iter(re.findall(task.output_regex, text)), "")
    return text


def _base_record(model: Model, ex: FormattedExample, config: BigBenchConfig) -> dict[str, Any]:
    return {"section": SECTION, "model": model.spec, "key": sample_key(model, ex, config.shots), "task": ex.task,
            "index": ex.index, "id": ex.id, "kind": ex.kind, "shots": config.shots, "context": ex.context}


# -- summary --------------------------------------------------------------------------------------
def task_metrics(records: list[dict[str, Any]]) -> dict[str, float]:
    """BIG-bench's metrics over one (model, task) group of sample records."""
    mc = [r for r in records if r["kind"] == "multiple_choice"]
    gen = [r for r in records if r["kind"] == "generative"]
    out: dict[str, float] = {"n": float(len(records))}
    if mc:
        lps = [r["log_probs"] for r in mc]
        targets = [r["target_scores"] for r in mc]
        out["multiple_choice_grade"] = multiple_choice_grade(lps, targets)
        out["calibration_multiple_choice_brier_score"] = calibration_multiple_choice_brier_score(lps, targets)
        out["expected_calibration_error"] = bigbench_expected_calibration_error(lps, targets)
    if gen:
        targets = [r["targets"] for r in gen]
        responses = [r["response"] for r in gen]
        out["exact_str_match"] = exact_str_match(targets, responses)
        out["bleu"] = bleu(targets, responses)
        out.update(rouge(targets, responses))
    return out


METRIC_COLUMNS = ["multiple_choice_grade", "calibration_multiple_choice_brier_score", "expected_calibration_error",
                  "exact_str_match", "bleu", "rougeLsum"]


def summarize(samples: list[dict[str, Any]], manifest: dict[str, Any], config: BigBenchConfig) -> dict[str, Any]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for s in samples:
        if s.get("section") == SECTION:
            groups[(s["model"], s["task"])].append(s)
    metrics = {key: task_metrics(recs) for key, recs in sorted(groups.items())}
    columns = [c for c in METRIC_COLUMNS if any(c in m for m in metrics.values())]
    rows = [[model, task, int(m["n"]), *[_fmt(m.get(c)) for c in columns]] for (model, task), m in metrics.items()]
    params = {m["spec"]: m["description"].get("parameters") for m in manifest.get("models", [])}
    first_model = manifest["models"][0]["spec"] if manifest.get("models") else None
    headline = [{"label": f"{task} ({'multiple_choice_grade' if 'multiple_choice_grade' in m else 'exact_str_match'})",
                 "value": _fmt(m.get("multiple_choice_grade", m.get("exact_str_match"))), "ci": None,
                 "note": f"{model}, {config.shots}-shot"}
                for (model, task), m in metrics.items() if model == first_model]
    figures = [_reliability(task, groups, params) for task in sorted({t for _, t in groups})]
    figures = [f for f in figures if f]
    if len({m for m, _ in groups}) > 1:
        figures.append(_scaling(metrics, params))
    section = {
        "id": SECTION,
        "title": "BIG-bench tasks",
        "description": (
            "BIG-bench JSON tasks (Srivastava et al. 2022), formatted and scored as BIG-bench's json_task does: "
            "choices scored as continuations; multiple_choice_grade, Brier score and ECE "
            "(15 equal-width buckets) as defined in bigbench/api/task_metrics.py."),
        "tables": [{"title": f"Metrics ({config.shots}-shot)", "columns": ["model", "task", "n", *columns],
                    "rows": rows}],
        "figures": figures,
        "sample_columns": ["model", "task", "context", "choices", "probs", "prediction", "response", "correct"],
    }
    notes = [f"skipped: {e}" for e in config.errors]
    results = [entry for (model, task), recs in groups.items()
               for entry in task_results(model, task, recs, metrics[(model, task)], config)]
    return {"title": "BIG-bench evaluation", "headline": headline, "sections": [section], "notes": notes,
            "results": results,
            "metrics": {f"{m}|{t}": v for (m, t), v in metrics.items()}, "config": config.as_dict()}


def task_results(model: str, task: str, records: list[dict[str, Any]], metrics: dict[str, float],
                 config: BigBenchConfig) -> list[dict[str, Any]]:
    """``results.json`` entries of one task: every metric with its n; the two per-example means
    (multiple_choice_grade, exact_str_match) with a seeded bootstrap 95% CI over examples."""
    per_example = {"multiple_choice_grade": [r["correct"] for r in records if r["kind"] == "multiple_choice"],
                   "exact_str_match": [r["correct"] for r in records if r["kind"] == "generative"]}
    entries = []
    for metric, value in metrics.items():
        if metric == "n":
            continue
        kind = "generative" if metric not in MC_METRICS else "multiple_choice"
        n = sum(r["kind"] == kind for r in records)
        scores = per_example.get(metric)
        ci = bootstrap_ci(scores, seed=config.seed) if scores else None
        entries.append(result(task, metric, value, model=model, n=n, ci=ci, shots=config.shots))
    return entries


MC_METRICS = ("multiple_choice_grade", "calibration_multiple_choice_brier_score", "expected_calibration_error")


def _fmt(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _reliability(task: str, groups: dict, params: dict) -> dict[str, Any] | None:
    series = []
    for (model, t), recs in sorted(groups.items()):
        mc = [r for r in recs if t == task and r["kind"] == "multiple_choice"]
        if mc:
            series.append({"label": model, "confidence": [max(r["probs"]) for r in mc],
                           "correct": [float(r["correct"] == max(r["target_scores"])) for r in mc]})
    if not series:
        return None
    return {"kind": "reliability", "title": f"Reliability: {task}", "binning": "equal_width", "bins": 15,
            "series": series}


def _scaling(metrics: dict, params: dict) -> dict[str, Any]:
    by_task: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for (model, task), m in metrics.items():
        value = m.get("multiple_choice_grade", m.get("exact_str_match"))
        if params.get(model) and value is not None:
            by_task[task].append((float(params[model]), float(value)))
    series = [{"label": task, "x": [p for p, _ in sorted(pts)], "y": [v for _, v in sorted(pts)]}
              for task, pts in sorted(by_task.items())]
    return {"kind": "scaling", "title": "Score vs parameter count", "xlabel": "parameters",
            "ylabel": "multiple_choice_grade / exact_str_match", "series": series}
