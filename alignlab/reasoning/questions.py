"""Questions for the reasoning studies, from any of three sources:

- ``addition`` or ``addition:2,4,8,16``: seeded synthetic sums (alignlab.reasoning.addition), integer answers;
- a multiple-choice JSONL file (alignlab.data.multiple_choice);
- a BIG-bench JSON task with ``target_scores`` (``strategyqa``, ``logical_deduction``, or a task folder).
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Literal

from alignlab.bigbench.tasks import find_task, load_task
from alignlab.data.errors import DataError, nothing_usable
from alignlab.data.multiple_choice import load_mc_jsonl
from alignlab.reasoning.addition import PAPER_OPERANDS, generate_addition

LETTERS = string.ascii_uppercase
DEFAULT_ADDITION_COUNT = 8


@dataclass(frozen=True)
class Question:
    """One question; ``answer`` is the correct letter (multiple choice) or the integer as text (free-form)."""

    id: str
    text: str
    choices: tuple[str, ...]
    answer: str
    source: str = ""

    @property
    def kind(self) -> Literal["letter", "integer"]:
        return "letter" if self.choices else "integer"

    @property
    def letters(self) -> tuple[str, ...]:
        return tuple(LETTERS[: len(self.choices)])


def load_questions(source: str, *, data: str | None = None, limit: int | None = None, seed: int = 0
                   ) -> list[Question]:
    """The questions of ``source`` (see the module docstring); ``limit`` keeps a seeded subset in file order."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    if source == "addition" or source.startswith("addition:"):
        return _addition(source, limit or DEFAULT_ADDITION_COUNT, seed)
    if source.endswith(".jsonl"):
        items = load_mc_jsonl(source)
        questions = [_mc(item.id, item.question, item.choices, item.answer, source, source) for item in items]
    else:
        questions = _bigbench(source, data)
    if limit is not None and limit < len(questions):
        keep = set(random.Random(seed).sample(range(len(questions)), limit))
        questions = [q for i, q in enumerate(questions) if i in keep]
    return questions


def _addition(source: str, count: int, seed: int) -> list[Question]:
    operands = PAPER_OPERANDS
    if ":" in source:
        try:
            operands = tuple(int(x) for x in source.split(":", 1)[1].split(","))
        except ValueError as err:
            raise ValueError(f"{source!r}: write addition:N,M,... with operand counts in 2..16") from err
    return [Question(item.id, item.question, (), str(item.answer), "addition")
            for item in generate_addition(count, operands, seed)]


def _mc(qid: str, text: str, choices: tuple[str, ...], answer: int, source: str, path: str) -> Question:
    if len(choices) > len(LETTERS):
        raise DataError(f"{len(choices)} choices: at most {len(LETTERS)} are supported", path=path, field="choices")
    return Question(qid, text, tuple(choices), LETTERS[answer], source)


def _bigbench(name: str, data: str | None) -> list[Question]:
    task = load_task(find_task(name, data=data))
    questions = []
    for leaf in task.leaves():
        for ex in leaf.examples:
            if ex.target_scores is None:
                continue
            choices = tuple(ex.target_scores)
            scores = list(ex.target_scores.values())
            text = (leaf.task_prefix + ex.input).strip()
            questions.append(_mc(f"{leaf.name}-{ex.index}", text, choices, scores.index(max(scores)), name,
                                 str(leaf.path)))
    if not questions and task.errors:
        raise nothing_usable(task.errors, path=task.path, what="example")
    if not questions:
        raise DataError("no multiple-choice examples (target_scores) in this task", path=task.path)
    return questions
