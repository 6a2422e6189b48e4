"""The model-written-evals study as the runner sees it: name, config class, and how one model is evaluated."""

from __future__ import annotations

from alignlab.behaviors.config import BehaviorsConfig
from alignlab.behaviors.runner import run_behaviors
from alignlab.runs.study import Study

BEHAVIORS = Study("behaviors", BehaviorsConfig,
                  lambda run, model, config, progress: run_behaviors(run, [model], config, progress),
                  title="Behaviour match rates (persona, advanced AI risk, sycophancy); winogenerated gender bias")
STUDIES = (BEHAVIORS,)
