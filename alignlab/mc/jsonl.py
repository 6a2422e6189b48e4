"""The generic multiple-choice JSONL file as a benchmark: ``Question: ...\\nAnswer:`` then each choice."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from alignlab.data.multiple_choice import load_mc_jsonl
from alignlab.mc.benchmark import Benchmark, Question
from alignlab.mc.config import MCConfig
from alignlab.runs.config import option


@dataclass
class JsonlConfig(MCConfig):
    """``alignlab mc FILE``: the file, then the generic multiple-choice options."""

    path: str | None = option(None, 'A multiple-choice .jsonl: one {"question", "choices", "answer"} per line.',
                              argument=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path:
            raise ValueError("path: name a multiple-choice .jsonl file")


class JsonlBenchmark(Benchmark):
    name = "mc"
    reproduces = ("Zero-shot multiple choice as lm-evaluation-harness scores it: each choice is a continuation of "
                  "'Question: ...\\nAnswer:', the answer is the choice of highest log-probability ('acc'; "
                  "--scoring mean for the per-token variant).")
    config_class = JsonlConfig

    def questions(self, config: MCConfig) -> Iterable[Question]:
        assert isinstance(config, JsonlConfig) and config.path
        for item in load_mc_jsonl(Path(config.path).expanduser()):
            yield Question(item.id, f"Question: {item.question}\nAnswer:", tuple(f" {c}" for c in item.choices),
                           item.answer)
