"""Sub-runs: each stage writes its study's own run directory under ``<loop run>/stages/<stage>/``.

A stage is finished when that folder holds a complete run: it is never redone. An interrupted run is finished with
its own study's ``resume`` when the study resumes (audit, red team, revise, label, influence); a trainer, which does
not resume, starts a new run beside the failed one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def runs_in(folder: Path) -> list[tuple[str, Path, str]]:
    """``(created, path, status)`` of every run directory in ``folder``, oldest first."""
    found = []
    for manifest in folder.glob("*/manifest.json"):
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        found.append((str(data.get("created", "")), manifest.parent, str(data.get("status", ""))))
    return sorted(found)


def complete_run(folder: Path) -> Path | None:
    """The newest complete run in ``folder``, if any."""
    done = [path for _, path, status in runs_in(folder) if status == "complete"]
    return done[-1] if done else None


def unfinished_run(folder: Path) -> Path | None:
    """The newest run in ``folder`` that did not complete (running when killed, or failed), if any."""
    left = [path for _, path, status in runs_in(folder) if status != "complete"]
    return left[-1] if left else None


def sub_run(folder: Path, call: Callable[[Path, Path | None], Any], *, resumable: bool) -> Path:
    """The complete run in ``folder``, else ``call(folder, resume)`` with the unfinished run to resume (when the
    study resumes) or None; returns the run directory."""
    folder.mkdir(parents=True, exist_ok=True)
    done = complete_run(folder)
    if done is not None:
        return done
    previous = unfinished_run(folder) if resumable else None
    run, _ = call(folder, previous)
    return Path(run.path)


def summary_of(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "summary.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
