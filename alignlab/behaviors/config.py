"""The configs of the model-written-evals study: each field is a flag of ``alignlab behaviors eval`` or
``alignlab behaviors generate`` (name, default, help text and validation in one place)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from alignlab.models.types import PromptFormat
from alignlab.runs.config import StudyConfig, flag_of, option

PROMPT_FORMATS = ("raw_hh", "chat")
KINDS = ("persona", "ai_risk")
FORMATS = ("chat", "raw_hh")
CALIBRATIONS = ("none", "content_free", "balanced")
DEFAULT_MAX_NEW_TOKENS = {"persona": 48, "ai_risk": 160}  # paper: <= 48 tokens for persona; seeds are <= ~80


@dataclass
class BehaviorsConfig(StudyConfig):
    """One model-written-evals study; each field is a flag of ``alignlab behaviors eval``."""

    datasets: list[str] = option(
        help="Dataset names (persona/no-shut-down, advanced-ai-risk/human_generated_evals/power-seeking-inclination, "
             "sycophancy/sycophancy_on_nlp_survey, winogenerated) or .jsonl paths.", factory=list, argument=True)
    prompt_format: PromptFormat = option("raw_hh", "raw_hh (the paper's Human/Assistant text) or chat (the model's "
                                                   "chat template).", flag="--format", choices=PROMPT_FORMATS)
    max_items: int | None = option(None, "At most this many questions per dataset (a seeded subset).",
                                   flag="--limit", minimum=1)
    seed: int = option(0, "Seeds the subset and the bootstrap.", minimum=0)
    data: str | None = option(None, "Dataset path (else $ALIGNLAB_DATA, the user cache, then a download).")
    chunk_size: int = option(64, "Questions per model call (saved as they finish).", minimum=1)

    def __post_init__(self) -> None:
        given = [self.datasets] if isinstance(self.datasets, (str, os.PathLike)) else self.datasets
        self.datasets = [os.fspath(d) for d in given]
        if self.data is not None:
            self.data = os.fspath(self.data)
        super().__post_init__()
        if not self.datasets:
            raise ValueError("datasets: name at least one dataset (e.g. persona/no-shut-down, or a .jsonl path), "
                             "or resume a run (--resume)")


@dataclass
class GenerateConfig(StudyConfig):
    """One generation job; each field is a flag of ``alignlab behaviors generate`` (``debias_order`` and
    ``chunk_size`` are set from Python only).

    ``samples_per_label`` defaults to 10 x (n / 2), the paper's ratio (5,000 samples per label for 500 kept);
    for ``ai_risk`` both labels come from one pool of 2 x samples_per_label samples (labels are flipped by
    swapping options). ``max_new_tokens`` defaults to 48 for persona (paper) and 160 for ai_risk. Every problem
    is reported at once, each naming the field and its flag.
    """

    description: str = option(help="The behaviour in one phrase, e.g. 'an AI that wants to avoid being shut down' "
                                   "or 'is agreeable'.", argument=True)
    kind: str = option("persona", "persona (Yes/No statements) or ai_risk (A/B questions from --seeds).",
                       choices=KINDS)
    n: int = option(200, "Items in the label-balanced output.", short="-n", minimum=2)
    samples_per_label: int | None = option(None, "Generator samples per label (default 10 x n/2, the paper's "
                                                 "ratio).", minimum=1)
    temperature: float = option(1.4, "Paper: 1.4.", minimum=0)
    top_p: float = option(0.975, "Paper: 0.975.", maximum=1)
    max_new_tokens: int | None = option(None, "Default 48 (persona, paper) or 160 (ai_risk).", minimum=1)
    seed: int = option(0, minimum=0)
    prompt_format: str = option("chat", "chat (the model's chat template) or raw_hh (the paper's Human/Assistant "
                                        "text).", flag="--format", choices=FORMATS)
    seed_questions: str | None = option(None, "ai_risk: JSONL of A/B seed questions, e.g. advanced-ai-risk/"
                                              "prompts_for_few_shot_generation/survival-instinct.jsonl.",
                                        flag="--seeds")
    few_shot: int = option(5, "ai_risk: seed questions per prompt.", minimum=1)
    require_block_quote: bool = option(False, "ai_risk: keep only samples written as a markdown block quote "
                                              "(paper; small models rarely manage it).",
                                       flag="--block-quote/--no-block-quote")
    debias_order: bool = option(True, "ai_risk: average the discriminator over both option orders.", cli=False)
    calibrate: str = option("none", "persona: none (paper), content_free or balanced; shifts a small "
                                    "discriminator's prior for 'agree' before the label filter.",
                            choices=CALIBRATIONS)
    chunk_size: int = option(8, "Generate requests per model call; a crash loses at most one chunk.", minimum=1,
                             cli=False)

    def __post_init__(self) -> None:
        self.description = self.description.strip().rstrip(".").strip()
        if self.seed_questions is not None:
            self.seed_questions = os.fspath(self.seed_questions)
        problems = _problems(self)
        if not self.description:
            problems.insert(0, "description is empty")
        if not self.top_p > 0:
            problems.append(f"top_p must be above 0, got {self.top_p} (--top-p)")
        if self.kind == "ai_risk" and self.calibrate != "none":
            problems.append("calibrate applies to persona; ai_risk cancels the A/B prior with debias_order")
        if self.kind == "ai_risk" and not self.seed_questions:
            problems.append("ai_risk needs seed_questions (--seeds: a JSONL file of A/B questions, e.g. the "
                            "released advanced-ai-risk/prompts_for_few_shot_generation/<behaviour>.jsonl)")
        if problems:
            raise ValueError("bad generation config: " + "; ".join(problems))
        super().__post_init__()
        if self.samples_per_label is None:
            self.samples_per_label = 10 * (self.n // 2)
        if self.max_new_tokens is None:
            self.max_new_tokens = DEFAULT_MAX_NEW_TOKENS[self.kind]


def _problems(config: StudyConfig) -> list[str]:
    """Every value outside its field's declared choices or range, as ``"<field> ... (<flag>)"`` (all at once,
    where :func:`alignlab.runs.config.check_fields` stops at the first)."""
    problems = []
    for field in dataclasses.fields(config):  # type: ignore[arg-type]
        flag, value = flag_of(field), getattr(config, field.name)
        where = f" ({flag.name_for(field.name)})" if flag.cli else ""
        if value is None:
            continue
        if flag.choices is not None and value not in flag.choices:
            problems.append(f"{field.name} {value!r} is not one of {', '.join(flag.choices)}{where}")
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if flag.minimum is not None and (not numeric or value < flag.minimum):
            problems.append(f"{field.name} must be at least {flag.minimum:g}, got {value!r}{where}")
        elif flag.maximum is not None and (not numeric or value > flag.maximum):
            problems.append(f"{field.name} must be at most {flag.maximum:g}, got {value!r}{where}")
    return problems
