"""The closed loop (issue 19): attack -> fix -> re-audit -> explain, as one resumable run.

A base model is audited and red-teamed with one fixed harmlessness scorer, trained with Constitutional AI
(revise -> SL-CAI -> AI feedback -> PM -> RL from the SL-CAI policy, or DPO), audited and red-teamed again with the
same scorer, prompts and seeds, and the SL-CAI examples most influential on the replies that changed most are
found with EK-FAC influence. One call, one run directory with a sub-run per stage::

    from alignlab import loop
    run, summary = loop.run(loop.LoopConfig(model="embedded", scorer="pm:pm-folder"), out="runs")
    run, summary = loop.run(resume=run.path)              # finishes whatever stage was interrupted
"""

from __future__ import annotations

import os
from typing import Any

from alignlab.loop.config import STAGES, LoopConfig
from alignlab.loop.plan import applies, needs, plan
from alignlab.loop.runner import run as _run
from alignlab.runs.run import Run


def run(config: LoopConfig | None = None, *, out: str | os.PathLike[str] = "runs",
        resume: str | os.PathLike[str] | None = None, **options: Any) -> tuple[Run, dict[str, Any]]:
    """Run the loop of ``config`` into a new ``loop-*`` run directory under ``out`` (or finish ``resume``); returns
    ``(run, summary)``. ``options``: ``stages`` (a subset, in the loop's order), ``dtype``, ``cache``,
    ``progress``, ``report`` (see :func:`alignlab.loop.runner.run`)."""
    return _run(config, out=out, resume=resume, **options)


__all__ = ["STAGES", "LoopConfig", "applies", "needs", "plan", "run"]
