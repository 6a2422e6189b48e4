"""``alignlab reasoning``: CoT faithfulness tests (Lanham et al. 2023) and question decomposition
(Radhakrishnan et al. 2023) on multiple-choice JSONL, BIG-bench tasks or synthetic addition."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from alignlab.cli_common import (
    SHARED_OPTIONS,
    CacheOpt,
    DtypeOpt,
    ModelOpt,
    ModelsOpt,
    OutOpt,
    ResumeOpt,
    config_from_cli,
    config_parameters,
    execute,
    fail,
    load_or_exit,
    split_specs,
)
from alignlab.reasoning.studies import DECOMPOSE, FAITHFULNESS, Helpers, with_helpers
from alignlab.runs.study import Study

reasoning_app = typer.Typer(no_args_is_help=True, help=__doc__)


def reasoning_command(study: Study[Any], *, help: str) -> Callable[..., None]:
    """A command whose options are the config's fields (the SOURCE argument required unless resuming) plus the
    shared ones; the helper models load once per run with the run's dtype and ``--cache``, as the evaluated
    models do."""

    def command(**values: Any) -> None:
        shared = {name: values.pop(name) for name in SHARED_OPTIONS}
        resume = shared["resume"]
        if resume is None and not values.get("source"):
            fail("name a dataset (strategyqa, logical_deduction, a .jsonl, addition) or use --resume")
        config = None if resume else config_from_cli(study.config, values)
        with Helpers(load=load_or_exit, cache=shared["cache"]) as helpers:
            execute(with_helpers(study, helpers), config, split_specs(shared["model"], shared["models"]),
                    out=shared["out"], resume=resume, dtype=shared["dtype"], cache=shared["cache"])

    source, *fields = config_parameters(study.config)
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind) for
              name, kind, default in [("model", ModelOpt, "embedded"), ("models", ModelsOpt, None),
                                      ("out", OutOpt, Path("runs")), ("resume", ResumeOpt, None),
                                      ("dtype", DtypeOpt, "float32"), ("cache", CacheOpt, True)]]
    params = [_optional_source(source), *shared[:2], *fields, *shared[2:]]  # as before: SOURCE, the models first
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = help
    command.__name__ = study.name.replace("-", "_")
    return command


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
