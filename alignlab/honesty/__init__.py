"""Honesty studies of Kadavath et al. 2022 ("Language Models (Mostly) Know What They Know", arXiv 2207.05221):
multiple-choice calibration (``calibration``), P(True) self-evaluation (``ptrue``) and trained P(IK) (``pik``).

From Python, one call per study; the config's type picks the study::

    from alignlab import honesty
    run, summary = honesty.run(honesty.CalibrationConfig(tasks=["date_understanding"], max_items=20), model="embedded")
"""

from __future__ import annotations

import os
from typing import Any

from alignlab.honesty.calibration import run_calibration
from alignlab.honesty.config import CalibrationConfig, HeadConfig, PIKConfig, PTrueConfig
from alignlab.honesty.heads import PIKHead, load_head
from alignlab.honesty.pik import run_pik
from alignlab.honesty.ptrue import run_ptrue
from alignlab.honesty.studies import CALIBRATION, PIK, PTRUE, STUDIES
from alignlab.runs.run import Run
from alignlab.runs.study import model_specs, pick_study, run_study


def run(config: CalibrationConfig | PTrueConfig | PIKConfig | None = None, model: Any = "embedded", *,
        out: str | os.PathLike[str] = "runs", resume: str | os.PathLike[str] | None = None,
        **options: Any) -> tuple[Run, dict[str, Any]]:
    """Run an honesty study into a new run directory (or finish ``resume``); returns ``(run, summary)``.

    ``config`` is a :class:`CalibrationConfig`, :class:`PTrueConfig` or :class:`PIKConfig`; ``model`` a spec, a
    loaded model, or (calibration and P(True)) a list of either, evaluated into one run. P(IK) needs hidden
    states: an ``hf:`` or ``embedded`` model. ``options`` go to :func:`alignlab.runs.study.run_study` (``dtype``,
    ``cache``, ``progress``, ``report``).
    """
    study = pick_study(STUDIES, config, resume)
    if study is PIK and resume is None and len(model_specs(model)) != 1:
        raise ValueError("honesty pik trains and scores a head for one model per run")
    return run_study(study, config, model, out=out, resume=resume, **options)


__all__ = ["CALIBRATION", "PIK", "PTRUE", "CalibrationConfig", "HeadConfig", "PIKConfig", "PIKHead", "PTrueConfig",
           "load_head", "run", "run_calibration", "run_pik", "run_ptrue"]
