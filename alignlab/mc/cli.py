"""``alignlab mc FILE.jsonl``: score a multiple-choice JSONL file; the options are the fields of ``JsonlConfig``."""

from __future__ import annotations

from alignlab.cli_common import study_command
from alignlab.mc import study
from alignlab.mc.jsonl import JsonlBenchmark

mc_command = study_command(study(JsonlBenchmark()), help=(
    "Score a multiple-choice JSONL file ({question, choices, answer} per line): accuracy with bootstrap CIs, "
    "per-question samples, a report."))
