"""What every stage of a red-team run shares: the section of its records in samples.jsonl, the dataset that
calibrates scorers, and reading the records of one kind back (attack, conversation, calibration, score, map)."""

from __future__ import annotations

from typing import Any

from alignlab.runs.run import Run

SECTION = "redteam"
HARMLESS_BASE = "hh-rlhf/harmless-base/test.jsonl"


def records(run: Run, kind: str) -> list[dict[str, Any]]:
    """The run's red-team records of ``kind``, in the order they were written."""
    return [s for s in run.samples() if s.get("section") == SECTION and s.get("kind") == kind]
