"""``alignlab redteam``: red teaming after Ganguli et al. 2022 (attacks on target types, min-harmlessness
scoring, success rates, the attack landscape) with LM-generated attacks after Perez et al. 2022.

``generate`` writes attacks into a run directory; ``attack`` plays attacks against targets, scores and maps them;
``score`` adds a scorer to a run (or scores a transcript file); ``map`` draws the landscape of a run or a file.
Each command's options are the fields of its config (``alignlab/redteam/config.py``) plus --out, --dtype and
--cache (and --resume for ``attack``); the command calls :func:`alignlab.redteam.run`'s runner.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from alignlab.cli_common import (
    CacheOpt,
    DtypeOpt,
    OutOpt,
    ResumeOpt,
    command_line,
    config_from_cli,
    config_parameters,
    console,
    load_or_exit,
    print_tables,
    progress_bars,
)
from alignlab.redteam.studies import ATTACK, GENERATE, MAP, SCORE, run_redteam
from alignlab.runs.study import Study

redteam_app = typer.Typer(no_args_is_help=True, help=(
    "Red teaming (Ganguli et al. 2022): attack target types, score harmlessness per turn, compare success rates, "
    "map the attack landscape."))


def _execute(study: Study[Any], config: Any, *, out: Path, resume: Path | None, dtype: str, cache: bool) -> None:
    """Run one command with progress bars; a data, config or model error is one line (exit 2)."""
    from alignlab.models.types import ModelError

    opened: list[Any] = []

    def on_open(run: Any) -> None:
        opened.append(run)
        console.print(f"run directory: {run.path}")

    try:
        with progress_bars() as update:
            run, summary = run_redteam(study, config, out=out, resume=resume, dtype=dtype, cache=cache,
                                       progress=update, load=load_or_exit, command=command_line(), on_open=on_open)
    except (FileNotFoundError, ValueError, TypeError, ModelError, ModuleNotFoundError) as err:
        hint = f"\n(completed samples are saved; finish with --resume {opened[0].path})" if opened else ""
        console.print(f"[red]error:[/red] {escape(str(err))}{hint}")
        raise typer.Exit(2) from err
    console.print(f"[green]run complete[/green]: {run.path}\nreport: {run.path / 'report.html'}")
    print_tables(summary)


def _command(study: Study[Any], help: str, *, resumable: bool = False) -> Callable[..., None]:
    """A typer command: the config's fields (a field without default is a required argument), then --out,
    --resume (``attack`` only), --dtype and --cache."""

    def command(**values: Any) -> None:
        shared = {name: values.pop(name, None) for name in ("out", "resume", "dtype", "cache")}
        config = None if shared["resume"] else config_from_cli(study.config, values)
        _execute(study, config, **shared)

    required = {f.name for f in dataclasses.fields(study.config)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    params = [p.replace(default=inspect.Parameter.empty) if p.name in required else p
              for p in config_parameters(study.config)]
    shared = [("out", OutOpt, Path("runs")), ("resume", ResumeOpt, None), ("dtype", DtypeOpt, "float32"),
              ("cache", CacheOpt, True)]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
               for name, kind, default in shared if resumable or name != "resume"]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = help
    command.__name__ = study.name.replace("-", "_")
    return command


redteam_app.command("attack")(_command(ATTACK, (
    "Attack targets, score every assistant turn, report success rates, distributions and the landscape."),
    resumable=True))
redteam_app.command("generate")(_command(GENERATE, (
    "Write LM-generated attacks (Perez et al. 2022) to a run directory's attacks.jsonl, for ``--source jsonl:``.")))
redteam_app.command("score")(_command(SCORE, (
    "Score a run's conversations with more scorers (in place), or score a transcript file (a new run).")))
redteam_app.command("map")(_command(MAP, (
    "The attack landscape of a run or a transcript file: embeddings, UMAP, clusters with LM labels, tag counts.")))
