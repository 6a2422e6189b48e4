"""The config of a multiple-choice benchmark of your own: each field is a CLI-style option (``runs/config.py``).

A benchmark that needs more settings subclasses :class:`MCConfig` and names it as its ``config_class``.
"""

from __future__ import annotations

from dataclasses import dataclass

from alignlab.runs.config import StudyConfig, option

SCORING = ("sum", "mean")


@dataclass
class MCConfig(StudyConfig):
    """Which questions, and how each choice is scored."""

    limit: int | None = option(None, "At most this many questions (a seeded subset, kept in file order).",
                               minimum=1)
    seed: int = option(0, "Seeds the subset and the bootstrap CIs.", minimum=0)
    data: str | None = option(None, "Dataset path (else $ALIGNLAB_DATA, the user cache, then a download).")
    scoring: str = option("sum", "sum: total log p of each choice (lm-eval 'acc'); mean: per token "
                                 "(length-normalised).", choices=SCORING)
    chunk_size: int = option(32, "Questions per model call (saved as they finish).", minimum=1)
