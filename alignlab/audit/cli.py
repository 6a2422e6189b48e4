"""``alignlab audit``: the options are ``--model``/``--compare`` and the fields of ``AuditConfig``."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

from alignlab.audit.config import AuditConfig
from alignlab.cli_common import (
    CacheOpt,
    DtypeOpt,
    ModelOpt,
    OutOpt,
    ResumeOpt,
    command_line,
    config_from_cli,
    config_parameters,
    console,
    fail,
    load_or_exit,
    print_tables,
    progress_bars,
)

CompareOpt = Annotated[str | None, typer.Option(
    "--compare", help="A second model (e.g. a trained one) to audit side by side.")]


def audit_command(model: ModelOpt = "embedded", compare: CompareOpt = None, *, out: OutOpt = Path("runs"),
                  resume: ResumeOpt = None, dtype: DtypeOpt = "float32", cache: CacheOpt = True,
                  **fields: Any) -> None:
    """Run every available evaluation on a model and write one report with a summary page."""
    from alignlab.audit.runner import run
    from alignlab.models.types import ModelError

    config = None if resume else config_from_cli(AuditConfig, fields)
    opened = []

    def on_open(run_dir: Any) -> None:
        opened.append(run_dir)
        console.print(f"run directory: {run_dir.path}")

    try:
        with progress_bars() as update:
            run_dir, summary = run(config, model, compare=compare, out=out, resume=resume, dtype=dtype, cache=cache,
                                   progress=update, load=load_or_exit, command=command_line(), on_open=on_open)
    except (FileNotFoundError, ValueError, TypeError, ModelError) as err:
        hint = f"\n(completed samples are saved; finish with --resume {opened[0].path})" if opened else ""
        fail(f"{err}{hint}")
    console.print(f"[green]run complete[/green]: {run_dir.path}\nreport: {run_dir.path / 'report.html'}")
    print_tables(summary)


_shared = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
           for p in inspect.signature(audit_command, eval_str=True).parameters.values()
           if p.kind is not inspect.Parameter.VAR_KEYWORD]
_params = _shared[:2] + config_parameters(AuditConfig) + _shared[2:]
audit_command.__signature__ = inspect.Signature(_params)  # type: ignore[attr-defined]
audit_command.__annotations__ = {p.name: p.annotation for p in _params}
