"""``alignlab reasoning``: CoT faithfulness tests (Lanham et al. 2023) and question decomposition
(Radhakrishnan et al. 2023) on multiple-choice JSONL, BIG-bench tasks or synthetic addition."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

import typer

from alignlab.cli_common import (
    SHARED,
    build_command,
    config_from_cli,
    config_parameters,
    fail,
    load_or_exit,
    run_in_cli,
    shared_parameters,
    split_specs,
)
from alignlab.reasoning.studies import DECOMPOSE, FAITHFULNESS, Helpers, with_helpers
from alignlab.runs.study import Study, run_study

reasoning_app = typer.Typer(no_args_is_help=True, help=__doc__)


def reasoning_command(study: Study[Any], *, help: str) -> Callable[..., None]:
    """A command whose options are the config's fields (the SOURCE argument required unless resuming) plus the
    shared ones; the helper models load once per run with the run's dtype and ``--cache``, as the evaluated
    models do."""

    def body(**values: Any) -> None:
        shared = {name: values.pop(name) for name in SHARED}
        resume = shared["resume"]
        if resume is None and not values.get("source"):
            fail("name a dataset (strategyqa, logical_deduction, a .jsonl, addition) or use --resume")
        config = None if resume else config_from_cli(study.config, values)
        with Helpers(load=load_or_exit, cache=shared["cache"]) as helpers:
            run_in_cli(partial(run_study, with_helpers(study, helpers), config,
                               split_specs(shared["model"], shared["models"]), out=shared["out"], resume=resume,
                               dtype=shared["dtype"], cache=shared["cache"], load=load_or_exit))

    source, *fields = config_parameters(study.config)
    shared = shared_parameters(*SHARED)
    params = [_optional_source(source), *shared[:2], *fields, *shared[2:]]  # as before: SOURCE, the models first
    return build_command(params, body, help=help, name=study.name)


def _optional_source(param: inspect.Parameter) -> inspect.Parameter:
    """The SOURCE argument without the Python default (strategyqa): the CLI asks for one, or --resume."""
    _, info = typing.get_args(param.annotation)
    return param.replace(default=None, annotation=Annotated[str | None, info])


reasoning_app.command("faithfulness")(reasoning_command(FAITHFULNESS, help=(
    "Early answering, adding mistakes, paraphrasing and filler tokens: curves per CoT length, AOC, accuracy "
    "with and without CoT.")))
reasoning_app.command("decompose")(reasoning_command(DECOMPOSE, help=(
    "Zero-shot, few-shot, CoT, CoT decomposition and factored decomposition: accuracy, faithfulness AOCs, "
    "biased-context sensitivity and the accuracy-faithfulness frontier.")))
