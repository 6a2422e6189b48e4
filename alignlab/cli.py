"""The ``alignlab`` command line: one subcommand per study, plus audit, report, serve and models."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from alignlab.behaviors.cli import behaviors_app
from alignlab.behaviors.cli_generate import generate_command
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

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.callback()
def main_options(
    threads: Annotated[int | None, typer.Option(
        "--threads", envvar="ALIGNLAB_THREADS",
        help="torch CPU threads (default: torch's choice). On a shared or busy machine 1 is often fastest.")] = None,
) -> None:
    """Options for every subcommand."""
    if threads is not None:
        if threads < 1:
            console.print(f"[red]error:[/red] --threads must be at least 1, got {threads}")
            raise typer.Exit(2)
        import torch

        torch.set_num_threads(threads)


@app.command()
def models() -> None:
    """List the model spec forms and the embedded default."""
    from alignlab.models.spec import EMBEDDED_NOTE

    table = Table(title="Model specs")
    table.add_column("spec")
    table.add_column("what")
    table.add_row("embedded", EMBEDDED_NOTE)
    table.add_row("hf:<id-or-path>", "Any transformers causal LM by Hugging Face id or local folder (fp32/bf16, "
                                     "CPU or CUDA).")
    table.add_row("openai:<model>@<base_url>", "Any OpenAI-compatible server (vLLM, llama.cpp, Ollama, "
                                               "alignlab serve); logprob scoring needs echo + logprobs.")
    Console().print(table)


@app.command()
def bigbench(
    tasks: Annotated[list[str] | None, typer.Argument(help="Task names (e.g. hhh_alignment) or folders.")] = None,
    model: ModelOpt = "embedded",
    models_: ModelsOpt = None,
    shots: Annotated[int, typer.Option("--shots", help="k-shot examples drawn as BIG-bench does.")] = 0,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many examples per task.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 42,
    data: DataOpt = None,
    out: OutOpt = Path("runs"),
    resume: ResumeOpt = None,
    dtype: DtypeOpt = "float32",
    cache: CacheOpt = True,
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="Examples per model call (saved as they finish).")
                          ] = 32,
) -> None:
    """Run BIG-bench JSON tasks (multiple-choice and generative) and write a report."""
    from alignlab.bigbench.runner import BigBenchConfig, run_bigbench
    from alignlab.runs.run import Run

    if resume:
        run = Run.resume(resume)
        cfg = run.manifest["config"]
        config = BigBenchConfig(**{k: v for k, v in cfg["study"].items() if k != "errors"})
        specs, dtype = cfg["models"], cfg["dtype"]
    else:
        if not tasks:
            console.print("[red]error:[/red] name at least one task (e.g. hhh_alignment) or use --resume")
            raise typer.Exit(2)
        config = BigBenchConfig(tasks=list(tasks), shots=shots, seed=seed, max_examples=limit, data=data,
                                chunk_size=chunk_size)
        specs = split_specs(model, models_)
        run = Run.create("bigbench", {"study": {k: v for k, v in vars(config).items() if k != "errors"},
                                      "models": specs, "dtype": dtype}, root=out, seed=seed,
                         command=command_line())
    console.print(f"run directory: {run.path}")
    summary = None
    with resumable(run) as update:
        for spec in specs:
            m = load_or_exit(spec, dtype, cache)
            config.errors.clear()
            summary = run_bigbench(run, [m], config, progress=update)
            m.close()
    finish_run(run, summary)


@app.command()
def audit(
    model: ModelOpt = "embedded",
    compare: Annotated[str | None, typer.Option("--compare", help="A second model (e.g. a trained one) to audit "
                                                                  "side by side.")] = None,
    budget: Annotated[str, typer.Option("--budget", help="small (minutes on a CPU) or full (every item).")
                      ] = "small",
    studies: Annotated[str | None, typer.Option("--studies", help="Comma-separated subset of studies.")] = None,
    data: DataOpt = None,
    out: OutOpt = Path("runs"),
    resume: ResumeOpt = None,
    dtype: DtypeOpt = "float32",
    cache: CacheOpt = True,
) -> None:
    """Run every available evaluation on a model and write one report with a summary page."""
    from alignlab.audit import available_studies, run_audit
    from alignlab.runs.run import Run

    if resume:
        run = Run.resume(resume)
        cfg = run.manifest["config"]
        specs, budget, chosen, data, dtype = cfg["models"], cfg["budget"], cfg["studies"], cfg["data"], cfg["dtype"]
    else:
        if budget not in ("small", "full"):
            console.print(f"[red]error:[/red] --budget must be small or full, not {budget!r}")
            raise typer.Exit(2)
        registry = available_studies()
        chosen = split_specs("", studies) if studies else list(registry)
        unknown = sorted(set(chosen) - set(registry))
        if unknown:
            console.print(f"[red]error:[/red] unknown studies {unknown}; available: {sorted(registry)}")
            raise typer.Exit(2)
        specs = [model] + ([compare] if compare else [])
        config = {"models": specs, "budget": budget, "studies": chosen, "data": data, "dtype": dtype}
        run = Run.create("audit", config, root=out, command=command_line())
    console.print(f"run directory: {run.path}")
    loaded = [load_or_exit(spec, dtype, cache) for spec in specs]
    with resumable(run) as update:
        summary = run_audit(run, loaded, budget, data, chosen, progress=update)  # type: ignore[arg-type]
    finish_run(run, summary)


@app.command()
def report(run: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """(Re)write a run's HTML report and Markdown summary."""
    from alignlab.report import write_report

    if not (run / "summary.json").exists():
        console.print(f"[red]error:[/red] {run} has no summary.json (finish it with --resume {run})")
        raise typer.Exit(2)
    console.print(f"report: {write_report(run)}")


@app.command()
def serve(
    spec: Annotated[str, typer.Argument(help="Model spec to serve.")] = "embedded",
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    dtype: DtypeOpt = "float32",
) -> None:
    """Serve a model spec as an OpenAI-compatible server (completions with logprobs, chat completions)."""
    from alignlab.models.serve import serve as run_server

    run_server(spec, host=host, port=port, dtype=dtype)


behaviors_app.command("generate")(generate_command)
app.add_typer(behaviors_app, name="behaviors")

# One sub-app per study: (command name, module, attribute). A study module not written yet is skipped.
STUDY_APPS = (
    ("honesty", "alignlab.honesty.cli", "honesty_app"),
    ("fairness", "alignlab.fairness.cli", "fairness_app"),
    ("reasoning", "alignlab.reasoning.cli", "reasoning_app"),
    ("influence", "alignlab.influence.cli", "influence_app"),
    ("constitution", "alignlab.constitution.cli", "constitution_app"),
    ("redteam", "alignlab.redteam.cli", "redteam_app"),
)
for _name, _module, _attribute in STUDY_APPS:
    try:
        app.add_typer(getattr(importlib.import_module(_module), _attribute), name=_name)
    except ModuleNotFoundError as _err:
        if _err.name != _module:
            raise


def main() -> None:
    app()


if __name__ == "__main__":
    main()
