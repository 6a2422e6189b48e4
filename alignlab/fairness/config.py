"""The fairness studies' configs: each field is a flag of ``alignlab fairness bbq|winogender|discrimination``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from alignlab.fairness.bbq_data import ALL_CATEGORIES, PAPER_CATEGORIES
from alignlab.fairness.discrimination_data import DEFAULT_GPA, DEFAULT_LSAT
from alignlab.fairness.interventions import PROMPT_FORMATS, CotSettings
from alignlab.runs.config import StudyConfig, option

T = TypeVar("T")
SOURCES = ("grid", "csv", "discrim-eval")
OVERALL = ("pooled", "mean")


@dataclass
class FairnessConfig(StudyConfig):
    """Interventions, prompt format, subset sizes and CoT sampling of one fairness study."""

    ALLOWED: ClassVar[tuple[str, ...]] = ("q", "if", "cot")

    interventions: list[str] = option(help="Comma-separated: q, if, cot (Winogender also match-stats).",
                                      factory=lambda: ["q", "if", "cot"], csv=True)
    prompt_format: str = option("raw_hh", "raw_hh (the paper's Human/Assistant text) or chat.", flag="--format",
                                choices=PROMPT_FORMATS)
    limit: int | None = option(None, "At most this many items (BBQ: per category; a seeded subset).", minimum=1)
    cot_limit: int | None = option(None, "Of those, at most this many under Q+IF+CoT (BBQ: per category).",
                                   minimum=1)
    seed: int = option(0, "Seeds subsets, CoT sampling and the bootstrap.", minimum=0)
    data: str | None = option(None, "Dataset folder (else $ALIGNLAB_DATA, the user cache, then a download).")
    chunk_size: int = option(32, "Items per model call (saved as they finish; a crash loses at most one chunk).",
                             minimum=1)
    cot_tokens: int = option(256, "Tokens of sampled reasoning (the paper: 256).", minimum=1)
    cot_temperature: float = option(1.0, "Sampling temperature of the reasoning.", minimum=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.interventions = list(dict.fromkeys(i.strip().lower() for i in self.interventions if i.strip()))
        bad = [i for i in self.interventions if i not in self.ALLOWED]
        if bad or not self.interventions:
            raise ValueError(f"interventions must be among {', '.join(self.ALLOWED)}, got {self.interventions}")

    def cot_settings(self) -> CotSettings:
        return CotSettings(max_new_tokens=self.cot_tokens, temperature=self.cot_temperature, seed=self.seed)

    def per_intervention(self, items: Sequence[T], cot_items: Sequence[T] | None = None) -> dict[str, list[T]]:
        """Intervention -> its items: all of ``items``, but only ``cot_items`` (default: the first ``cot_limit``)
        under CoT."""
        cot = list(cot_items) if cot_items is not None else list(items)[:self.cot_limit]
        return {i: (cot if i == "cot" else list(items)) for i in self.interventions}


@dataclass
class BBQConfig(FairnessConfig):
    """``alignlab fairness bbq``: ``limit`` and ``cot_limit`` count questions per category; the Q+IF+CoT questions
    are a seeded random subset stratified by category and context condition."""

    categories: list[str] = option(help="Comma-separated BBQ categories, 'paper' (the paper's 9) or 'all' (11).",
                                   factory=lambda: list(PAPER_CATEGORIES), csv=True)
    overall: str = option("pooled", "The 'all' row: pooled (every question of every category together) or mean "
                                    "(the unweighted mean of the per-category scores).", choices=OVERALL)

    def __post_init__(self) -> None:
        named = {"paper": list(PAPER_CATEGORIES), "all": list(ALL_CATEGORIES)}
        if len(self.categories) == 1 and self.categories[0] in named:
            self.categories = named[self.categories[0]]
        super().__post_init__()


@dataclass
class WinogenderConfig(FairnessConfig):
    """``alignlab fairness winogender``: ``limit`` and ``cot_limit`` count templates (one per occupation)."""

    ALLOWED: ClassVar[tuple[str, ...]] = ("q", "if", "cot", "match-stats")

    interventions: list[str] = option(help="Comma-separated: q, if, cot, match-stats.",
                                      factory=lambda: ["q", "if", "cot", "match-stats"], csv=True)


@dataclass
class DiscriminationConfig(FairnessConfig):
    """``alignlab fairness discrimination``: ``limit`` / ``cot_limit`` count students (discrim-eval: scenarios)."""

    source: str = option("grid", "grid (generated students), csv (--path: your student records) or discrim-eval.",
                         choices=SOURCES)
    path: str | None = option(None, "CSV with lsat,gpa columns (source csv); explicit, implicit or a .jsonl "
                                    "(source discrim-eval).")
    lsat: list[float] = option(help="Grid LSAT scores, comma-separated.", factory=lambda: list(DEFAULT_LSAT),
                               csv=True)
    gpa: list[float] = option(help="Grid GPAs, comma-separated.", factory=lambda: list(DEFAULT_GPA), csv=True)

    def __post_init__(self) -> None:
        try:
            self.lsat, self.gpa = [float(v) for v in self.lsat], [float(v) for v in self.gpa]
        except (TypeError, ValueError) as err:
            raise ValueError(f"--lsat and --gpa take comma-separated numbers ({err})") from err
        super().__post_init__()
        if self.source == "csv" and not self.path:
            raise ValueError("source csv needs the path of a CSV with lsat and gpa columns")

