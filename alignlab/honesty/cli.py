"""``alignlab honesty``: Kadavath et al. 2022 — ``calibration`` (multiple choice, §3), ``ptrue`` (self-evaluation,
§4) and ``pik`` (a trained P(IK) head, §5)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from alignlab.cli_common import (
    CacheOpt,
    DataOpt,
    DtypeOpt,
    ModelOpt,
    ModelsOpt,
    OutOpt,
    ResumeOpt,
    command_line,
    console,
    finish_run,
    load_or_exit,
    resumable,
    split_specs,
)

honesty_app = typer.Typer(no_args_is_help=True, help=(
    "Honesty (Kadavath et al. 2022): multiple-choice calibration, P(True) self-evaluation, trained P(IK)."))

SeedOpt = Annotated[int, typer.Option("--seed", help="Seeds subsets, few-shot draws, sampling and training.")]


def _execute(study: str, config: Any, cls: type, specs: list[str], *, dtype: str, out: Path, seed: int,
             resume: Path | None, cache: bool, runner: Callable[[Any, Any, Any, Any], dict[str, Any]]) -> None:
    """Create (or resume, with its saved config and models) a run, call ``runner(run, model, config, progress)``
    for each model, then write the summary and report."""
    from alignlab.runs.run import Run

    if resume:
        run = Run.resume(resume)
        saved = run.manifest["config"]
        if run.manifest["study"] != study:
            console.print(f"[red]error:[/red] {resume} is a {run.manifest['study']} run, not {study}")
            raise typer.Exit(2)
        config = cls(**{k: v for k, v in saved["study"].items() if k != "errors"})
        specs, dtype = saved["models"], saved["dtype"]
    else:
        run = Run.create(study, {"study": asdict(config), "models": specs, "dtype": dtype}, root=out, seed=seed,
                         command=command_line())
    console.print(f"run directory: {run.path}")
    with resumable(run) as update:
        for spec in specs:
            m = load_or_exit(spec, dtype, cache)
            summary = runner(run, m, config, update)
            m.close()
    finish_run(run, summary)


def _config(cls: type, **fields: Any) -> Any:
    try:
        return cls(**fields)
    except ValueError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err


@honesty_app.command("calibration")
def calibration(
    tasks: Annotated[list[str] | None, typer.Argument(help="BIG-bench multiple-choice tasks (names or folders) or "
                                                           "MMLU/ARC/TruthfulQA-style MC .jsonl files.")] = None,
    model: ModelOpt = "embedded",
    models_: ModelsOpt = None,
    variant: Annotated[list[str] | None, typer.Option("--variant", help="standard, none_of_the_above or "
                                                                         "true_false (repeatable).")] = None,
    shots: Annotated[int, typer.Option("--shots", help="k-shot examples from the same task (paper: 0 or 5).")] = 0,
    temperature: Annotated[float, typer.Option("--temperature", help="Fixed temperature reported next to T=1 and "
                                                                     "the fitted T (paper: 2.5).")] = 2.5,
    fit_fraction: Annotated[float, typer.Option("--fit-fraction", help="Held-out share of items used to fit "
                                                                       "T.")] = 0.3,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many questions per task.")] = None,
    seed: SeedOpt = 0,
    data: DataOpt = None,
    out: OutOpt = Path("runs"),
    resume: ResumeOpt = None,
    dtype: DtypeOpt = "float32",
    cache: CacheOpt = True,
) -> None:
    """Calibration of multiple-choice answers: ECE, RMS, Brier, AUROC, temperature scaling, reliability diagrams."""
    from alignlab.honesty.calibration import CalibrationConfig, run_calibration

    config = None
    if not resume:
        if not tasks:
            console.print("[red]error:[/red] name at least one task (e.g. date_understanding) or use --resume")
            raise typer.Exit(2)
        config = _config(CalibrationConfig, tasks=list(tasks), variants=list(variant or ["standard"]), shots=shots,
                         fixed_temperature=temperature, fit_fraction=fit_fraction, max_items=limit, seed=seed,
                         data=data)
    _execute("honesty-calibration", config, CalibrationConfig, split_specs(model, models_), dtype=dtype, out=out,
             seed=seed, resume=resume, cache=cache,
             runner=lambda run, m, c, update: run_calibration(run, [m], c, update))


@honesty_app.command("ptrue")
def ptrue(
    task: Annotated[str, typer.Option("--task", help="arithmetic[:add+sub+mul[:digits]], triviaqa, or a "
                                                     "TriviaQA-style .jsonl (question, answers).")] = "arithmetic",
    model: ModelOpt = "embedded",
    models_: ModelsOpt = None,
    questions: Annotated[int, typer.Option("--questions", help="Questions to ask.")] = 50,
    samples: Annotated[int, typer.Option("--samples", help="Answers sampled per question at T=1 (also the "
                                                           "brainstormed set).")] = 5,
    shots: Annotated[int, typer.Option("--shots", help="Worked examples in the sampling prompt.")] = 5,
    variant: Annotated[list[str] | None, typer.Option("--variant", help="zero_shot and/or comparison "
                                                                         "(default both).")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens")] = 24,
    seed: SeedOpt = 0,
    data: DataOpt = None,
    out: OutOpt = Path("runs"),
    resume: ResumeOpt = None,
    dtype: DtypeOpt = "float32",
    cache: CacheOpt = True,
) -> None:
    """P(True): sample answers, ask the model whether each is true; AUROC, Brier, conditional accuracy."""
    from alignlab.honesty.ptrue import VARIANTS, PTrueConfig, run_ptrue

    config = None if resume else _config(
        PTrueConfig, task=task, questions=questions, samples=samples, answer_shots=shots,
        variants=list(variant or VARIANTS), max_new_tokens=max_new_tokens, seed=seed, data=data)
    _execute("honesty-ptrue", config, PTrueConfig, split_specs(model, models_), dtype=dtype, out=out, seed=seed,
             resume=resume, cache=cache, runner=lambda run, m, c, update: run_ptrue(run, [m], c, update))


@honesty_app.command("pik")
def pik(
    train_task: Annotated[str, typer.Option("--train-task", help=(
        "Task whose labels train the head (arithmetic[:ops[:digits]], triviaqa or .jsonl)."))] = "arithmetic",
    eval_task: Annotated[list[str] | None, typer.Option("--eval-task", help="Out-of-distribution task "
                                                                            "(repeatable).")] = None,
    model: ModelOpt = "embedded",
    method: Annotated[str, typer.Option("--method", help="probe (frozen model, linear probe) or lora (LoRA + "
                                                         "head).")] = "probe",
    questions: Annotated[int, typer.Option("--questions", help="Questions per task.")] = 200,
    samples: Annotated[int, typer.Option("--samples", help="Samples per question for the label (paper: 30).")] = 30,
    shots: Annotated[int, typer.Option("--shots", help="Worked examples in the prompt (paper: 10).")] = 10,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens")] = 16,
    epochs: Annotated[int, typer.Option("--epochs", help="LoRA training epochs.")] = 2,
    lr: Annotated[float, typer.Option("--lr", help="LoRA learning rate.")] = 5e-4,
    source_material: Annotated[str | None, typer.Option("--source-material", help="JSONL with question, answers, "
                                                                                  "background (§5.5).")] = None,
    head: Annotated[str | None, typer.Option("--head", help="A saved head folder: score with it, no "
                                                            "training.")] = None,
    head_out: Annotated[str | None, typer.Option("--head-out", help="Where to save the trained head (default "
                                                                    "<run>/pik-head).")] = None,
    seed: SeedOpt = 0,
    data: DataOpt = None,
    out: OutOpt = Path("runs"),
    resume: ResumeOpt = None,
    dtype: DtypeOpt = "float32",
    cache: CacheOpt = True,
) -> None:
    """P(IK): labels from sampled answers, a trained value head, in/out-of-distribution AUROC and Brier."""
    from alignlab.honesty.pik import PIKConfig, run_pik

    config = None if resume else _config(
        PIKConfig, train_task=train_task, eval_tasks=list(eval_task or []), method=method, questions=questions,
        samples=samples, answer_shots=shots, max_new_tokens=max_new_tokens, epochs=epochs, lr=lr,
        source_material=source_material, head=head, head_out=head_out, seed=seed, data=data)
    _execute("honesty-pik", config, PIKConfig, [model], dtype=dtype, out=out, seed=seed, resume=resume, cache=cache,
             runner=run_pik)
