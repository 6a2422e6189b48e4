"""``alignlab audit``: the options are ``--model``/``--compare`` and the fields of ``AuditConfig``."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

import typer

from alignlab.audit.config import AuditConfig
from alignlab.cli_common import (
    build_command,
    check_model_option,
    config_from_cli,
    config_parameters,
    load_or_exit,
    run_in_cli,
    shared_parameters,
)

CompareOpt = Annotated[str | None, typer.Option(
    "--compare", help="A second model (e.g. a trained one) to audit side by side.", callback=check_model_option)]
SHARED = ("out", "resume", "dtype", "cache")


def _audit(model: str, compare: str | None, **values: Any) -> None:
    from alignlab.audit.runner import run

    shared = {name: values.pop(name) for name in SHARED}
    config = None if shared["resume"] else config_from_cli(AuditConfig, values)
    run_in_cli(partial(run, config, model, compare=compare, load=load_or_exit, **shared))


audit_command = build_command(
    shared_parameters("model", "compare", compare=(CompareOpt, None)) + config_parameters(AuditConfig)
    + shared_parameters(*SHARED), _audit, name="audit",
    help="Run every available evaluation on a model and write one report with a summary page.")
