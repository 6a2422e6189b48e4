"""Generate new model-written evaluations (Perez et al. 2022, arXiv 2212.09251) for a one-sentence behaviour.

Two kinds, both ending in the released JSONL format so the behaviours evaluator reads what this writes:

- ``persona`` (paper §3.1): for each label (agree -> matching ``" Yes"``, disagree -> ``" No"``) the
  generator p_g samples the first item of a list of first-person statements (top-p 0.975, temperature 1.4,
  <= 48 tokens, stop at newline, period or ``" -"``); statements are cleaned and deduplicated; the
  discriminator p_d reads the paper's filter prompt and gives p(agree) vs p(disagree) after ``"They would"``;
  an item survives when its label is p_d's argmax, and per label the top k = n/2 by ``label_confidence`` =
  p_d(label) are kept; both labels are cut to the same count.
- ``ai_risk`` (paper §5): stochastic few-shot prompting, each prompt holding ``few_shot`` random, shuffled,
  distinct seed questions (the released seeds all have the matching answer at ``" (A)"``), so every question is
  generated with the behaviour at (A) and keeps that label; format filters; p_d scores label correctness,
  p((A) matches) (next token ``" A"``/``" B"``, averaged over both option orders so a small model's position
  bias cancels), and relevance, p(`` Yes``) to "is this question relevant to testing the behaviour?"; the top n
  by the mean of the two are kept (paper) and the options of half of them are swapped so (A) and (B) are
  equally often the matching answer.

``calibrate`` (persona; ``"none"`` by default, as the paper) shifts the discriminator's log-odds of agree by
a prior before the argmax rule; small discriminators need it (see :func:`calibrate`).

The paper expects each A/B sample inside a markdown block quote. The prompt shows the seeds as block quotes
and the assistant prefill opens one (``>``); with ``require_block_quote`` only the quoted lines count as the
question (paper). SmolLM2-135M often breaks the quote (an unquoted blank line, options without ``>``), so by
default a sample's ``>`` markers are stripped where present and the question ends after its ``(B)`` line.
Samples that copy a seed question, or whose two options say the same, are dropped.

Every model call goes through ``Model`` and its request cache: a re-run after a crash recomputes nothing.
Candidates are written to ``<out stem>.candidates.jsonl`` after generation and again at the end (with their
final status); ``<out stem>.meta.json`` holds the config, both models' fingerprints, versions and the stats.

This module is the entry point and writes the files; the config is :class:`alignlab.behaviors.config.GenerateConfig`,
the prompts and parsers :mod:`alignlab.behaviors.generation_prompts`, the stages
:mod:`alignlab.behaviors.generation_pipeline`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from alignlab.behaviors.config import GenerateConfig
from alignlab.behaviors.generation_pipeline import (
    Candidate,
    GenerationResult,
    Progress,
    generate_ai_risk,
    generate_persona,
    shortfall_note,
)
from alignlab.models.base import Model
from alignlab.models.distributed import led
from alignlab.runs.study import load_item

__all__ = ["Candidate", "GenerateConfig", "GenerationError", "GenerationResult", "generate", "generate_behaviors",
           "sidecar_paths"]


class GenerationError(ValueError):
    """The generator produced nothing usable; the message gives the counts filtered at each stage."""


# -- output files --------------------------------------------------------------------------------------
def jsonl_lines(rows: Sequence[Any]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def sidecar_paths(out: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``out.jsonl`` -> (``out.candidates.jsonl``, ``out.meta.json``)."""
    stem = Path(out).with_suffix("") if Path(out).suffix == ".jsonl" else Path(out)
    return stem.with_name(stem.name + ".candidates.jsonl"), stem.with_name(stem.name + ".meta.json")


def model_identity(model: Model) -> dict[str, Any]:
    return {"spec": model.spec, "fingerprint_id": model.fingerprint_id, "fingerprint": model.fingerprint,
            "describe": model.describe()}


def generate_behaviors(config: GenerateConfig, generator: Model, discriminator: Model | None = None,
                       out: str | os.PathLike[str] | None = None, progress: Progress | None = None
                       ) -> GenerationResult:
    """Run the pipeline for ``config.kind``; with ``out``, write the JSONL, candidates and meta files.

    Raises :class:`GenerationError` (with the counts per stage) when no item survives.
    """
    from alignlab.runs.run import package_versions

    discriminator = discriminator or generator
    candidates_path, meta_path = sidecar_paths(out) if out is not None else (None, None)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)

    def checkpoint(cands: list[Candidate]) -> None:
        if candidates_path is not None:
            write_atomic(candidates_path, jsonl_lines([asdict(c) for c in cands]))

    pipeline = generate_persona if config.kind == "persona" else generate_ai_risk
    result = pipeline(config, generator, discriminator, progress, checkpoint)
    checkpoint(result.candidates)
    if out is not None:
        meta = {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "config": asdict(config), "generator": model_identity(generator),
                "discriminator": model_identity(discriminator),
                "versions": package_versions(), "stats": result.stats, "output": str(out),
                "candidates": str(candidates_path)}
        write_atomic(meta_path, json.dumps(meta, indent=2, ensure_ascii=False))  # type: ignore[arg-type]
    if not result.rows:
        where = f" (every candidate and its status: {candidates_path})" if candidates_path else ""
        raise GenerationError("the generator produced nothing usable: "
                              + shortfall_note(config, result.stats["stages"]) + where)
    if out is not None:
        write_atomic(Path(out), jsonl_lines(result.rows))
    return result


@led(lambda: None)
def generate(config: GenerateConfig, generator: str | Model = "embedded", discriminator: str | Model | None = None,
             *, out: str | os.PathLike[str] | None = None, dtype: str = "float32", cache: bool = True,
             progress: Progress | None = None, load: Callable[[str, str, bool], Model] | None = None
             ) -> GenerationResult | None:
    """``alignlab behaviors generate`` from Python: model specs (or loaded models) in, a
    :class:`GenerationResult` out; with ``out``, the JSONL and its ``.candidates.jsonl`` / ``.meta.json`` are
    written as by the CLI. ``discriminator`` defaults to the generator (one model loaded once). ``load(spec,
    dtype, cache)`` turns a spec into a model (default :func:`alignlab.models.load_model`); models loaded here
    are closed here. Under ``torchrun`` rank 0 generates while the other ranks lend it their replicas; they return
    None."""
    gen_model = load_item(generator, dtype, cache, load)
    disc_model = None
    try:
        same = discriminator is None or discriminator == generator
        disc_model = gen_model if same else load_item(discriminator, dtype, cache, load)  # type: ignore[arg-type]
        return generate_behaviors(config, gen_model, disc_model, out=out, progress=progress)
    finally:
        if gen_model is not generator:
            gen_model.close()
        if disc_model is not None and disc_model is not gen_model and disc_model is not discriminator:
            disc_model.close()
