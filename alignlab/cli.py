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
from alignlab.loop.cli import loop_command
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
        "--timeout", envvar="ALIGNLAB_OPENAI_TIMEOUT",
        help="openai: models: seconds each request may take before it is retried (default 60).")] = None,
    device: Annotated[str | None, typer.Option(
        "--device", envvar="ALIGNLAB_DEVICE",
        help="hf/embedded models: cpu, cuda, cuda:1, mps (default: cuda when available). A model too big for one "
             "GPU: --model 'hf:<id>?device_map=auto' (more options: docs/scale.md).")] = None,
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
    if device is not None:
        if not device.strip():
            fail("--device must not be empty")
        os.environ["ALIGNLAB_DEVICE"] = device.strip()
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
    table.add_row("vllm:<id-or-path>", "The same through vLLM's offline engine in-process (its own venv: "
                                       "python benchmarks/vllm_venv.py); vllm:embedded works too.")
    table.add_row("openai:<model>@<base_url>[,<base_url>...]", "Any OpenAI-compatible server (vLLM, llama.cpp, "
                                                               "Ollama, alignlab serve); several URLs take "
                                                               "requests in turn. Logprob scoring needs echo + "
                                                               "logprobs.")
    table.add_row("<spec>?key=value&...", "Model options: hf: revision, device, device_map=auto, "
                                          "attn_implementation, trust_remote_code, max_batch_tokens; vllm: "
                                          "revision, tensor_parallel_size, pipeline_parallel_size, max_model_len, "
                                          "gpu_memory_utilization, enforce_eager, trust_remote_code.")
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
        studies.add_row(entry.study, entry.paper, "\n".join(f"alignlab {c}" for c in commands(entry.study)),
                        entry.note)
        for name in entry.datasets:
            path, place = (None, "any name or folder") if "<" in name else locate_dataset(name, data=data)
            datasets.add_row(entry.study, name, place, str(path or ""))
    Console().print(studies)
    Console().print(datasets)


def commands(name: str) -> list[str]:
    """The command lines registered under ``name``: a group's subcommands, or the command itself."""
    for group in app.registered_groups:
        if group.name == name and group.typer_instance is not None:
            return [f"{name} {c.name}" for c in group.typer_instance.registered_commands]
    return [name] if any(c.name == name for c in app.registered_commands) else []


@app.command()
def serve(
    spec: Annotated[str, typer.Argument(help="Model spec to serve.")] = "embedded",
    host: Annotated[str, typer.Option("--host", help="Address to bind; other than loopback it needs --api-key "
                                                     "(or --allow-insecure).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    dtype: DtypeOpt = "float32",
    api_key: Annotated[str | None, typer.Option(
        "--api-key", envvar="ALIGNLAB_API_KEY", show_default=False,
        help="Require 'Authorization: Bearer KEY' on every /v1 request.")] = None,
    allow_insecure: Annotated[bool, typer.Option(
        "--allow-insecure", help="Allow a non-loopback --host without an API key (prints a warning).")] = False,
    max_tokens_limit: Annotated[int | None, typer.Option(
        "--max-tokens-limit", help="Most new tokens a request may ask for (default: what fits the model's "
                                   "context after the prompt).")] = None,
    max_n: Annotated[int, typer.Option("--max-n", help="Most samples (n) per prompt.")] = 128,
    max_queue: Annotated[int, typer.Option(
        "--max-queue", help="Most requests waiting behind the running one; more get 429 with Retry-After.")] = 32,
) -> None:
    """Serve a model spec as an OpenAI-compatible server (completions with logprobs, chat completions, streaming)."""
    from alignlab.cli_common import load_or_exit
    from alignlab.models.serve import Limits, check_access, serve_model

    for name, value, least in (("--max-tokens-limit", max_tokens_limit, 1), ("--max-n", max_n, 1),
                               ("--max-queue", max_queue, 0), ("--port", port, 0)):
        if value is not None and value < least:
            fail(f"{name} must be at least {least}, got {value}")
    if port > 65535:
        fail(f"--port must be at most 65535, got {port}")
    try:
        warning = check_access(host, api_key, allow_insecure)
    except ValueError as err:
        fail(str(err))
    if warning:
        console.print(warning, style="yellow", markup=False, highlight=False)
    model = load_or_exit(spec, dtype, cache=False)
    serve_model(model, host, port, api_key=api_key or None,
                limits=Limits(max_tokens=max_tokens_limit, max_n=max_n, max_queue=max_queue))


app.add_typer(behaviors_app, name="behaviors")
app.command("bigbench")(bigbench_command)
app.command("audit")(audit_command)
app.command("mc")(mc_command)
app.command("loop")(loop_command)
for _name, _app in (("honesty", honesty_app), ("fairness", fairness_app), ("reasoning", reasoning_app),
                    ("influence", influence_app), ("constitution", constitution_app), ("redteam", redteam_app)):
    app.add_typer(_app, name=_name)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
