"""``alignlab fairness``: bias and moral self-correction (Ganguli et al. 2023) on BBQ, Winogender and the
admissions discrimination task, under the interventions Q, Q+IF, Q+IF+CoT (and Q+Match Stats for Winogender)."""

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
    progress_bars,
    split_specs,
)

fairness_app = typer.Typer(no_args_is_help=True, help=(
    "Bias and moral self-correction (Ganguli et al. 2023): BBQ, Winogender, admissions discrimination, each under "
    "Q, Q+IF and Q+IF+CoT."))

InterventionsOpt = Annotated[str | None, typer.Option(
    "--interventions", help="Comma-separated: q, if, cot (Winogender also match-stats). Default: all.")]
FormatOpt = Annotated[str, typer.Option("--format", help="raw_hh (the paper's Human/Assistant text) or chat.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="At most this many items (BBQ: per category; a "
                                                              "seeded subset).")]
CotLimitOpt = Annotated[int | None, typer.Option("--cot-limit", help="Of those, at most this many under Q+IF+CoT "
                                                                     "(BBQ: per category).")]
CotTokensOpt = Annotated[int, typer.Option("--cot-tokens", help="Tokens of sampled reasoning (the paper: 256).")]
CotTempOpt = Annotated[float, typer.Option("--cot-temperature", help="Sampling temperature of the reasoning.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seeds subsets, CoT sampling and the bootstrap.")]
ChunkOpt = Annotated[int, typer.Option("--chunk-size", help="Items per model call (saved as they finish).")]


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _execute(study: str, make_config: Callable[[dict[str, Any]], Any], options: dict[str, Any],
             runner: Callable[..., dict[str, Any]], *, model: str, models: str | None, out: Path,
             resume: Path | None, dtype: str, cache: bool) -> None:
    """Create (or resume) the run, evaluate each model in turn, then write the summary and the report."""
    from alignlab.models.types import ModelError
    from alignlab.runs.run import Run

    if resume:
        run = Run.resume(resume)
        cfg = run.manifest["config"]
        config, specs, dtype = make_config(cfg["study"]), cfg["models"], cfg["dtype"]
    else:
        try:
            config = make_config({k: v for k, v in options.items() if v is not None})
        except (ValueError, TypeError) as err:
            console.print(f"[red]error:[/red] {err}")
            raise typer.Exit(2) from err
        specs = split_specs(model, models)
        run = Run.create(f"fairness-{study}", {"study": config.as_dict(), "models": specs, "dtype": dtype},
                         root=out, seed=config.seed, command=command_line())
    console.print(f"run directory: {run.path}")
    summary = None
    try:
        with progress_bars() as update:
            for spec in specs:
                m = load_or_exit(spec, dtype, cache)
                summary = runner(run, [m], config, progress=update)
                m.close()
    except (FileNotFoundError, ValueError, ModelError) as err:
        console.print(f"[red]error:[/red] {err}\n(completed samples are saved; finish with --resume {run.path})")
        raise typer.Exit(2) from err
    finish_run(run, summary)


@fairness_app.command("bbq")
def bbq(
    model: ModelOpt = "embedded", models_: ModelsOpt = None, interventions: InterventionsOpt = None,
    categories: Annotated[str, typer.Option("--categories", help="Comma-separated BBQ categories, 'paper' (the "
                                                                 "paper's 9) or 'all' (11).")] = "paper",
    prompt_format: FormatOpt = "raw_hh", limit: LimitOpt = None, cot_limit: CotLimitOpt = None,
    cot_tokens: CotTokensOpt = 256, cot_temperature: CotTempOpt = 1.0, seed: SeedOpt = 0, data: DataOpt = None,
    out: OutOpt = Path("runs"), resume: ResumeOpt = None, dtype: DtypeOpt = "float32", cache: CacheOpt = True,
    chunk_size: ChunkOpt = 32,
) -> None:
    """BBQ accuracy and bias scores (s_AMB, s_DIS) per intervention and category, with CIs and a report."""
    from alignlab.fairness.bbq import BBQConfig, run_bbq
    from alignlab.fairness.bbq_data import ALL_CATEGORIES, PAPER_CATEGORIES

    named = {"paper": list(PAPER_CATEGORIES), "all": list(ALL_CATEGORIES)}.get(categories, _split(categories))
    options = {"interventions": _split(interventions), "categories": named, "prompt_format": prompt_format,
               "limit": limit, "cot_limit": cot_limit, "cot_tokens": cot_tokens, "cot_temperature": cot_temperature,
               "seed": seed, "data": data, "chunk_size": chunk_size}
    _execute("bbq", lambda o: BBQConfig(**o), options, run_bbq, model=model, models=models_, out=out,
             resume=resume, dtype=dtype, cache=cache)


@fairness_app.command("winogender")
def winogender(
    model: ModelOpt = "embedded", models_: ModelsOpt = None, interventions: InterventionsOpt = None,
    prompt_format: FormatOpt = "raw_hh", limit: LimitOpt = None, cot_limit: CotLimitOpt = None,
    cot_tokens: CotTokensOpt = 256, cot_temperature: CotTempOpt = 1.0, seed: SeedOpt = 0, data: DataOpt = None,
    out: OutOpt = Path("runs"), resume: ResumeOpt = None, dtype: DtypeOpt = "float32", cache: CacheOpt = True,
    chunk_size: ChunkOpt = 32,
) -> None:
    """Winogender pronoun probabilities per occupation and rho with occupational statistics, per intervention."""
    from alignlab.fairness.winogender import WinogenderConfig, run_winogender

    options = {"interventions": _split(interventions), "prompt_format": prompt_format, "limit": limit,
               "cot_limit": cot_limit, "cot_tokens": cot_tokens, "cot_temperature": cot_temperature, "seed": seed,
               "data": data, "chunk_size": chunk_size}
    _execute("winogender", lambda o: WinogenderConfig(**o), options, run_winogender, model=model, models=models_,
             out=out, resume=resume, dtype=dtype, cache=cache)


@fairness_app.command("discrimination")
def discrimination(
    model: ModelOpt = "embedded", models_: ModelsOpt = None, interventions: InterventionsOpt = None,
    source: Annotated[str, typer.Option("--source", help="grid (generated students), csv (--path: your student "
                                                         "records) or discrim-eval.")] = "grid",
    path: Annotated[str | None, typer.Option("--path", help="CSV with lsat,gpa columns (source csv); explicit, "
                                                            "implicit or a .jsonl (source discrim-eval).")] = None,
    lsat: Annotated[str | None, typer.Option("--lsat", help="Grid LSAT scores, comma-separated.")] = None,
    gpa: Annotated[str | None, typer.Option("--gpa", help="Grid GPAs, comma-separated.")] = None,
    prompt_format: FormatOpt = "raw_hh", limit: LimitOpt = None, cot_limit: CotLimitOpt = None,
    cot_tokens: CotTokensOpt = 256, cot_temperature: CotTempOpt = 1.0, seed: SeedOpt = 0, data: DataOpt = None,
    out: OutOpt = Path("runs"), resume: ResumeOpt = None, dtype: DtypeOpt = "float32", cache: CacheOpt = True,
    chunk_size: ChunkOpt = 32,
) -> None:
    """Admissions demographic parity (Black - white, female - male p(yes)) or discrim-eval logit gaps."""
    from alignlab.fairness.discrimination import DiscriminationConfig, run_discrimination

    try:
        grid = {name: None if text is None else [float(v) for v in _split(text) or []]
                for name, text in (("lsat", lsat), ("gpa", gpa))}
    except ValueError as err:
        console.print(f"[red]error:[/red] --lsat and --gpa take comma-separated numbers ({err})")
        raise typer.Exit(2) from err
    options = {"interventions": _split(interventions), "source": source, "path": path, **grid,
               "prompt_format": prompt_format, "limit": limit, "cot_limit": cot_limit, "cot_tokens": cot_tokens,
               "cot_temperature": cot_temperature, "seed": seed, "data": data, "chunk_size": chunk_size}
    _execute("discrimination", lambda o: DiscriminationConfig(**o), options, run_discrimination, model=model,
             models=models_, out=out, resume=resume, dtype=dtype, cache=cache)
