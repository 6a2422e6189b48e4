"""Constitutional AI (Bai et al. 2022; Kundu et al. 2023): constitutions, critique/revision, AI feedback,
preference models and RL through TRL.

From Python, one call per command; the config's type picks the command (every CLI flag is a config field)::

    from alignlab import constitution
    run, summary = constitution.run(constitution.ReviseConfig(rounds=1, limit=4), model="embedded")

``revise``, ``label`` and ``questions`` take ``model=``; the trainers and ``evaluate-pm`` name their model in the
config (``SLConfig(model=..., data=...)``, ``PMConfig(base=...)``, ``RLConfig(model=...)``,
``EvaluatePMConfig(pm=...)``). A trained policy is ``hf:<run.path>/policy``, a trained PM ``<run.path>/pm``.
"""

from __future__ import annotations

import os
from typing import Any

from alignlab.constitution.config import (
    EvaluatePMConfig,
    LabelConfig,
    PMConfig,
    QuestionsConfig,
    ReviseConfig,
    RLConfig,
    SLConfig,
    TrainConfig,
)
from alignlab.constitution.runner import run_command
from alignlab.constitution.studies import STUDIES
from alignlab.runs.config import StudyConfig
from alignlab.runs.run import Run


def run(config: StudyConfig | None = None, model: Any = None, *, out: str | os.PathLike[str] = "runs",
        resume: str | os.PathLike[str] | None = None, **options: Any) -> tuple[Run, dict[str, Any]]:
    """Run one constitution command into a new run directory (or finish ``resume``); returns ``(run, summary)``.

    ``config`` is a :class:`ReviseConfig` (``revise``), :class:`LabelConfig` (``label``), :class:`QuestionsConfig`
    (``questions``), :class:`SLConfig` (``train-sft``), :class:`PMConfig` (``train-pm``), :class:`RLConfig`
    (``train-rl``) or :class:`EvaluatePMConfig` (``evaluate-pm``). ``model`` (a spec or a loaded model, default
    ``"embedded"``) is for revise, label and questions; the others take their model from the config. ``options``:
    ``dtype``, ``cache``, ``progress``, ``report`` (see :func:`alignlab.constitution.runner.run_command`). Only
    revise and label runs resume.
    """
    return run_command(config, model, out=out, resume=resume, **options)


__all__ = ["STUDIES", "EvaluatePMConfig", "LabelConfig", "PMConfig", "QuestionsConfig", "RLConfig", "ReviseConfig",
           "SLConfig", "TrainConfig", "run"]
