"""``alignlab influence``: EK-FAC influence functions (Grosse et al. 2023). ``fit`` fits factors on a training file;
``query`` ranks the training sequences by influence on a prompt + completion. Both run under ``torchrun``.

Each command's options are the fields of its config (``alignlab/influence/config.py``) plus the model, dtype,
device, out and resume arguments of :func:`alignlab.influence.fit` / ``query``, which the commands call."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from alignlab.cli_common import (
    DtypeOpt,
    ModelOpt,
    OutOpt,
    ResumeOpt,
    command_line,
    config_from_cli,
    config_parameters,
    console,
    fail,
    print_tables,
    progress_bars,
)
from alignlab.influence import runner
from alignlab.influence.config import FitConfig, QueryConfig

influence_app = typer.Typer(no_args_is_help=True, help=(
    "Influence functions with EK-FAC (Grosse et al. 2023): fit factors, then find the training sequences that "
    "most influence a completion."))

DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda (cuda:<local rank> under torchrun).")]
CandidatesOpt = Annotated[str | None, typer.Option("--candidates", help="tfidf:N scores only the N TF-IDF-nearest "
                                                                        "training sequences per query.")]
SHARED = {"model": (ModelOpt, "embedded"), "dtype": (DtypeOpt, "float32"), "device": (DeviceOpt, "auto"),
          "out": (OutOpt, Path("runs")), "resume": (ResumeOpt, None)}
FIT_OPTIONS = ("train", "model", "scope", "pattern", "fisher", "block_size", "max_length", "max_sequences",
               "layers_per_pass", "batch_size", "seed", "head_cache_mib", "dtype", "device", "out", "resume")
QUERY_OPTIONS = ("fit", "prompt", "completion", "queries", "candidates", "top_k", "rank", "damping_factor", "damping",
                 "batch_size", "query_batch_size", "device", "out", "resume")
ERRORS = (FileNotFoundError, ValueError, RuntimeError, FloatingPointError)


def _command(config_cls: type, call: Callable[..., Any], order: tuple[str, ...], doc: str,
             overrides: dict[str, Any] | None = None) -> Callable[..., None]:
    """A typer command whose options are ``config_cls``'s fields plus the shared ones named in ``order``."""

    def command(**values: Any) -> None:
        _execute(config_cls, call, values)

    params = {p.name: p for p in config_parameters(config_cls)}
    for name, (kind, default) in SHARED.items():
        params[name] = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
    for name, kind in (overrides or {}).items():
        params[name] = params[name].replace(annotation=kind)
    ordered = [params[name] for name in order]
    command.__signature__ = inspect.Signature(ordered)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in ordered}
    command.__doc__ = doc
    command.__name__ = call.__name__
    return command


def _execute(config_cls: type, call: Callable[..., Any], values: dict[str, Any]) -> None:
    """Join torchrun's process group (if any), build the config (unless resuming), run, and let rank 0 print where
    the run is; data/model errors become one red line naming the run to resume."""
    from alignlab.influence import distributed as dist

    dist.setup()
    shared = {name: values.pop(name) for name in SHARED if name in values}
    config = None if shared["resume"] else config_from_cli(config_cls, values)
    opened = []

    def on_open(run: Any) -> None:
        opened.append(run)
        console.print(f"run directory: {run.path}")

    try:
        with progress_bars() as update:
            run, summary = call(config, **shared, progress=update, command=command_line(), on_open=on_open)
    except ERRORS as err:
        fail(str(err) + (f"\n(finish with --resume {opened[0].path})" if opened else ""))
    if run is not None:
        console.print(f"[green]run complete[/green]: {run.path}\nreport: {run.path / 'report.html'}")
        print_tables(summary)
    dist.teardown()


influence_app.command("fit")(_command(FitConfig, runner.fit, FIT_OPTIONS, (
    "Fit EK-FAC factors (covariances, float64 eigenbases, eigenvalue correction) into <run>/factors.")))
influence_app.command("query")(_command(QueryConfig, runner.query, QUERY_OPTIONS, (
    "Top-k influential training sequences per query, with per-token highlights, layer and sparsity plots."),
    overrides={"candidates": CandidatesOpt}))
