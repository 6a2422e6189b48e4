"""Honesty studies of Kadavath et al. 2022 ("Language Models (Mostly) Know What They Know", arXiv 2207.05221):
multiple-choice calibration (``calibration``), P(True) self-evaluation (``ptrue``) and trained P(IK) (``pik``)."""

from alignlab.honesty.calibration import CalibrationConfig, run_calibration
from alignlab.honesty.heads import PIKHead, load_head
from alignlab.honesty.pik import PIKConfig, run_pik
from alignlab.honesty.ptrue import PTrueConfig, run_ptrue

__all__ = ["CalibrationConfig", "PIKConfig", "PIKHead", "PTrueConfig", "load_head", "run_calibration", "run_pik",
           "run_ptrue"]
