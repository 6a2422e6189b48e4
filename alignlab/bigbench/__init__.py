"""BIG-bench JSON tasks (Srivastava et al. 2022), scored with BIG-bench 1.0.0's own formatting and metrics::

    from alignlab import bigbench
    run, summary = bigbench.run(bigbench.BigBenchConfig(tasks=["hhh_alignment"], max_examples=24), model="embedded")

Importing this package is light (other studies read BIG-bench tasks through ``alignlab.bigbench.tasks``); the
runner and its text metrics load on the first :func:`run`.
"""

from __future__ import annotations

import os
from typing import Any

from alignlab.bigbench.config import BigBenchConfig
from alignlab.runs.run import Run
from alignlab.runs.study import run_study


def run(config: BigBenchConfig | None = None, model: Any = "embedded", *, out: str | os.PathLike[str] = "runs",
        resume: str | os.PathLike[str] | None = None, **options: Any) -> tuple[Run, dict[str, Any]]:
    """Run BIG-bench tasks on one model (or a list: one run, a scaling plot) into a new run directory, or finish
    ``resume``; returns ``(run, summary)``. ``options``: ``dtype``, ``cache``, ``progress``, ``report``."""
    from alignlab.bigbench.studies import BIGBENCH

    return run_study(BIGBENCH, config, model, out=out, resume=resume, **options)


__all__ = ["BigBenchConfig", "run"]
