"""The honesty studies' configs: each field is a flag of ``alignlab honesty calibration|ptrue|pik``.

:class:`HeadConfig` is not a command's config: it is what a saved P(IK) head records in ``head.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from alignlab.metrics.honesty import PAPER_TEMPERATURE
from alignlab.runs.config import StudyConfig, option

CALIBRATION_VARIANTS = ("standard", "none_of_the_above", "true_false")
PTRUE_VARIANTS = ("zero_shot", "comparison")
METHODS = ("probe", "lora")
Method = Literal["probe", "lora"]

SEED_HELP = "Seeds subsets, few-shot draws, sampling and training."
DATA_HELP = "Dataset path (else $ALIGNLAB_DATA, the user cache, then a download)."


@dataclass
class CalibrationConfig(StudyConfig):
    """``alignlab honesty calibration``: multiple-choice calibration (§3)."""

    tasks: list[str] = option(help="BIG-bench multiple-choice tasks (names or folders) or MMLU/ARC/TruthfulQA-style "
                                   "MC .jsonl files.", factory=list, argument=True)
    variants: list[str] = option(help="standard, none_of_the_above or true_false (repeatable).",
                                 factory=lambda: ["standard"], flag="--variant")
    shots: int = option(0, "k-shot examples from the same task (paper: 0 or 5).", minimum=0)
    fixed_temperature: float = option(PAPER_TEMPERATURE, "Fixed temperature reported next to T=1 and the fitted T "
                                                         "(paper: 2.5).", flag="--temperature")
    fit_fraction: float = option(0.3, "Held-out share of items used to fit T.", minimum=0)
    max_items: int | None = option(None, "At most this many questions per task.", flag="--limit", minimum=1)
    seed: int = option(0, SEED_HELP, minimum=0)
    data: str | None = option(None, DATA_HELP)
    chunk_size: int = option(32, "Items per model call.", minimum=1, cli=False)
    errors: list[str] = option(help="Skipped examples (filled while loading).", factory=list, cli=False)

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("tasks (TASKS): name at least one task (e.g. date_understanding) or resume a run")
        unknown = sorted(set(self.variants) - set(CALIBRATION_VARIANTS))
        if unknown or not self.variants:
            raise ValueError(f"variants (--variant): unknown calibration variants {unknown}: choose from "
                             f"{list(CALIBRATION_VARIANTS)}")
        super().__post_init__()
        if not self.fit_fraction < 1:
            raise ValueError(f"fit_fraction (--fit-fraction) must lie in [0, 1), got {self.fit_fraction}")
        if self.fixed_temperature <= 0:
            raise ValueError(f"fixed_temperature (--temperature) must be positive, got {self.fixed_temperature}")

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> CalibrationConfig:
        """The saved config; the skipped-example notes are collected again by the resumed run."""
        return super().from_dict({k: v for k, v in saved.items() if k != "errors"})


@dataclass
class PTrueConfig(StudyConfig):
    """``alignlab honesty ptrue``: P(True) self-evaluation of sampled answers (§4)."""

    task: str = option("arithmetic", "arithmetic[:add+sub+mul[:digits]], triviaqa, or a TriviaQA-style .jsonl "
                                     "(question, answers).")
    questions: int = option(50, "Questions to ask.", minimum=1)
    samples: int = option(5, "Answers sampled per question at T=1 (also the brainstormed set).", minimum=1)
    answer_shots: int = option(5, "Worked examples in the sampling prompt.", flag="--shots", minimum=0)
    variants: list[str] = option(help="zero_shot and/or comparison (default both).",
                                 factory=lambda: list(PTRUE_VARIANTS), flag="--variant")
    max_new_tokens: int = option(24, "Longest sampled answer, in tokens.", minimum=1)
    seed: int = option(0, SEED_HELP, minimum=0)
    data: str | None = option(None, DATA_HELP)
    chunk_size: int = option(16, "Questions per model call.", minimum=1, cli=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.variants) - set(PTRUE_VARIANTS))
        if unknown or not self.variants:
            raise ValueError(f"variants (--variant): unknown P(True) variants {unknown}: choose from "
                             f"{list(PTRUE_VARIANTS)}")
        super().__post_init__()


@dataclass
class PIKConfig(StudyConfig):
    """``alignlab honesty pik``: a trained P(IK) head (§5)."""

    train_task: str = option("arithmetic", "Task whose labels train the head (arithmetic[:ops[:digits]], triviaqa "
                                           "or .jsonl).")
    eval_tasks: list[str] = option(help="Out-of-distribution task (repeatable).", factory=list, flag="--eval-task")
    method: str = option("probe", "probe (frozen model, linear probe) or lora (LoRA + head).", choices=METHODS)
    questions: int = option(200, "Questions per task.", minimum=2)
    samples: int = option(30, "Samples per question for the label (paper: 30).", minimum=1)
    answer_shots: int = option(10, "Worked examples in the prompt (paper: 10).", flag="--shots", minimum=0)
    max_new_tokens: int = option(16, "Longest sampled answer, in tokens.", minimum=1)
    test_fraction: float = option(0.25, "In-distribution held-out share of the training task.", cli=False)
    epochs: int = option(2, "LoRA training epochs.", minimum=1)
    lr: float = option(5e-4, "LoRA learning rate.", minimum=0)
    source_material: str | None = option(None, "JSONL with question, answers, background (§5.5).")
    head: str | None = option(None, "A saved head folder: score with it, no training.")
    head_out: str | None = option(None, "Where to save the trained head (default <run>/pik-head).")
    seed: int = option(0, SEED_HELP, minimum=0)
    data: str | None = option(None, DATA_HELP)
    chunk_size: int = option(8, "Questions per generate call (x samples rows).", minimum=1, cli=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must lie in (0, 1), got {self.test_fraction}")


@dataclass
class HeadConfig:
    """What a saved P(IK) head's ``head.json`` records."""

    method: Method
    base_model: str
    fingerprint_id: str
    hidden_size: int
    train_task: str = ""
    answer_shots: int = 0
    lora: dict[str, Any] = field(default_factory=dict)
