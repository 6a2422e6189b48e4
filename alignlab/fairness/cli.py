"""``alignlab fairness``: bias and moral self-correction (Ganguli et al. 2023) on BBQ, Winogender and the
admissions discrimination task, under the interventions Q, Q+IF, Q+IF+CoT (and Q+Match Stats for Winogender).
Each command's options are the fields of its config (``alignlab/fairness/config.py``)."""

from __future__ import annotations

import typer

from alignlab.cli_common import study_command
from alignlab.fairness.studies import BBQ, DISCRIMINATION, WINOGENDER

fairness_app = typer.Typer(no_args_is_help=True, help=(
    "Bias and moral self-correction (Ganguli et al. 2023): BBQ, Winogender, admissions discrimination, each under "
    "Q, Q+IF and Q+IF+CoT."))

fairness_app.command("bbq")(study_command(BBQ, help="BBQ accuracy and bias scores (s_AMB, s_DIS) per intervention "
                                                    "and category, with CIs and a report."))
fairness_app.command("winogender")(study_command(WINOGENDER, help=(
    "Winogender pronoun probabilities per occupation and rho with occupational statistics, per intervention.")))
fairness_app.command("discrimination")(study_command(DISCRIMINATION, help=(
    "Admissions demographic parity (Black - white, female - male p(yes)) or discrim-eval logit gaps.")))
