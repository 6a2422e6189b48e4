"""Multiple-choice benchmarks of your own: subclass :class:`Benchmark`, yield :class:`Question` s, and run it like any
study (one run directory, per-question samples, ``results.json`` with accuracy and CIs, a report, resume)::

    from alignlab import mc
    run, summary = mc.run(MyBenchmark(), mc.MCConfig(limit=50), model="embedded")

``docs/new_benchmark.md`` walks through a complete one (``examples/harmless_choice.py``, under 100 lines).
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

from alignlab.mc.benchmark import Benchmark, Question
from alignlab.mc.config import MCConfig
from alignlab.mc.runner import evaluate
from alignlab.runs.run import Run
from alignlab.runs.study import Study, run_study


def study(benchmark: Benchmark) -> Study[Any]:
    """The benchmark as a study (run-directory name = ``benchmark.name``)."""
    return Study(benchmark.name, benchmark.config_class, partial(evaluate, benchmark), title=benchmark.reproduces)


def run(benchmark: Benchmark, config: MCConfig | None = None, model: Any = "embedded", *,
        out: str | os.PathLike[str] = "runs", resume: str | os.PathLike[str] | None = None,
        **options: Any) -> tuple[Run, dict[str, Any]]:
    """Score ``benchmark`` on ``model`` (a spec, a loaded model, or a list: one run) into a new run directory, or
    finish ``resume``; returns ``(run, summary)``. ``options``: ``dtype``, ``cache``, ``progress``, ``report``."""
    if config is None and resume is None:
        config = benchmark.config_class()
    return run_study(study(benchmark), config, model, out=out, resume=resume, **options)


__all__ = ["Benchmark", "MCConfig", "Question", "run", "study"]
