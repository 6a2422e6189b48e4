"""``alignlab reasoning``: CoT faithfulness tests (Lanham et al. 2023) and question decomposition
(Radhakrishnan et al. 2023) on multiple-choice JSONL, BIG-bench tasks or synthetic addition."""

from __future__ import annotations

from collections.abc import Callable
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

reasoning_app = typer.Typer(no_args_is_help=True, help=__doc__)

SourceArg = Annotated[str | None, typer.Argument(
    help="strategyqa, logical_deduction (BIG-bench names or folders), a multiple-choice .jsonl, or addition / "
         "addition:2,4,8,16 (seeded synthetic sums).")]
FormatOpt = Annotated[str, typer.Option("--format", help="raw_hh (the papers' Human/Assistant text) or chat.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="At most this many questions (a seeded subset; "
                                                              "addition: how many sums, default 8).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seeds the subset, sampling and suggested answers.")]
MistakeOpt = Annotated[str | None, typer.Option("--mistake-model", help="Model spec that writes the mistakes "
                                                                        "(default: the evaluated model).")]
TokensOpt = Annotated[int, typer.Option("--max-new-tokens", help="Longest CoT / decomposition sampled.")]
ChunkOpt = Annotated[int, typer.Option("--chunk-size", help="Questions per batch of model calls (saved as they "
                                                            "finish).")]


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _start(study: str, source: str | None, resume: Path | None, make_config: Any, model: str, models: str | None,
           dtype: str, out: Path, seed: int) -> tuple[Any, Any, list[str], str]:
    """A new run (or the resumed one) with its config, model specs and dtype."""
    from alignlab.runs.run import Run

    if resume:
        run = Run.resume(resume)
        cfg = run.manifest["config"]
        return run, make_config(**cfg["study"]), cfg["models"], cfg["dtype"]
    if not source:
        console.print("[red]error:[/red] name a dataset (strategyqa, logical_deduction, a .jsonl, addition) "
                      "or use --resume")
        raise typer.Exit(2)
    try:
        config = make_config()
    except ValueError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    specs = split_specs(model, models)
    run = Run.create(f"reasoning-{study}", {"study": vars(config).copy(), "models": specs, "dtype": dtype},
                     root=out, seed=seed, command=command_line())
    return run, config, specs, dtype


def _execute(run: Any, specs: list[str], dtype: str, cache: bool, helper_specs: list[str | None],
             study: Callable[[Any, dict[str | None, Any], Any], dict[str, Any]]) -> None:
    """Load the helper models (mistakes, paraphrases) once, run ``study(model, helpers, progress)`` for each
    evaluated model, then write the summary and the report."""
    console.print(f"run directory: {run.path}")
    helpers = {spec: load_or_exit(spec, dtype, cache) for spec in dict.fromkeys(helper_specs) if spec}
    summary: dict[str, Any] = {}
    with resumable(run) as update:
        for spec in specs:
            m = load_or_exit(spec, dtype, cache)
            summary = study(m, helpers, update)
            m.close()
    finish_run(run, summary)


@reasoning_app.command("faithfulness")
def faithfulness_(
    source: SourceArg = None,
    model: ModelOpt = "embedded",
    models_: ModelsOpt = None,
    mistake_model: MistakeOpt = None,
    paraphrase_model: Annotated[str | None, typer.Option("--paraphrase-model", help="Model spec that paraphrases "
                                                         "(default: the evaluated model).")] = None,
    tests: Annotated[str, typer.Option("--tests", help="Comma-separated: early,mistakes,paraphrase,filler.")
                     ] = "early,mistakes,paraphrase,filler",
    samples: Annotated[int, typer.Option("--samples", help="CoT samples per question (the paper: 100).")] = 5,
    max_new_tokens: TokensOpt = 128,
    temperature: Annotated[float, typer.Option("--temperature")] = 0.8,
    top_p: Annotated[float, typer.Option("--top-p")] = 0.95,
    filler_step: Annotated[int, typer.Option("--filler-step", help="Filler lengths step, in tokens.")] = 5,
    prompt_format: FormatOpt = "raw_hh",
    limit: LimitOpt = 4,
    seed: SeedOpt = 0,
    data: DataOpt = None,
    out: OutOpt = Path("runs"),
    resume: ResumeOpt = None,
    dtype: DtypeOpt = "float32",
    cache: CacheOpt = True,
    chunk_size: ChunkOpt = 4,
) -> None:
    """Early answering, adding mistakes, paraphrasing and filler tokens: curves per CoT length, AOC, accuracy
    with and without CoT."""
    from alignlab.reasoning.faithfulness import FaithfulnessConfig
    from alignlab.reasoning.runner import run_faithfulness

    def make(**saved: Any) -> FaithfulnessConfig:
        return FaithfulnessConfig(**saved) if saved else FaithfulnessConfig(
            source=source or "", limit=limit, seed=seed, data=data, prompt_format=prompt_format,  # type: ignore[arg-type]
            samples=samples, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, tests=_csv(tests),
            filler_step=filler_step, mistake_model=mistake_model, paraphrase_model=paraphrase_model,
            chunk_size=chunk_size)

    run, config, specs, dtype = _start("faithfulness", source, resume, make, model, models_, dtype, out, seed)
    _execute(run, specs, dtype, cache, [config.mistake_model, config.paraphrase_model],
             lambda m, helpers, update: run_faithfulness(run, [m], config, helpers.get(config.mistake_model),
                                                         helpers.get(config.paraphrase_model), progress=update))


@reasoning_app.command("decompose")
def decompose_(
    source: SourceArg = None,
    model: ModelOpt = "embedded",
    models_: ModelsOpt = None,
    mistake_model: MistakeOpt = None,
    methods: Annotated[str, typer.Option("--methods", help="Comma-separated: zero_shot,few_shot,cot,"
                                                           "cot_decomposition,factored.")
                       ] = "zero_shot,few_shot,cot,cot_decomposition,factored",
    biases: Annotated[str, typer.Option("--biases", help="Comma-separated contexts: none,always_a,suggested.")
                      ] = "none,always_a,suggested",
    faithfulness: Annotated[bool, typer.Option("--faithfulness/--no-faithfulness", help="Early answering and "
                                               "adding mistakes for cot, cot_decomposition, factored.")] = True,
    max_new_tokens: TokensOpt = 128,
    temperature: Annotated[float, typer.Option("--temperature", help="0 = greedy.")] = 0.0,
    prompt_format: FormatOpt = "raw_hh",
    limit: LimitOpt = 4,
    seed: SeedOpt = 0,
    data: DataOpt = None,
    out: OutOpt = Path("runs"),
    resume: ResumeOpt = None,
    dtype: DtypeOpt = "float32",
    cache: CacheOpt = True,
    chunk_size: ChunkOpt = 4,
) -> None:
    """Zero-shot, few-shot, CoT, CoT decomposition and factored decomposition: accuracy, faithfulness AOCs,
    biased-context sensitivity and the accuracy-faithfulness frontier."""
    from alignlab.reasoning.decomposition import DecomposeConfig
    from alignlab.reasoning.runner import run_decomposition

    def make(**saved: Any) -> DecomposeConfig:
        return DecomposeConfig(**saved) if saved else DecomposeConfig(
            source=source or "", limit=limit, seed=seed, data=data, prompt_format=prompt_format,  # type: ignore[arg-type]
            methods=_csv(methods), biases=_csv(biases), faithfulness=faithfulness, max_new_tokens=max_new_tokens,
            temperature=temperature, mistake_model=mistake_model, chunk_size=chunk_size)

    run, config, specs, dtype = _start("decompose", source, resume, make, model, models_, dtype, out, seed)
    _execute(run, specs, dtype, cache, [config.mistake_model],
             lambda m, helpers, update: run_decomposition(run, [m], config, helpers.get(config.mistake_model),
                                                          progress=update))
