"""``alignlab loop``: the fields of ``LoopConfig``, ``--config loop.yaml`` and the shared run options."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from alignlab.cli_common import (
    build_command,
    check_specs,
    config_from_cli,
    config_parameters,
    fail,
    load_or_exit,
    run_in_cli,
    shared_parameters,
)
from alignlab.loop.config import LoopConfig, from_file, merged

ConfigFileOpt = Annotated[Path | None, typer.Option(
    "--config", help="A YAML file of LoopConfig fields (stage_options too); flags on the command line win.")]
SHARED = ("out", "resume", "dtype", "cache")


def config_of(path: Path | None, values: dict[str, Any]) -> LoopConfig:
    """The command line's config, over the YAML file's when one is given."""
    cli = config_from_cli(LoopConfig, values)
    if path is None:
        return cli
    try:
        config = merged(from_file(path), cli.as_dict())
    except (ValueError, TypeError) as err:
        fail(str(err))
    check_specs(config.model_specs())
    return config


def _loop(config: Path | None, **values: Any) -> None:
    from alignlab.loop.runner import run

    shared = {name: values.pop(name) for name in SHARED}
    stages = [s.strip() for s in (values.get("stages") or "").split(",") if s.strip()] or None
    loop_config = None if shared["resume"] else config_of(config, values)
    run_in_cli(partial(run, loop_config, stages=stages, load=load_or_exit, **shared))


loop_command = build_command(
    config_parameters(LoopConfig) + shared_parameters("config", *SHARED, config=(ConfigFileOpt, None)), _loop,
    name="loop", help="Attack -> fix -> re-audit -> explain: red team and audit a model with one fixed scorer, train "
                      "it with Constitutional AI, measure it again, and find the training examples behind the change.")
