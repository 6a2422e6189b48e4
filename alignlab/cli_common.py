"""Pieces every ``alignlab`` subcommand shares: option types, progress bars, model loading, finishing a run."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

if TYPE_CHECKING:
    from alignlab.models.base import Model
    from alignlab.runs.run import Run

console = Console(stderr=True)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model spec: embedded, hf:<id-or-path>, "
                                                                  "openai:<model>@<base_url>.")]
ModelsOpt = Annotated[str | None, typer.Option("--models", help="Comma-separated specs for a scaling run.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder that receives the run directory.")]
ResumeOpt = Annotated[Path | None, typer.Option("--resume", help="Finish an interrupted run directory.")]
DataOpt = Annotated[str | None, typer.Option("--data", help="Dataset path (else $ALIGNLAB_DATA, the user "
                                                               "cache, then a download).")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="float32 (default, exact) or bfloat16.")]
CacheOpt = Annotated[bool, typer.Option("--cache/--no-cache", help="Use the persistent request cache.")]


def command_line() -> str:
    return "alignlab " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def split_specs(model: str, models: str | None) -> list[str]:
    return [s.strip() for s in models.split(",") if s.strip()] if models else [model]


@contextmanager
def progress_bars(log_every_s: float = 30.0) -> Iterator[Any]:
    """A rich progress bar with ETA; yields ``update(label, done, total)``. When stderr is not a terminal (a batch
    job, ``nohup``, CI), where rich draws nothing until the end, one plain line per task at most every
    ``log_every_s`` seconds and at completion instead."""
    if not console.is_terminal:
        yield _progress_lines(log_every_s)
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def update(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done, total=total)

        yield update


def _progress_lines(every_s: float) -> Callable[[str, int, int], None]:
    started: dict[str, float] = {}
    last: dict[str, float] = {}

    def update(label: str, done: int, total: int) -> None:
        now = time.monotonic()
        started.setdefault(label, now)
        if done < total and now - last.get(label, started[label]) < every_s:
            return
        last[label] = now
        elapsed = now - started[label]
        eta = f", eta {elapsed / done * (total - done):.0f} s" if 0 < done < total else ""
        console.print(f"{label}: {done}/{total} ({elapsed:.0f} s{eta})", highlight=False)

    return update


def load_or_exit(spec: str, dtype: str, cache: bool) -> Model:
    """Load a model spec; a bad spec or an unreachable server exits with one clear line."""
    from alignlab.models.spec import load_model

    try:
        return load_model(spec, dtype=dtype, cache=cache)
    except (ValueError, RuntimeError, OSError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err


@contextmanager
def resumable(run: Run) -> Iterator[Any]:
    """Progress bars for a run; a data, config or model error becomes a clear message (exit 2) that says how to
    finish the run, since every completed sample is already saved."""
    from alignlab.models.types import ModelError

    try:
        with progress_bars() as update:
            yield update
    except (FileNotFoundError, ValueError, ModelError) as err:
        console.print(f"[red]error:[/red] {err}\n(completed samples are saved; finish with --resume {run.path})")
        raise typer.Exit(2) from err


def finish_run(run: Run, summary: dict[str, Any]) -> None:
    """Write summary.json and the report, then print where they are and the tables."""
    from alignlab.report import write_report

    run.finish(summary)
    html = write_report(run.path)
    console.print(f"[green]run complete[/green]: {run.path}\nreport: {html}")
    print_tables(summary)


def print_tables(summary: dict[str, Any]) -> None:
    for section in summary.get("sections", []):
        for table in section.get("tables", []):
            out = Table(title=table["title"])
            for col in table["columns"]:
                out.add_column(str(col))
            for row in table["rows"]:
                out.add_row(*["" if c is None else str(c) for c in row])
            Console().print(out)


