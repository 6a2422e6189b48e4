"""The BIG-bench study as the runner sees it."""

from __future__ import annotations

from alignlab.bigbench.config import BigBenchConfig
from alignlab.bigbench.runner import run_bigbench
from alignlab.runs.study import Study


def _evaluate(run, model, config, progress):  # type: ignore[no-untyped-def]
    config.errors.clear()  # each model reloads the tasks and records the skipped examples again
    return run_bigbench(run, [model], config, progress=progress)


BIGBENCH = Study("bigbench", BigBenchConfig, _evaluate,
                 title="BIG-bench JSON tasks (multiple-choice and generative), BIG-bench's own metrics")
STUDIES = (BIGBENCH,)
