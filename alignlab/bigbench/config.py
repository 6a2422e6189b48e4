"""The BIG-bench study's config: each field is a flag of ``alignlab bigbench``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alignlab.runs.config import Flag, StudyConfig, option


@dataclass
class BigBenchConfig(StudyConfig):
    """BIG-bench JSON tasks scored as BIG-bench 1.0.0 scores them."""

    tasks: list[str] = option(help="Task names (e.g. hhh_alignment) or folders.", argument=True)
    shots: int = option(0, "k-shot examples drawn as BIG-bench does.", minimum=0)
    seed: int = option(42, "Seeds the example subsample, the few-shot draws and the choice order (BIG-bench: 42).",
                       minimum=0)
    max_examples: int | None = option(None, "At most this many examples per task (split evenly over its "
                                            "subtasks, as BIG-bench does).", flag="--limit", minimum=1)
    data: str | None = option(None, "Dataset folder (else $ALIGNLAB_DATA, the user cache, then a download).")
    max_new_tokens: int = option(64, "Longest generation for generative examples.", minimum=1)
    tokenization: str = option(
        "bigbench", "How a choice is tokenised after its context: bigbench (the choice alone, its ids appended to the "
        "context's, as BIG-bench's HF model does) or joint (context + choice as one string).",
        choices=("bigbench", "joint"))
    chunk_size: int = option(32, "Examples per model call (saved as they finish; a crash loses at most one chunk).",
                             minimum=1)
    errors: list[str] = field(default_factory=list, init=False, repr=False, metadata={"cli": Flag(cli=False)})

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> BigBenchConfig:
        """A manifest from before ``--tokenization`` existed was scored jointly: resuming it stays joint."""
        return super().from_dict({"tokenization": "joint", **saved})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.tasks = list(self.tasks)
        if not self.tasks:
            raise ValueError("tasks: name at least one BIG-bench task (e.g. hhh_alignment)")
