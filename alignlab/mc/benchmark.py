"""What a multiple-choice benchmark of your own declares: its questions, and which paper result it reproduces."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from alignlab.mc.config import MCConfig
from alignlab.models.types import Prompt


@dataclass(frozen=True)
class Question:
    """One question: every choice is scored as a continuation of ``prompt``; ``answer`` indexes ``choices``."""

    id: str
    prompt: Prompt  # a string, or a Conversation (rendered with the chat template or raw_hh)
    choices: tuple[str, ...]
    answer: int
    group: str = ""  # a category: accuracy is also reported per group

    def __post_init__(self) -> None:
        if len(self.choices) < 2:
            raise ValueError(f"question {self.id}: needs at least 2 choices, got {len(self.choices)}")
        if not 0 <= self.answer < len(self.choices):
            raise ValueError(f"question {self.id}: answer {self.answer} is not an index of its "
                             f"{len(self.choices)} choices")


class Benchmark(ABC):
    """Subclass with a ``name``, a ``reproduces`` line (the paper section or table), and :meth:`questions`."""

    name: ClassVar[str]
    reproduces: ClassVar[str] = ""
    config_class: ClassVar[type[MCConfig]] = MCConfig

    @abstractmethod
    def questions(self, config: MCConfig) -> Iterable[Question]:
        """Every question of the benchmark (the runner takes a seeded ``config.limit`` of them)."""
