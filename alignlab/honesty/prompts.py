"""Prompt formats of Kadavath et al. 2022 (arXiv 2207.05221); the short templates are the paper's own.

- Multiple choice (§3.1, Fig. 4): ``Question: ...\\nChoices:\\n(A) ...\\nAnswer:``, then score ``" (A)"``...
- P(True) (§4.1): ``Question / Proposed Answer / Is the proposed answer: (A) True (B) False / The proposed answer
  is:``; the comparison-examples variant (§4.2) shows brainstormed samples and says "possible answer".
- Open-question sampling (§4, §5.1): few-shot ``Question: ...\\nAnswer: ...`` blocks, then the question.
- Source material (§5.5): ``Here is some background information material: ...`` before the question.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

LETTERS = string.ascii_uppercase
TRUE_FALSE_OPTIONS = (" (A)", " (B)")  # P(True) = P(" (A)") normalised against P(" (B)")
BACKGROUND_PREFIX = "Here is some background information material: {background}\nNow, answer the following question.\n"


def letter_options(n: int) -> tuple[str, ...]:
    """The continuations scored for ``n`` choices: ``" (A)"``, ``" (B)"``, ..."""
    if not 1 <= n <= len(LETTERS):
        raise ValueError(f"letter options support 1 to {len(LETTERS)} choices, got {n}")
    return tuple(f" ({LETTERS[i]})" for i in range(n))


def mc_question(question: str, choices: Sequence[str]) -> str:
    """One multiple-choice question with visible lettered options, ending at ``Answer:``."""
    lines = [f"Question: {question.strip()}", "Choices:"]
    lines += [f"({LETTERS[i]}) {choice}" for i, choice in enumerate(choices)]
    return "\n".join(lines) + "\nAnswer:"


def mc_prompt(question: str, choices: Sequence[str], shots: Sequence[tuple[str, Sequence[str], int]] = ()) -> str:
    """k-shot multiple-choice prompt: each shot is ``(question, choices, answer index)`` answered ``" (X)"``."""
    blocks = [mc_question(q, c) + f" ({LETTERS[a]})" for q, c, a in shots]
    return "\n\n".join([*blocks, mc_question(question, choices)])


def p_true_prompt(question: str, proposed: str, brainstormed: Sequence[str] = (), shots: str = "") -> str:
    """The P(True) prompt; with ``brainstormed`` samples it is the comparison-examples variant (§4.2)."""
    if brainstormed:
        ideas = "\n".join(s.strip() for s in brainstormed)
        body = (f"Question: {question.strip()}\nHere are some brainstormed ideas: {ideas}\n"
                f"Possible Answer: {proposed.strip()}\nIs the possible answer:\n(A) True\n(B) False\n"
                "The possible answer is:")
    else:
        body = (f"Question: {question.strip()}\nProposed Answer: {proposed.strip()}\nIs the proposed answer:\n"
                "(A) True\n(B) False\nThe proposed answer is:")
    return shots + body


def qa_block(question: str, answer: str | None = None) -> str:
    return f"Question: {question.strip()}\nAnswer:" + (f" {answer.strip()}" if answer is not None else "")


def answer_prompt(question: str, shots: Sequence[tuple[str, str]] = (), background: str | None = None) -> str:
    """Few-shot open-question prompt (the P(IK) input is this prompt; its last token carries the value head)."""
    parts = [qa_block(q, a) for q, a in shots]
    prefix = BACKGROUND_PREFIX.format(background=background.strip()) if background else ""
    return "\n\n".join([*parts, prefix + qa_block(question)])


def first_line(text: str) -> str:
    """A sampled answer up to the first newline (the sampling stop), stripped."""
    return text.split("\n", 1)[0].strip()
