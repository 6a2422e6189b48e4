"""``alignlab behaviors``: model-written evaluations (Perez et al. 2022). ``eval`` scores the released datasets,
``generate`` writes a new one for a described behaviour, ``datasets`` lists those found locally. The options of
``eval`` and ``generate`` are the fields of their configs (``alignlab/behaviors/config.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from alignlab.behaviors.config import GenerateConfig
from alignlab.behaviors.studies import BEHAVIORS
from alignlab.cli_common import (
    build_command,
    check_model_option,
    config_from_cli,
    config_parameters,
    console,
    fail,
    load_or_exit,
    progress_bars,
    shared_parameters,
    study_command,
)

behaviors_app = typer.Typer(no_args_is_help=True, help=(
    "Model-written evaluations (Perez et al. 2022): persona, advanced-AI-risk, sycophancy and winogenerated."))

behaviors_app.command("eval")(study_command(BEHAVIORS, help=(
    "Score behaviour datasets: match rate per behaviour with CIs, winogenerated bias, and a report.")))


@behaviors_app.command("datasets")
def datasets_(
    root: Annotated[Path, typer.Argument(help="A data root holding evals/, or the evals folder itself.")],
) -> None:
    """List the behaviour datasets found under a folder."""
    from alignlab.behaviors.data import list_datasets

    if not root.is_dir():
        fail(f"{root} is not a folder")
    names = list_datasets(root)
    table = Table(title=f"Behaviour datasets in {root} ({len(names)})")
    table.add_column("dataset")
    for name in names:
        table.add_row(name)
    Console().print(table)


# -- generate -------------------------------------------------------------------------------------------------
GeneratorOpt = Annotated[str, typer.Option("--generator", help="Model spec that writes the items.")]
# the discriminator loads after the generation, so a bad spec is refused before that work, not after it
DiscriminatorOpt = Annotated[str | None, typer.Option(
    "--discriminator", help="Model spec that checks the labels (default: the generator).", callback=check_model_option)]
GenerateOutOpt = Annotated[Path, typer.Option("--out", "-o", help=(
    "Output JSONL (the released format); <stem>.candidates.jsonl and <stem>.meta.json are written beside it."))]
EXTRA = ("generator", "discriminator", "out", "dtype", "cache")


def _generate(**values: Any) -> None:
    """Generate a label-balanced behaviour dataset: sample, filter labels with a discriminator, balance."""
    from alignlab.behaviors.generation import GenerationError, generate

    generator, discriminator, out, dtype, cache = (values.pop(name) for name in EXTRA)
    if values.get("seed_questions"):
        values["seed_questions"] = str(Path(values["seed_questions"]))
    config = config_from_cli(GenerateConfig, values)
    try:
        with progress_bars() as update:
            result = generate(config, generator, discriminator, out=out, dtype=dtype, cache=cache, progress=update,
                              load=load_or_exit)
    except (GenerationError, ValueError, FileNotFoundError) as err:
        fail(str(err))
    if result is None:  # a torchrun rank other than 0: rank 0 wrote the output
        return
    print_stats(result.stats)
    console.print(f"[green]wrote {len(result.rows)} items[/green]: {out}")
    if "shortfall" in result.stats:
        console.print(f"[yellow]note:[/yellow] {result.stats['shortfall']}")


# The config's fields (DESCRIPTION required, as a positional argument), the models, then --out, --dtype, --cache.
_fields = config_parameters(GenerateConfig, required=True)
_extra = shared_parameters("generator", "discriminator", "out", "dtype", "cache",
                           generator=(GeneratorOpt, "embedded"), discriminator=(DiscriminatorOpt, None),
                           out=(GenerateOutOpt, Path("generated.jsonl")))
generate_command = build_command(_fields[:1] + _extra[:2] + _fields[1:] + _extra[2:], _generate, name="generate",
                                 help=_generate.__doc__ or "")
behaviors_app.command("generate")(generate_command)


def print_stats(stats: dict[str, Any]) -> None:
    """One row per label (persona) or one for all (ai_risk): how many samples each stage dropped."""
    stages = stats["stages"]
    columns = list(dict.fromkeys(key for row in stages.values() for key in row))
    table = Table(title=f"generated {stats['kind']} items")
    table.add_column("label")
    for col in columns:
        table.add_column(col.replace("_", " "), justify="right")
    for label, row in stages.items():
        table.add_row(label, *[str(row.get(col, 0)) for col in columns])
    console.print(table)
    console.print("discriminator: " + json.dumps(stats["discriminator"]))
