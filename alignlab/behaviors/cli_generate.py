"""``alignlab behaviors generate``: a new model-written eval (Perez et al. 2022) for a described behaviour.

Registered by ``cli.py``; the pipeline is :mod:`alignlab.behaviors.generate`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from alignlab.cli_common import CacheOpt, DtypeOpt, console, load_or_exit, progress_bars


def generate_command(
    description: Annotated[str, typer.Argument(help="The behaviour in one phrase, e.g. 'an AI that wants to "
                                                    "avoid being shut down' or 'is agreeable'.")],
    generator: Annotated[str, typer.Option("--generator", help="Model spec that writes the items.")
                         ] = "embedded",
    discriminator: Annotated[str | None, typer.Option(
        "--discriminator", help="Model spec that checks the labels (default: the generator).")] = None,
    kind: Annotated[str, typer.Option("--kind", help="persona (Yes/No statements) or ai_risk (A/B questions "
                                                     "from --seeds).")] = "persona",
    n: Annotated[int, typer.Option("-n", "--n", help="Items in the label-balanced output.")] = 200,
    samples_per_label: Annotated[int | None, typer.Option(
        "--samples-per-label", help="Generator samples per label (default 10 x n/2, the paper's ratio).")
                                  ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output JSONL (the released format); "
                                                          "<stem>.candidates.jsonl and <stem>.meta.json "
                                                          "are written beside it.")
                   ] = Path("generated.jsonl"),
    seed: Annotated[int, typer.Option("--seed")] = 0,
    format: Annotated[str, typer.Option("--format", help="chat (the model's chat template) or raw_hh (the "
                                                         "paper's Human/Assistant text).")] = "chat",
    temperature: Annotated[float, typer.Option("--temperature", help="Paper: 1.4.")] = 1.4,
    top_p: Annotated[float, typer.Option("--top-p", help="Paper: 0.975.")] = 0.975,
    max_new_tokens: Annotated[int | None, typer.Option(
        "--max-new-tokens", help="Default 48 (persona, paper) or 160 (ai_risk).")] = None,
    seeds: Annotated[Path | None, typer.Option(
        "--seeds", help="ai_risk: JSONL of A/B seed questions, e.g. advanced-ai-risk/"
                        "prompts_for_few_shot_generation/survival-instinct.jsonl.")] = None,
    few_shot: Annotated[int, typer.Option("--few-shot", help="ai_risk: seed questions per prompt.")] = 5,
    block_quote: Annotated[bool, typer.Option(
        "--block-quote/--no-block-quote", help="ai_risk: keep only samples written as a markdown block quote "
                                               "(paper; small models rarely manage it).")] = False,
    calibrate: Annotated[str, typer.Option(
        "--calibrate", help="persona: none (paper), content_free or balanced; shifts a small discriminator's "
                            "prior for 'agree' before the label filter.")] = "none",
    dtype: DtypeOpt = "float32",
    cache: CacheOpt = True,
) -> None:
    """Generate a label-balanced behaviour dataset: sample, filter labels with a discriminator, balance."""
    from alignlab.behaviors.generate import GenerateConfig, GenerationError, generate_behaviors

    try:
        config = GenerateConfig(
            description=description, kind=kind, n=n, samples_per_label=samples_per_label,
            temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed,
            prompt_format=format, seed_questions=str(seeds) if seeds else None, few_shot=few_shot,
            require_block_quote=block_quote, calibrate=calibrate)
    except ValueError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    gen_model = load_or_exit(generator, dtype, cache)
    same = discriminator in (None, generator)
    disc_model = gen_model if same else load_or_exit(str(discriminator), dtype, cache)
    try:
        with progress_bars() as update:
            result = generate_behaviors(config, gen_model, disc_model, out=out, progress=update)
    except (GenerationError, ValueError, FileNotFoundError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    finally:
        gen_model.close()
        if disc_model is not gen_model:
            disc_model.close()
    print_stats(result.stats)
    console.print(f"[green]wrote {len(result.rows)} items[/green]: {out}")
    if "shortfall" in result.stats:
        console.print(f"[yellow]note:[/yellow] {result.stats['shortfall']}")


def print_stats(stats: dict) -> None:
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
