"""The fairness studies as the runner sees them: name, config class, and how one model is evaluated."""

from __future__ import annotations

from alignlab.fairness.bbq import run_bbq
from alignlab.fairness.config import BBQConfig, DiscriminationConfig, WinogenderConfig
from alignlab.fairness.discrimination import run_discrimination
from alignlab.fairness.winogender import run_winogender
from alignlab.runs.study import Study

BBQ = Study("fairness-bbq", BBQConfig, lambda run, model, config, progress: run_bbq(run, [model], config, progress),
            title="BBQ accuracy and bias scores (s_AMB, s_DIS) per intervention and category")
WINOGENDER = Study("fairness-winogender", WinogenderConfig,
                   lambda run, model, config, progress: run_winogender(run, [model], config, progress),
                   title="Winogender pronoun probabilities; rho with occupational statistics")
DISCRIMINATION = Study("fairness-discrimination", DiscriminationConfig,
                       lambda run, model, config, progress: run_discrimination(run, [model], config, progress),
                       title="Admissions demographic parity, or discrim-eval logit gaps")
STUDIES = (BBQ, WINOGENDER, DISCRIMINATION)
