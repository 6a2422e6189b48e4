"""``alignlab influence``: EK-FAC influence functions (Grosse et al. 2023). ``fit`` fits factors on a training file;
``query`` ranks the training sequences by influence on a prompt + completion. Both run under ``torchrun``.

Each command's options are the fields of its config (``alignlab/influence/config.py``) plus the model, dtype,
device, out and resume arguments of :func:`alignlab.influence.fit` / ``query``, which the commands call."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from alignlab.cli_common import (
    DtypeOpt,
    ModelOpt,
    OutOpt,
    ResumeOpt,
    build_command,
    config_from_cli,
    config_parameters,
    run_in_cli,
    shared_parameters,
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
    params = {p.name: p for p in config_parameters(config_cls)}
    params |= {p.name: p for p in shared_parameters(*SHARED, **SHARED)}
    for name, kind in (overrides or {}).items():
        params[name] = params[name].replace(annotation=kind)
    return build_command([params[name] for name in order], partial(_execute, config_cls, call), help=doc,
                         name=call.__name__)


def _execute(config_cls: type, call: Callable[..., Any], **values: Any) -> None:
    """Join torchrun's process group (if any), build the config (unless resuming) and run; rank 0 prints where
    the run is, and a data or model error is one red line naming the run to resume."""
    from alignlab.influence import distributed as dist

    dist.setup()
    shared = {name: values.pop(name) for name in SHARED if name in values}
    config = None if shared["resume"] else config_from_cli(config_cls, values)
    run_in_cli(partial(call, config, **shared), errors=ERRORS)
    dist.teardown()


influence_app.command("fit")(_command(FitConfig, runner.fit, FIT_OPTIONS, (
    "Fit EK-FAC factors (covariances, float64 eigenbases, eigenvalue correction) into <run>/factors.")))
influence_app.command("query")(_command(QueryConfig, runner.query, QUERY_OPTIONS, (
    "Top-k influential training sequences per query, with per-token highlights, layer and sparsity plots."),
    overrides={"candidates": CandidatesOpt}))
