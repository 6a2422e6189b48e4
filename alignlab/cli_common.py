"""What every ``alignlab`` command shares: option types, commands built from a study's config, progress bars,
model loading, one-line errors."""

from __future__ import annotations

import dataclasses
import inspect
import shlex
import sys
import time
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from alignlab.data.errors import DataError
from alignlab.extras import MissingExtra
from alignlab.models.types import ModelError
from alignlab.runs.config import Flag, flag_of

if TYPE_CHECKING:
    from alignlab.models.base import Model
    from alignlab.runs.run import Run
    from alignlab.runs.study import Study

console = Console(stderr=True)


def check_model_option(param: typer.CallbackParam, value: str | None) -> str | None:
    """Typer callback of every model-spec option: a bad spec (``hf:/no/such/folder``, ``openai:x@notaurl``) or
    list of specs exits with one line naming the option before anything runs."""
    check_specs([(param.opts[0] if param.opts else str(param.name), value)])
    return value


def check_specs(named: list[tuple[str, str | None]]) -> None:
    """``[(option, spec or comma-separated specs)]``: the first bad spec exits with ``error: OPTION: why`` (see
    :func:`alignlab.models.spec.check_spec`; nothing is loaded or downloaded)."""
    from alignlab.models.spec import check_spec, split_specs

    for option, value in named:
        for spec in split_specs(value or ""):
            try:
                check_spec(spec)
            except ValueError as err:
                fail(f"{option}: {err}")


def check_dtype_option(value: str) -> str:
    """Typer callback of ``--dtype``: an unknown dtype exits with one line before anything runs."""
    if value != "float32":
        from alignlab.models.hf import DTYPES

        if value not in DTYPES:
            fail(f"--dtype {value!r} is not one of {', '.join(sorted(DTYPES))}")
    return value


ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model spec: embedded, hf:<id-or-path>, "
                                                                  "vllm:<id-or-path>, openai:<model>@<base_url>; "
                                                                  "options after ?: hf:<id>?revision=..",
                                       callback=check_model_option)]
ModelsOpt = Annotated[str | None, typer.Option("--models", help="Comma-separated specs for a scaling run.",
                                               callback=check_model_option)]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder that receives the run directory.")]
ResumeOpt = Annotated[Path | None, typer.Option("--resume", help="Finish an interrupted run directory.")]
DataOpt = Annotated[str | None, typer.Option("--data", help="Dataset path (else $ALIGNLAB_DATA, the user "
                                                               "cache, then a download).")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="float32 (default, exact) or bfloat16.",
                                       callback=check_dtype_option)]
CacheOpt = Annotated[bool, typer.Option("--cache/--no-cache", help="Use the persistent request cache.")]


def command_line() -> str:
    return "alignlab " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def split_specs(model: str, models: str | None) -> list[str]:
    from alignlab.models import spec

    return spec.split_specs(models) if models else [model]


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
        fail(str(err))


def print_tables(summary: dict[str, Any]) -> None:
    for section in summary.get("sections", []):
        for table in section.get("tables", []):
            out = Table(title=table["title"])
            for col in table["columns"]:
                out.add_column(str(col))
            for row in table["rows"]:
                out.add_row(*["" if c is None else str(c) for c in row])
            Console().print(out)


# -- study commands built from the study's config --------------------------------------------------------------


def config_parameters(config_cls: type, *, required: bool = False) -> list[inspect.Parameter]:
    """One typer parameter per CLI field of a study config (see ``alignlab.runs.config``), in field order. With
    ``required``, a field without a default is required by typer itself (else :func:`config_from_cli` says so)."""
    hints = typing.get_type_hints(config_cls)
    params = []
    for field in dataclasses.fields(config_cls):
        flag = flag_of(field)
        if not flag.cli or not field.init:
            continue
        kind, default = _cli_type(hints[field.name], flag), _cli_default(field)
        text = flag.help + _default_note(field, flag)
        name = flag.name_for(field.name)
        if kind is bool and "/" not in name:  # an on/off switch: --x/--no-x
            name = f"{name}/--no-{name.removeprefix('--')}"
        names = [name] + ([flag.short] if flag.short else [])
        info = (typer.Argument(help=text, show_default=False, metavar=field.name.upper()) if flag.argument else
                typer.Option(*names, help=text, show_default=default is not None))
        needed = required and _has_no_default(field)
        params.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY,
                                        default=inspect.Parameter.empty if needed else default,
                                        annotation=Annotated[kind, info]))
    return params


def config_from_cli(config_cls: type, values: dict[str, Any]) -> Any:
    """Build the config from parsed CLI values; a bad or missing value exits with one clear line."""
    kwargs: dict[str, Any] = {}
    missing = []
    for field in dataclasses.fields(config_cls):
        flag = flag_of(field)
        if not flag.cli or field.name not in values:
            continue
        value = values[field.name]
        if value is None or value == []:
            if _has_no_default(field):
                missing.append(field.name.upper() if flag.argument else flag.name_for(field.name))
            continue
        if flag.csv and isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        kwargs[field.name] = list(value) if isinstance(value, (list, tuple)) else value
    if missing:
        fail(f"missing {', '.join(missing)} (or use --resume RUN_DIR)")
    try:
        config = config_cls(**kwargs)
    except (ValueError, TypeError) as err:
        fail(str(err))
    flags = {f.name: flag_of(f).name_for(f.name) for f in dataclasses.fields(config_cls)}
    check_specs([(flags.get(name, name), spec) for name, spec in getattr(config, "model_specs", list)()])
    return config


def fail(message: str, code: int = 2) -> typing.NoReturn:
    """Print ``error: message`` (one line, never wrapped: a message that names a file and line stays greppable)
    and exit with ``code``."""
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


SHARED = {"model": (ModelOpt, "embedded"), "models": (ModelsOpt, None), "out": (OutOpt, Path("runs")),
          "resume": (ResumeOpt, None), "dtype": (DtypeOpt, "float32"), "cache": (CacheOpt, True)}
RUN_ERRORS: tuple[type[BaseException], ...] = (FileNotFoundError, ValueError, TypeError, ModelError, MissingExtra)


def shared_parameters(*names: str, **extra: tuple[Any, Any]) -> list[inspect.Parameter]:
    """Typer parameters for the shared options ``names`` (``model``, ``models``, ``out``, ``resume``, ``dtype``,
    ``cache``) or for ``extra`` ones given as ``name=(annotated type, default)``."""
    options = {**SHARED, **extra}
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=options[name][1],
                              annotation=options[name][0]) for name in names]


def build_command(params: list[inspect.Parameter], body: Callable[..., None], *, help: str,
                  name: str) -> Callable[..., None]:
    """A typer command with exactly ``params`` (in that order) that calls ``body(**values)``."""

    def command(**values: Any) -> None:
        body(**values)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = help
    command.__name__ = name.replace("-", "_")
    return command


def run_in_cli(call: Callable[..., tuple[Any, dict[str, Any]]], *,
               errors: tuple[type[BaseException], ...] = RUN_ERRORS,
               resumable: Callable[[Run], bool] = lambda run: True) -> tuple[Any, dict[str, Any]]:
    """Call ``call(progress=, command=, on_open=)`` (a study's ``run``) under progress bars; print where the run is,
    then its tables. One of ``errors`` becomes one red line (exit 2) naming the run to resume when it is
    ``resumable``: every completed sample is already saved."""
    opened: list[Run] = []

    def on_open(run: Run) -> None:
        opened.append(run)
        if run.writer:  # under torchrun, rank 0 speaks for every rank
            console.print(f"run directory: {run.path}")

    try:
        with progress_bars() as update:
            run, summary = call(progress=update, command=command_line(), on_open=on_open)
    except errors as err:
        hint = (f"\n(completed samples are saved; finish with --resume {opened[0].path})"
                if opened and resumable(opened[0]) and not isinstance(err, DataError) else "")
        fail(f"{err}{hint}")  # the run is marked failed with the error (runs.study.marking_failure)
    if run is not None and getattr(run, "writer", True):  # None or not the writer: a torchrun rank other than 0
        console.print(f"[green]run complete[/green]: {run.path}\nreport: {run.path / 'report.html'}")
        print_tables(summary)
    return run, summary


def study_command(study: Study[Any], *, help: str, multi_model: bool = True) -> Callable[..., None]:
    """A typer command for ``study``: the config's fields, then --model/--models, --out, --resume, --dtype and
    --cache. It calls :func:`alignlab.runs.study.run_study`, the same call as the Python API."""
    from alignlab.runs.study import run_study

    def body(**values: Any) -> None:
        shared = {name: values.pop(name, None) for name in SHARED}
        config = None if shared["resume"] else config_from_cli(study.config, values)
        specs = split_specs(shared["model"], shared["models"])
        run_in_cli(partial(run_study, study, config, specs, out=shared["out"], resume=shared["resume"],
                           dtype=shared["dtype"], cache=shared["cache"], load=load_or_exit))

    names = [name for name in SHARED if multi_model or name != "models"]
    return build_command(config_parameters(study.config) + shared_parameters(*names), body, help=help,
                         name=study.name)


def _cli_type(hint: Any, flag: Flag) -> Any:
    """The type typer parses: list fields as repeated values (or one comma-separated string), Literal as str."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1 else hint
    origin = typing.get_origin(base)
    if origin in (list, tuple):
        item = typing.get_args(base)[0] if typing.get_args(base) else str
        return str | None if flag.csv else list[item] | None  # type: ignore[valid-type]
    if origin is typing.Literal:
        return str
    if base is not hint:
        return base | None
    return hint


def _cli_default(field: dataclasses.Field[Any]) -> Any:
    if field.default is dataclasses.MISSING or isinstance(field.default, (list, tuple)):
        return None
    return field.default


def _has_no_default(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _default_note(field: dataclasses.Field[Any], flag: Flag) -> str:
    if field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
        return f" (default: {(',' if flag.csv else ' ').join(map(str, value))})" if value else ""
    if isinstance(field.default, (list, tuple)) and field.default:
        return f" (default: {','.join(map(str, field.default))})"
    return ""
