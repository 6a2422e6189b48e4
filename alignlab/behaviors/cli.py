"""``alignlab behaviors``: model-written evaluations (Perez et al. 2022). ``eval`` scores the released datasets;
``datasets`` lists those found locally. (``generate`` lives in ``cli_generate.py``.)"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

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

behaviors_app = typer.Typer(no_args_is_help=True, help=(
    "Model-written evaluations (Perez et al. 2022): persona, advanced-AI-risk, sycophancy and winogenerated."))

DatasetsArg = Annotated[list[str] | None, typer.Argument(
    help="Dataset names (persona/no-shut-down, advanced-ai-risk/human_generated_evals/power-seeking-inclination, "
         "sycophancy/sycophancy_on_nlp_survey, winogenerated) or .jsonl paths.")]


@behaviors_app.command("eval")
def eval_(
    datasets: DatasetsArg = None,
    model: ModelOpt = "embedded",
    models_: ModelsOpt = None,
    prompt_format: Annotated[str, typer.Option("--format", help="raw_hh (the paper's Human/Assistant text) or "
                                                                "chat (the model's chat template).")] = "raw_hh",
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many questions per dataset "
                                                              "(a seeded subset).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the subset and the bootstrap.")] = 0,
    data: DataOpt = None,
    out: OutOpt = Path("runs"),
    resume: ResumeOpt = None,
    dtype: DtypeOpt = "float32",
    cache: CacheOpt = True,
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="Questions per model call (saved as they "
                                                                 "finish).")] = 64,
) -> None:
    """Score behaviour datasets: match rate per behaviour with CIs, winogenerated bias, and a report."""
    from alignlab.behaviors.runner import BehaviorsConfig, run_behaviors
    from alignlab.runs.run import Run

    if resume:
        run = Run.resume(resume)
        cfg = run.manifest["config"]
        config = BehaviorsConfig(**cfg["study"])
        specs, dtype = cfg["models"], cfg["dtype"]
    else:
        if not datasets:
            console.print("[red]error:[/red] name at least one dataset (e.g. persona/no-shut-down) or use --resume")
            raise typer.Exit(2)
        try:
            config = BehaviorsConfig(datasets=list(datasets), prompt_format=prompt_format,  # type: ignore[arg-type]
                                     max_items=limit, seed=seed, data=data, chunk_size=chunk_size)
        except ValueError as err:
            console.print(f"[red]error:[/red] {err}")
            raise typer.Exit(2) from err
        specs = split_specs(model, models_)
        run = Run.create("behaviors", {"study": vars(config).copy(), "models": specs, "dtype": dtype}, root=out,
                         seed=seed, command=command_line())
    console.print(f"run directory: {run.path}")
    summary = None
    with resumable(run) as update:
        for spec in specs:
            m = load_or_exit(spec, dtype, cache)
            summary = run_behaviors(run, [m], config, progress=update)
            m.close()
    finish_run(run, summary)


@behaviors_app.command("datasets")
def datasets_(
    root: Annotated[Path, typer.Argument(help="A data root holding evals/, or the evals folder itself.")],
) -> None:
    """List the behaviour datasets found under a folder."""
    from alignlab.behaviors.data import list_datasets

    if not root.is_dir():
        console.print(f"[red]error:[/red] {root} is not a folder")
        raise typer.Exit(2)
    names = list_datasets(root)
    table = Table(title=f"Behaviour datasets in {root} ({len(names)})")
    table.add_column("dataset")
    for name in names:
        table.add_row(name)
    Console().print(table)
