"""``alignlab constitution``: Constitutional AI (Bai et al. 2022) and specific vs general principles
(Kundu et al. 2023).

revise -> train-sft; label -> train-pm -> train-rl (rloo | grpo | dpo); questions -> label -> train-pm -> evaluate-pm.
Each command's options are the fields of its config (``alignlab/constitution/config.py``), and each command is one
call of :func:`alignlab.constitution.run`.
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
from alignlab.constitution.config import (
    EvaluatePMConfig,
    LabelConfig,
    PMConfig,
    QuestionsConfig,
    ReviseConfig,
    RLConfig,
    SLConfig,
    TrainConfig,
)

constitution_app = typer.Typer(no_args_is_help=True, help=(
    "Constitutional AI: critique/revision data, AI feedback labels, preference models, RL (RLOO/GRPO/DPO) and "
    "trait PMs evaluated on persona evals."))

SHARED = {"model": (ModelOpt, "embedded"), "out": (OutOpt, Path("runs")), "resume": (ResumeOpt, None),
          "dtype": (DtypeOpt, "float32"), "cache": (CacheOpt, True)}


def _parameters(config_cls: type, shared: tuple[str, ...]) -> list[inspect.Parameter]:
    """The config's flags (a trainer's own before the shared training flags; a field without a default is a
    required option), with ``--model`` first and the other shared options last."""
    params = config_parameters(config_cls)
    if issubclass(config_cls, TrainConfig):
        common = {f.name for f in dataclasses.fields(TrainConfig)}
        params = [p for p in params if p.name not in common] + [p for p in params if p.name in common]
    required = {f.name for f in dataclasses.fields(config_cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    params = [p.replace(default=inspect.Parameter.empty) if p.name in required else p for p in params]
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=SHARED[name][1],
                               annotation=SHARED[name][0]) for name in shared]
    return extra[:1] + params + extra[1:] if shared[:1] == ("model",) else params + extra


def _command(config_cls: type, shared: tuple[str, ...], help: str) -> Callable[..., None]:
    def command(**values: Any) -> None:
        options = {name: values.pop(name) for name in shared}
        resume = options.get("resume")
        if resume:
            _check_resume(config_cls, resume)
        config = None if resume else config_from_cli(config_cls, values)
        _execute(config, options.get("model"), out=options["out"], resume=resume,
                 dtype=options.get("dtype", "float32"), cache=options.get("cache", True))

    params = _parameters(config_cls, shared)
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = help
    command.__name__ = config_cls.__name__
    return command


def _check_resume(config_cls: type, resume: Path) -> None:
    """Refuse, before anything changes, to resume a run of another command."""
    from alignlab.constitution.studies import STUDIES
    from alignlab.runs.run import Run

    try:
        found = Run.read_manifest(resume).get("study")
    except (OSError, ValueError) as err:
        fail(str(err))
    mine = [s.name for s in STUDIES if s.config is config_cls]
    if found not in mine:
        fail(f"{resume} is a {found!r} run, not {mine[0]!r}: resume it with its own command")


def _execute(config: Any, model: str | None, *, out: Path, resume: Path | None, dtype: str, cache: bool) -> None:
    """Run one command: progress bars, one-line errors (exit 2), then the summary tables."""
    from alignlab.constitution.runner import run_command
    from alignlab.constitution.studies import RESUMABLE
    from alignlab.models.types import ModelError
    from alignlab.runs.run import Run

    opened: list[Run] = []

    def on_open(run: Run) -> None:
        opened.append(run)
        console.print(f"run directory: {run.path}")

    try:
        with progress_bars() as update:
            run, summary = run_command(config, model, out=out, resume=resume, dtype=dtype, cache=cache,
                                       progress=update, load=load_or_exit, command=command_line(), on_open=on_open)
    except (OSError, ValueError, ModelError) as err:
        resumable = opened and opened[0].manifest["study"] in {s.name for s in RESUMABLE}
        hint = f"\n(completed samples are saved; finish with --resume {opened[0].path})" if resumable else ""
        console.print(f"[red]error:[/red] {escape(str(err))}{hint}")
        raise typer.Exit(2) from err
    console.print(f"[green]run complete[/green]: {run.path}\nreport: {run.path / 'report.html'}")
    print_tables(summary)


GENERATE = ("model", "out", "resume", "dtype", "cache")
COMMANDS = (
    ("revise", ReviseConfig, GENERATE,
     "SL-CAI data: responses, N critique/revision rounds; writes revisions.jsonl, sft.jsonl, dpo.jsonl."),
    ("label", LabelConfig, GENERATE,
     "AI feedback: soft labels P(A better) for response pairs; writes pairs.jsonl and labels.jsonl."),
    ("questions", QuestionsConfig, ("model", "out", "dtype", "cache"),
     "Trait questions written by the model (Kundu et al. §2.2), kept apart from the persona evals."),
    ("train-sft", SLConfig, ("out",),
     "SL-CAI: supervised fine-tuning on the revisions (TRL SFTTrainer); saves <run>/policy."),
    ("train-pm", PMConfig, ("out",),
     "Preference model on soft AI labels mixed with human comparisons; held-out accuracy; saves <run>/pm."),
    ("train-rl", RLConfig, ("out",),
     "RL-CAI: RLOO/GRPO against a PM with a KL term, or DPO on revision pairs; saves <run>/policy."),
    ("evaluate-pm", EvaluatePMConfig, ("out",),
     "Harmless-response win rate on persona evals (Kundu et al. §2.4) and accuracy on comparison files."),
)
for _name, _config, _shared, _help in COMMANDS:
    constitution_app.command(_name)(_command(_config, _shared, _help))
