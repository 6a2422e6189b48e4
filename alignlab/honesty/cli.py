"""``alignlab honesty``: Kadavath et al. 2022 — ``calibration`` (multiple choice, §3), ``ptrue`` (self-evaluation,
§4) and ``pik`` (a trained P(IK) head, §5). Each command's options are the fields of its config
(``alignlab/honesty/config.py``)."""

from __future__ import annotations

import typer

from alignlab.cli_common import study_command
from alignlab.honesty.studies import CALIBRATION, PIK, PTRUE

honesty_app = typer.Typer(no_args_is_help=True, help=(
    "Honesty (Kadavath et al. 2022): multiple-choice calibration, P(True) self-evaluation, trained P(IK)."))

honesty_app.command("calibration")(study_command(CALIBRATION, help=(
    "Calibration of multiple-choice answers: ECE, RMS, Brier, AUROC, temperature scaling, reliability diagrams.")))
honesty_app.command("ptrue")(study_command(PTRUE, help=(
    "P(True): sample answers, ask the model whether each is true; AUROC, Brier, conditional accuracy.")))
honesty_app.command("pik")(study_command(PIK, multi_model=False, help=(
    "P(IK): labels from sampled answers, a trained value head, in/out-of-distribution AUROC and Brier.")))
