"""Bias and moral self-correction (Ganguli et al. 2023, arXiv 2302.07459): BBQ, Winogender and the admissions
discrimination task, each under the interventions Q, Q+IF and Q+IF+CoT (plus Q+Match Stats for Winogender).

From Python, one call per study; the config's type picks the study::

    from alignlab import fairness
    run, summary = fairness.run(fairness.BBQConfig(limit=8, interventions=["q", "if"]), model="embedded")
"""

from __future__ import annotations

import os
from typing import Any

from alignlab.fairness.config import BBQConfig, DiscriminationConfig, FairnessConfig, WinogenderConfig
from alignlab.fairness.studies import BBQ, DISCRIMINATION, STUDIES, WINOGENDER
from alignlab.runs.run import Run
from alignlab.runs.study import pick_study, run_study


def run(config: FairnessConfig | None = None, model: Any = "embedded", *, out: str | os.PathLike[str] = "runs",
        resume: str | os.PathLike[str] | None = None, **options: Any) -> tuple[Run, dict[str, Any]]:
    """Run a fairness study into a new run directory (or finish ``resume``); returns ``(run, summary)``.

    ``config`` is a :class:`BBQConfig`, :class:`WinogenderConfig` or :class:`DiscriminationConfig`; ``model`` a
    spec, a loaded model, or a list of either (one run, several models). ``options`` go to
    :func:`alignlab.runs.study.run_study` (``dtype``, ``cache``, ``progress``, ``report``).
    """
    study = pick_study(STUDIES, config, resume)
    return run_study(study, config, model, out=out, resume=resume, **options)


__all__ = ["BBQ", "DISCRIMINATION", "WINOGENDER", "BBQConfig", "DiscriminationConfig", "FairnessConfig",
           "WinogenderConfig", "run"]
