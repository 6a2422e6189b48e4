"""The ``alignlab`` command line: one subcommand per study, plus audit, report, serve and models."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from alignlab.audit.cli import audit_command
from alignlab.behaviors.cli import behaviors_app
from alignlab.bigbench.cli import bigbench_command
from alignlab.cli_common import DataOpt, DtypeOpt, console, fail
from alignlab.constitution.cli import constitution_app
from alignlab.fairness.cli import fairness_app
from alignlab.honesty.cli import honesty_app
from alignlab.influence.cli import influence_app
from alignlab.mc.cli import mc_command
from alignlab.reasoning.cli import reasoning_app
from alignlab.redteam.cli import redteam_app

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.callback()
def main_options(
    threads: Annotated[int | None, typer.Option(
        "--threads", envvar="ALIGNLAB_THREADS",
        help="torch CPU threads (default: torch's choice). On a shared or busy machine 1 is often fastest.")] = None,
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", envvar="ALIGNLAB_OPENAI_CONCURRENCY",
        help="openai: models: requests in flight at once (backs off by itself when requests time out).")] = None,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", envvar="ALIGNLAB_OPENAI_TIMEOUT", help="openai: models: seconds before a request is retried.")
    ] = None,
) -> None:
    """Options for every subcommand."""
    for name, value in (("--threads", threads), ("--concurrency", concurrency)):
        if value is not None and value < 1:
            fail(f"{name} must be at least 1, got {value}")
    if timeout is not None and timeout <= 0:
        fail(f"--timeout must be positive, got {timeout}")
    if concurrency is not None:
        os.environ["ALIGNLAB_OPENAI_CONCURRENCY"] = str(concurrency)
    if timeout is not None:
        os.environ["ALIGNLAB_OPENAI_TIMEOUT"] = str(timeout)
    if threads is not None:
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
def report(run: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """(Re)write a run's HTML report, Markdown summary and results.json."""
    from alignlab.report import write_report
    from alignlab.runs.results import write_results
    from alignlab.runs.run import Run

    try:
        manifest = Run.read_manifest(run)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    if not (run / "summary.json").exists():
        fail(f"{run} has no summary.json: the run did not finish (finish it with its command and --resume {run})")
    write_results(run, manifest, json.loads((run / "summary.json").read_text(encoding="utf-8")))
    console.print(f"report: {write_report(run)}")


@app.command("list")
def list_studies(data: DataOpt = None) -> None:
    """The studies, their commands and datasets, and where each dataset resolves from (nothing is downloaded)."""
    from alignlab.catalog import CATALOG
    from alignlab.data.resolve import locate_dataset

    studies = Table(title="Studies")
    datasets = Table(title="Datasets (searched in --data, $ALIGNLAB_DATA, the user cache, else downloaded)")
    for table, columns in ((studies, ("study", "paper", "commands", "also reads")),
                           (datasets, ("study", "dataset", "resolves from", "path"))):
        for column in columns:
            table.add_column(column, overflow="fold")
    for entry in CATALOG:
        studies.add_row(entry.study, entry.paper, "\n".join(f"alignlab {c}" for c in entry.commands), entry.note)
        for name in entry.datasets:
            path, place = (None, "any name or folder") if "<" in name else locate_dataset(name, data=data)
            datasets.add_row(entry.study, name, place, str(path or ""))
    Console().print(studies)
    Console().print(datasets)


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


app.add_typer(behaviors_app, name="behaviors")
app.command("bigbench")(bigbench_command)
app.command("audit")(audit_command)
app.command("mc")(mc_command)
for _name, _app in (("honesty", honesty_app), ("fairness", fairness_app), ("reasoning", reasoning_app),
                    ("influence", influence_app), ("constitution", constitution_app), ("redteam", redteam_app)):
    app.add_typer(_app, name=_name)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
