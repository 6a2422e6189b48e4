"""Summaries (``summary.json``) and ``results.json`` entries of the commands whose runner returns raw numbers: the
trainers (train-sft, train-pm, train-rl) and trait-question generation."""

from __future__ import annotations

from typing import Any

from alignlab.runs.results import result

NOTE_135M = "A 135M model shows the pipeline working, not the paper's effect sizes (52B+)."


def loss_figure(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    series = [{"label": "loss", "x": list(range(1, len(outcome["losses"]) + 1)), "y": outcome["losses"]}]
    if outcome.get("rewards"):
        series.append({"label": "reward", "x": list(range(1, len(outcome["rewards"]) + 1)), "y": outcome["rewards"]})
    return [{"kind": "line", "title": "Training curve", "xlabel": "step", "series": series}]


def _at(values: list[float] | None, i: int) -> float | None:
    return values[i] if values and i < len(values) else None


def _curve_results(task: str, model: str, outcome: dict[str, Any]) -> list[dict[str, Any]]:
    """Steps taken, first and last training loss (and mean reward, for RL), each over ``steps`` logged steps."""
    entries = [result(task, "steps", outcome["steps"], model=model)] if "steps" in outcome else []
    if outcome.get("weight_distance") is not None:
        entries.append(result(task, "weight_distance", outcome["weight_distance"], model=model))
    for metric, values in (("loss", outcome["losses"]), ("reward", outcome.get("rewards") or [])):
        if values:
            entries += [result(task, f"first_{metric}", values[0], model=model, n=len(values)),
                        result(task, f"last_{metric}", values[-1], model=model, n=len(values))]
    return entries


def policy_summary(outcome: dict[str, Any], title: str, *, task: str, model: str) -> dict[str, Any]:
    """A train-sft or train-rl run: the training curve and where the policy was saved."""
    headline = [{"label": "steps", "value": outcome["steps"]},
                {"label": "first / last loss", "value": f"{outcome['losses'][0]:.4f} / {outcome['losses'][-1]:.4f}"
                 if outcome["losses"] else None},
                {"label": "policy (use as hf:<path>)", "value": outcome["policy"]}]
    if outcome.get("rewards"):
        headline.append({"label": "first / last mean reward",
                         "value": f"{outcome['rewards'][0]:.4f} / {outcome['rewards'][-1]:.4f}"})
    if outcome.get("weight_distance") is not None:
        headline.append({"label": "distance from the start ||θ - θ0|| / ||θ0||",
                         "value": f"{outcome['weight_distance']:.3g}"})
    if outcome.get("format"):
        headline.append({"label": "format", "value": outcome["format"]})
    if outcome.get("completions"):
        headline.append({"label": "sampled completions and rewards per step", "value": outcome["completions"]})
    return {"title": f"Constitutional AI: {title}", "headline": headline, "format": outcome.get("format"),
            "sections": [{"id": "training", "title": title, "figures": loss_figure(outcome),
                          "tables": [{"title": "Per step", "columns": ["step", "loss", "reward", "kl"],
                                      "rows": [[i + 1, loss, _at(outcome.get("rewards"), i),
                                                _at(outcome.get("kl"), i)]
                                               for i, loss in enumerate(outcome["losses"])]}]}],
            "notes": [NOTE_135M],
            "results": _curve_results(task, model, outcome)}


def pm_summary(outcome: dict[str, Any]) -> dict[str, Any]:
    """A train-pm run: held-out accuracy (overall and per source), the training curve and the PM folder."""
    held = outcome["heldout"]
    rows = [[k, v] for k, v in held.items()]
    pm = outcome["pm_path"]
    results = _curve_results("train-pm", pm, outcome) + [result("train-pm", "train_pairs", outcome["train_pairs"],
                                                                model=pm)]
    if "accuracy" in held:
        ci = (held["ci_low"], held["ci_high"]) if held.get("ci_low") is not None else None
        results += [result("heldout", "accuracy", held["accuracy"], model=pm, n=held["n"], ci=ci),
                    result("heldout", "soft_loss", held["soft_loss"], model=pm, n=held["n"])]
    for kind in ("ai", "human"):
        if f"accuracy_{kind}" in held:
            results.append(result(f"heldout-{kind}", "accuracy", held[f"accuracy_{kind}"], model=pm,
                                  n=held[f"n_{kind}"]))
    return {"title": "Constitutional AI: preference model", "headline": [
        {"label": "held-out accuracy", "value": round(held["accuracy"], 4) if "accuracy" in held else None,
         "ci": [held.get("ci_low"), held.get("ci_high")] if held.get("ci_low") is not None else None,
         "note": f"{held.get('n', 0)} pairs"},
        {"label": "train pairs", "value": outcome["train_pairs"]},
        {"label": "PM folder", "value": pm}],
        "sections": [{"id": "pm", "title": "Soft-label PM training (Bai et al. 2022 §4.1)",
                      "description": "Loss −[p·log σ(d) + (1−p)·log σ(−d)], d = r(chosen) − r(rejected).",
                      "figures": loss_figure(outcome),
                      "tables": [{"title": "Held-out comparisons", "columns": ["metric", "value"], "rows": rows}]}],
        "notes": [NOTE_135M, *outcome.get("notes", [])],
        "results": results}


def questions_summary(name: str, rows: list[dict[str, Any]], counts: dict[str, int], *,
                      model: str) -> dict[str, Any]:
    """A questions run: how many samples were kept, and the first questions."""
    return {"title": f"Trait questions ({name})",
            "headline": [{"label": k.replace("_", " "), "value": v} for k, v in counts.items()],
            "sections": [{"id": "questions", "title": "Generated trait questions",
                          "description": "Few-shot from our seed questions at T = 1; questions overlapping "
                                         "persona eval statements are dropped. File: questions.jsonl.",
                          "tables": [{"title": "Questions", "columns": ["id", "question"],
                                      "rows": [[r["id"], r["question"]] for r in rows[:20]]}]}],
            "results": [result(f"questions/{name}", metric, value, model=model, n=counts["sampled"])
                        for metric, value in counts.items()]}
