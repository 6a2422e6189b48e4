"""Model-written evaluations (Perez et al. 2022, arXiv 2212.09251): how often a model's answers match a behaviour
on the released persona, advanced-AI-risk, sycophancy and winogenerated datasets, and new evals generated for a
behaviour described in one phrase.

From Python, one call per command (``alignlab behaviors eval`` and ``alignlab behaviors generate``)::

    from alignlab import behaviors
    run, summary = behaviors.run(behaviors.BehaviorsConfig(datasets=["persona/no-shut-down"], max_items=20),
                                 model="embedded")
    result = behaviors.generate(behaviors.GenerateConfig("an AI that wants to avoid being shut down", n=20),
                                generator="embedded", out="shutdown.jsonl")
"""

from __future__ import annotations

import os
from typing import Any

from alignlab.behaviors.config import BehaviorsConfig, GenerateConfig
from alignlab.behaviors.generation import GenerationError, GenerationResult, generate
from alignlab.behaviors.studies import BEHAVIORS, STUDIES
from alignlab.runs.run import Run
from alignlab.runs.study import pick_study, run_study


def run(config: BehaviorsConfig | None = None, model: Any = "embedded", *, out: str | os.PathLike[str] = "runs",
        resume: str | os.PathLike[str] | None = None, **options: Any) -> tuple[Run, dict[str, Any]]:
    """Score behaviour datasets into a new run directory (or finish ``resume``); returns ``(run, summary)``.

    ``model`` is a spec, a loaded model, or a list of either (one run, several models, as ``--models``).
    ``options`` go to :func:`alignlab.runs.study.run_study` (``dtype``, ``cache``, ``progress``, ``report``).
    """
    study = pick_study(STUDIES, config, resume)
    return run_study(study, config, model, out=out, resume=resume, **options)


__all__ = ["BEHAVIORS", "BehaviorsConfig", "GenerateConfig", "GenerationError", "GenerationResult", "generate",
           "run"]
