"""``results.json``: the run's numbers for a program to read, next to ``summary.json`` (which is for display).

One entry per (model, task, metric), with the value, the number of items behind it and its 95% CI, like the
``results`` block of lm-evaluation-harness; the file also carries the config that produced them, the models'
fingerprints and the package versions::

    {"schema": 1, "study": "fairness-bbq", "config": {...}, "models": [{"spec", "fingerprint_id"}],
     "versions": {...}, "results": [{"model", "task", "metric", "value", "n", "ci", ...}]}

A study puts its entries in ``summary["results"]`` (built with :func:`result`); a study that does not is
represented by its headline cards, without n or CI.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = 1
ItemValue = float | tuple[float, ...]


@dataclass
class ItemValues:
    """The per-item values behind one audit headline number, so two models can be compared item by item.

    ``values[model spec][item key]`` is the item's value (or a row of numbers, e.g. value and weight, when
    ``statistic`` needs more than one); the same key on two models is the same item asked the same way.
    ``statistic`` maps a ``(resamples, n, ...)`` batch to one number per resample (default: the mean), and must
    reproduce the headline number from all of a model's items. ``binary`` marks accuracy-type 0/1 values (the
    first number of a row), for which the paired exact McNemar test applies; ``resamples``: how many bootstrap
    resamples. Held in memory only: results.json keeps its format (the audit adds its paired differences as
    ordinary entries).
    """

    label: str
    values: dict[str, dict[str, ItemValue]]
    statistic: Callable[[Any], Any] | None = None
    binary: bool = False
    resamples: int = 10_000  # fewer for a statistic that loops in Python


def result(task: str, metric: str, value: float | None, *, model: str, n: int | None = None,
           ci: Sequence[float | None] | None = None, **extra: Any) -> dict[str, Any]:
    """One entry of ``results.json``; ``extra`` holds any further key (condition, intervention, variant...)."""
    low, high = (ci if ci is not None else (None, None))
    return {"model": model, "task": task, "metric": metric, "value": _number(value), "n": n,
            "ci": None if low is None and high is None else [_number(low), _number(high)], **extra}


def results_of(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The study's own entries, or else one per headline card (value only)."""
    if "results" in summary:
        return list(summary["results"])
    entries = []
    for card in summary.get("headline", []):
        entries.append(result(str(summary.get("title", "")), str(card.get("label")), card.get("value"),
                              model=str(card.get("note", ""))))
    return entries


def write_results(run_dir: Path, manifest: dict[str, Any], summary: dict[str, Any]) -> Path:
    """Write ``<run>/results.json`` atomically; returns its path."""
    models = [{"spec": m.get("spec"), "fingerprint_id": m.get("fingerprint_id")} for m in manifest.get("models", [])]
    body = {"schema": SCHEMA, "study": manifest.get("study"), "created": manifest.get("created"),
            "config": manifest.get("config"), "models": models, "versions": manifest.get("versions", {}),
            "results": results_of(summary)}
    path = Path(run_dir) / "results.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(body, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_results(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``results.json`` of a finished run."""
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a finished run (or predates results.json; "
                                f"rewrite it with `alignlab report {run_dir}`)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}, line {err.lineno}: invalid JSON ({err.msg})") from err


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def side_by_side(entries: Sequence[dict[str, Any]], first: str, second: str) -> list[list[Any]]:
    """Rows ``[study, task, metric, condition, value first, value second, second - first, n first, n second]`` for
    every result both models have (matched on every key but model, value, n and CI), in the order of ``entries``."""
    def condition(entry: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
        return tuple(sorted((k, _hashable(v)) for k, v in entry.items() if k not in ("model", "value", "n", "ci")))

    by_model: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {first: {}, second: {}}
    for entry in entries:
        if entry.get("model") in by_model:
            by_model[entry["model"]].setdefault(condition(entry), entry)
    rows = []
    for key, a in by_model[first].items():
        b = by_model[second].get(key)
        if b is None:
            continue
        extra = ", ".join(f"{k}={v}" for k, v in key if k not in ("study", "task", "metric"))
        diff = None if a["value"] is None or b["value"] is None else round(b["value"] - a["value"], 6)
        rows.append([a.get("study", ""), a.get("task"), a.get("metric"), extra, a["value"], b["value"], diff,
                     a.get("n"), b.get("n")])
    return rows


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
