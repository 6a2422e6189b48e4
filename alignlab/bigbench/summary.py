"""The BIG-bench study's metrics and report: per (model, task) the metrics BIG-bench computes for that task.

As ``JsonTask`` of BIG-bench 1.0.0: the multiple-choice metrics the task lists (``multiple_choice_grade`` brings
``calibration_multiple_choice_brier_score`` and ``expected_calibration_error`` with it), its generative metrics
(``rouge`` gives ``rouge1``, ``rouge2`` and ``rougeLsum``) and ``log_likelihood``; the headline is the task's
``preferred_score``. A task that lists no metric BIG-bench knows gets the multiple-choice trio or
``exact_str_match``, BLEU and ROUGE, by the kind of its examples. BLEURT is not computed (it needs a learned
checkpoint); a task that lists it says so in the notes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from alignlab.bigbench.config import BigBenchConfig
from alignlab.bigbench.tasks import GENERATIVE_METRICS, MULTIPLE_CHOICE_METRICS, SCORING_METRICS, BigBenchTask
from alignlab.metrics import bigbench as mcm
from alignlab.metrics import text
from alignlab.metrics.stats import bootstrap_ci
from alignlab.runs.results import result

SECTION = "bigbench"
CALIBRATION = ("calibration_multiple_choice_brier_score", "expected_calibration_error")
FALLBACK_MC = ("multiple_choice_grade", *CALIBRATION)
FALLBACK_GENERATIVE = ("exact_str_match", "bleu", "rouge")
NOT_COMPUTED = {"bleurt": "needs the BLEURT-20 checkpoint that BIG-bench downloads at run time"}

TOKENIZATION_NOTES = {
    "bigbench": "choices tokenised as BIG-bench's HF model does: each choice alone, its ids appended to the input's "
                "(--tokenization bigbench)",
    "joint": "choices tokenised jointly with their input (input + choice as one string, --tokenization joint); "
             "BIG-bench tokenises them separately, so scores can differ from BIG-bench's"}

Rows = list[dict[str, Any]]
GENERATIVE: dict[str, Callable[[list[list[str]], list[str]], Any]] = {
    "exact_str_match": text.exact_str_match, "case_insensitive_str_match": text.case_insensitive_str_match,
    "bleu": text.bleu, "rouge": text.rouge, "sequence_f1": text.sequence_f1,
    "numeric_match_with_0_1_relative_error": text.numeric_match_with_0_1_relative_error,
}
MULTIPLE_CHOICE: dict[str, Callable[[Rows], float]] = {
    "multiple_choice_grade": lambda mc: mcm.multiple_choice_grade(*_lp(mc)),
    "calibration_multiple_choice_brier_score": lambda mc: mcm.calibration_multiple_choice_brier_score(*_lp(mc)),
    "expected_calibration_error": lambda mc: mcm.bigbench_expected_calibration_error(*_lp(mc)),
    "weighted_log_probabilities": lambda mc: mcm.weighted_log_probabilities(*_lp(mc, "absolute_log_probs")),
    "weighted_probabilities": lambda mc: mcm.weighted_probabilities(*_lp(mc, "absolute_log_probs")),
    "macro_f1": lambda mc: mcm.macro_f1(*_lp(mc), [r["choices"] for r in mc]),
}
# metrics that are a mean over examples: results.json gives them a bootstrap CI over examples
PER_EXAMPLE = ("multiple_choice_grade", "weighted_log_probabilities", "weighted_probabilities", "exact_str_match",
               "case_insensitive_str_match", "numeric_match_with_0_1_relative_error")
COLUMN_ORDER = ["multiple_choice_grade", *CALIBRATION, "weighted_log_probabilities", "weighted_probabilities",
                "macro_f1", "exact_str_match", "case_insensitive_str_match", "numeric_match_with_0_1_relative_error",
                "sequence_f1", "bleu", "rouge1", "rouge2", "rougeLsum", "log_likelihood", "log_likelihood_per_word",
                "log_likelihood_per_char"]


def _lp(mc: Rows, field: str = "log_probs") -> tuple[list[list[float]], list[list[float]]]:
    return [r[field] for r in mc], [r["target_scores"] for r in mc]


def _known(task: BigBenchTask | None) -> set[str]:
    return set(task.metrics) & (MULTIPLE_CHOICE_METRICS | GENERATIVE_METRICS | SCORING_METRICS) if task else set()


def generates(task: BigBenchTask) -> bool:
    """Whether the task's generative examples are generated: it lists a generative metric, or no metric known to
    BIG-bench at all (then the example's kind decides, and generative examples get the fallback metrics)."""
    known = _known(task)
    return bool(known & GENERATIVE_METRICS) or not known


def scores_targets(task: BigBenchTask) -> bool:
    """Whether the targets are scored as continuations (BIG-bench's ``log_likelihood``)."""
    return "log_likelihood" in task.metrics


def planned_metrics(task: BigBenchTask | None) -> tuple[list[str], list[str]]:
    """(multiple-choice metrics, generative and scoring metrics) BIG-bench computes for the task, in its order."""
    known = _known(task)
    if not known:
        return list(FALLBACK_MC), list(FALLBACK_GENERATIVE)
    listed = list(dict.fromkeys(m for m in task.metrics if m in known))  # type: ignore[union-attr]
    mc = [m for m in listed if m in MULTIPLE_CHOICE_METRICS]
    if "multiple_choice_grade" in mc:
        mc += [m for m in CALIBRATION if m not in mc]
    return mc, [m for m in listed if m not in MULTIPLE_CHOICE_METRICS]


def task_metrics(records: Rows, task: BigBenchTask | None = None) -> dict[str, float]:
    """BIG-bench's metrics over one (model, task) group of sample records; ``n`` counts examples."""
    mc_names, gen_names = planned_metrics(task)
    mc = [r for r in records if r["kind"] == "multiple_choice"]
    gen = [r for r in records if r["kind"] == "generative"]
    out: dict[str, float] = {"n": float(len({r["index"] for r in records}))}
    if mc:
        out.update({name: MULTIPLE_CHOICE[name](mc) for name in mc_names})
    answered = [r for r in gen if "response" in r]
    if answered:
        targets, responses = [r["targets"] for r in answered], [r["response"] for r in answered]
        for name in gen_names:
            if name in GENERATIVE:
                value = GENERATIVE[name](targets, responses)
                out.update(value if isinstance(value, dict) else {name: value})
    scored = [r for r in gen if "target_log_probs" in r]
    if scored and "log_likelihood" in gen_names:
        out.update(mcm.log_likelihood([r["target_log_probs"] for r in scored], [r["targets"] for r in scored]))
    return out


def per_example(metric: str, records: Rows) -> list[float] | None:
    """The per-example values whose mean is ``metric`` (None for corpus-level metrics)."""
    mc = [r for r in records if r["kind"] == "multiple_choice"]
    gen = [r for r in records if r["kind"] == "generative" and "response" in r]
    if metric == "multiple_choice_grade":
        return [r["correct"] for r in mc]
    if metric in ("weighted_log_probabilities", "weighted_probabilities"):
        return [MULTIPLE_CHOICE[metric]([r]) for r in mc]
    if metric in PER_EXAMPLE:
        return [GENERATIVE[metric]([r["targets"]], [r["response"]]) for r in gen]
    return None


def preferred(task: BigBenchTask | None, metrics: dict[str, float]) -> str | None:
    """The task's ``preferred_score`` when it was computed, else multiple_choice_grade / exact_str_match."""
    if task is not None and task.preferred_score in metrics:
        return task.preferred_score
    return next((m for m in ("multiple_choice_grade", "exact_str_match") if m in metrics), None)


def summarize(samples: Rows, manifest: dict[str, Any], config: BigBenchConfig,
              leaves: dict[str, BigBenchTask] | None = None) -> dict[str, Any]:
    leaves = leaves or {}
    groups: dict[tuple[str, str], Rows] = defaultdict(list)
    for s in samples:
        if s.get("section") == SECTION:
            groups[(s["model"], s["task"])].append(s)
    metrics = {key: task_metrics(recs, leaves.get(key[1])) for key, recs in sorted(groups.items())}
    best = {task: preferred(leaves.get(task), m) for (_, task), m in metrics.items()}
    columns = [c for c in COLUMN_ORDER if any(c in m for m in metrics.values())]
    rows = [[model, task, int(m["n"]), *[_fmt(m.get(c)) for c in columns]] for (model, task), m in metrics.items()]
    params = {m["spec"]: m["description"].get("parameters") for m in manifest.get("models", [])}
    first_model = manifest["models"][0]["spec"] if manifest.get("models") else None
    headline = [{"label": f"{task} ({best[task]})", "value": _fmt(m.get(best[task])), "ci": None,
                 "note": f"{model}, {config.shots}-shot"}
                for (model, task), m in metrics.items() if model == first_model and best[task]]
    figures = [_reliability(task, groups) for task in sorted({t for _, t in groups})]
    figures = [f for f in figures if f]
    if len({m for m, _ in groups}) > 1:
        figures.append(_scaling(metrics, params, best))
    section = {
        "id": SECTION,
        "title": "BIG-bench tasks",
        "description": (
            "BIG-bench JSON tasks (Srivastava et al. 2022), formatted and scored as BIG-bench's json_task does: "
            "the task's metrics decide whether choices are scored as continuations, text is generated, or both; "
            "each task gets the metrics it lists, as defined in bigbench/api/task_metrics.py, and its headline is "
            "its preferred_score."),
        "tables": [{"title": f"Metrics ({config.shots}-shot)", "columns": ["model", "task", "n", *columns],
                    "rows": rows}],
        "figures": figures,
        "sample_columns": ["model", "task", "context", "choices", "probs", "prediction", "response", "correct"],
    }
    results = [entry for (model, task), recs in groups.items()
               for entry in task_results(model, task, recs, metrics[(model, task)], config)]
    return {"title": "BIG-bench evaluation", "headline": headline, "sections": [section],
            "notes": [f"skipped: {e}" for e in config.errors] + _notes(leaves, metrics, best)
            + [TOKENIZATION_NOTES[config.tokenization]],
            "results": results, "preferred": best,
            "metrics": {f"{m}|{t}": v for (m, t), v in metrics.items()}, "config": config.as_dict()}


def _notes(leaves: dict[str, BigBenchTask], metrics: dict[tuple[str, str], dict[str, float]],
           best: dict[str, str | None]) -> list[str]:
    notes = []
    for name, task in sorted(leaves.items()):
        for metric, why in NOT_COMPUTED.items():
            if metric in task.metrics:
                notes.append(f"{name}: {metric} not computed ({why})")
        if task.preferred_score and best.get(name) != task.preferred_score and \
                any(t == name for _, t in metrics):
            notes.append(f"{name}: preferred_score {task.preferred_score} was not computed; headline shows "
                         f"{best.get(name)}")
    return notes


def task_results(model: str, task: str, records: Rows, metrics: dict[str, float],
                 config: BigBenchConfig) -> list[dict[str, Any]]:
    """``results.json`` entries of one task: every metric with its n (examples of its kind); the metrics that are a
    mean over examples with a seeded bootstrap 95% CI over examples."""
    entries = []
    for metric, value in metrics.items():
        if metric == "n":
            continue
        kind = "multiple_choice" if metric in MULTIPLE_CHOICE_METRICS else "generative"
        n = sum(r["kind"] == kind for r in records)
        scores = per_example(metric, records)
        ci = bootstrap_ci(scores, seed=config.seed) if scores else None
        entries.append(result(task, metric, value, model=model, n=n, ci=ci, shots=config.shots))
    return entries


def _fmt(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _reliability(task: str, groups: dict[tuple[str, str], Rows]) -> dict[str, Any] | None:
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


def _scaling(metrics: dict[tuple[str, str], dict[str, float]], params: dict[str, Any],
             best: dict[str, str | None]) -> dict[str, Any]:
    by_task: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for (model, task), m in metrics.items():
        value = m.get(best[task] or "")
        if params.get(model) and value is not None:
            by_task[task].append((float(params[model]), float(value)))
    series = [{"label": f"{task} ({best[task]})", "x": [p for p, _ in sorted(pts)], "y": [v for _, v in sorted(pts)]}
              for task, pts in sorted(by_task.items())]
    return {"kind": "scaling", "title": "Score vs parameter count", "xlabel": "parameters",
            "ylabel": "each task's preferred score", "series": series}
