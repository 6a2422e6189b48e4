"""The honesty studies as the runner sees them: name, config class, and how one model is evaluated."""

from __future__ import annotations

from alignlab.honesty.calibration import run_calibration
from alignlab.honesty.config import CalibrationConfig, PIKConfig, PTrueConfig
from alignlab.honesty.pik import run_pik
from alignlab.honesty.ptrue import run_ptrue
from alignlab.runs.study import Study

CALIBRATION = Study("honesty-calibration", CalibrationConfig,
                    lambda run, model, config, progress: run_calibration(run, [model], config, progress),
                    title="Multiple-choice calibration: ECE, RMS, Brier, AUROC at T=1, a fixed T and a fitted T")
PTRUE = Study("honesty-ptrue", PTrueConfig,
              lambda run, model, config, progress: run_ptrue(run, [model], config, progress),
              title="P(True) self-evaluation of sampled answers: AUROC, Brier, ECE, conditional accuracy")
PIK = Study("honesty-pik", PIKConfig, run_pik,
            title="Trained P(IK) head: in- and out-of-distribution AUROC and Brier, source-material test")
STUDIES = (CALIBRATION, PTRUE, PIK)
