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
from functools import partial
from pathlib import Path
from typing import Any

import typer

from alignlab.cli_common import (
    build_command,
    config_from_cli,
    config_parameters,
    fail,
    load_or_exit,
    run_in_cli,
    shared_parameters,
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
from alignlab.extras import MissingExtra
from alignlab.models.types import ModelError

constitution_app = typer.Typer(no_args_is_help=True, help=(
    "Constitutional AI: critique/revision data, AI feedback labels, preference models, RL (RLOO/GRPO/DPO) and "
    "trait PMs evaluated on persona evals."))

def _parameters(config_cls: type, shared: tuple[str, ...]) -> list[inspect.Parameter]:
    """The config's flags (a trainer's own before the shared training flags; a field without a default is a
    required option), with ``--model`` first and the other shared options last."""
    params = config_parameters(config_cls, required=True)
    if issubclass(config_cls, TrainConfig):
        common = {f.name for f in dataclasses.fields(TrainConfig)}
        params = [p for p in params if p.name not in common] + [p for p in params if p.name in common]
    extra = shared_parameters(*shared)
    return extra[:1] + params + extra[1:] if shared[:1] == ("model",) else params + extra


def _command(config_cls: type, shared: tuple[str, ...], help: str) -> Callable[..., None]:
    def body(**values: Any) -> None:
        options = {name: values.pop(name) for name in shared}
        resume = options.get("resume")
        if resume:
            _check_resume(config_cls, resume)
        config = None if resume else config_from_cli(config_cls, values)
        _execute(config, options.get("model"), out=options["out"], resume=resume,
                 dtype=options.get("dtype", "float32"), cache=options.get("cache", True))

    return build_command(_parameters(config_cls, shared), body, help=help, name=config_cls.__name__)


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


def _execute(config: Any, model: str | None, **options: Any) -> None:
    """Run one command; only revise and label runs can be resumed, so only they get the --resume hint."""
    from alignlab.constitution.runner import run_command
    from alignlab.constitution.studies import RESUMABLE

    resumable = {s.name for s in RESUMABLE}
    run_in_cli(partial(run_command, config, model, load=load_or_exit, **options),
               errors=(OSError, ValueError, ModelError, MissingExtra),
               resumable=lambda run: run.manifest["study"] in resumable)


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
