"""The reasoning studies' configs: each field is a flag of ``alignlab reasoning faithfulness|decompose``.

``source`` is the positional argument (a BIG-bench task, a multiple-choice .jsonl, or ``addition``); the helper
models (``mistake_model``, ``paraphrase_model``) are model specs, loaded with the run's dtype next to the evaluated
model (None: the evaluated model writes its own mistakes and paraphrases).
"""

from __future__ import annotations

from dataclasses import dataclass

from alignlab.models.types import PromptFormat
from alignlab.reasoning.cot import Sampling
from alignlab.reasoning.questions import Question, load_questions
from alignlab.runs.config import StudyConfig, option

TESTS = ("early", "mistakes", "paraphrase", "filler")
METHODS = ("zero_shot", "few_shot", "cot", "cot_decomposition", "factored")
BIASES = ("none", "always_a", "suggested")
PROMPT_FORMATS = ("raw_hh", "chat")

_SOURCE_HELP = ("strategyqa, logical_deduction (BIG-bench names or folders), a multiple-choice .jsonl, or addition / "
                "addition:2,4,8,16 (seeded synthetic sums).")
_MISTAKE_HELP = "Model spec that writes the mistakes (default: the evaluated model)."
_TOKENS_HELP = "Longest CoT / decomposition sampled."
_CHUNK_HELP = "Questions per batch of model calls (saved as they finish)."


@dataclass
class SourceConfig(StudyConfig):
    """The questions and prompt format of a reasoning study (the base of both studies' configs)."""

    source: str = option("strategyqa", _SOURCE_HELP, argument=True)
    limit: int | None = option(4, "At most this many questions (a seeded subset; addition: how many sums, "
                                  "default 8).", minimum=1)
    seed: int = option(0, "Seeds the subset, sampling and suggested answers.", minimum=0)
    data: str | None = option(None, "Dataset path (else $ALIGNLAB_DATA, the user cache, then a download).")
    prompt_format: PromptFormat = option("raw_hh", "raw_hh (the papers' Human/Assistant text) or chat.",
                                         flag="--format", choices=PROMPT_FORMATS)

    def model_specs(self) -> list[tuple[str, str]]:
        """``(field, model spec)`` of the helper models, checked by the CLI before a run opens."""
        return [(name, spec) for name in ("mistake_model", "paraphrase_model") if (spec := getattr(self, name, None))]

    def questions(self) -> list[Question]:
        return load_questions(self.source, data=self.data, limit=self.limit, seed=self.seed)

    @staticmethod
    def _check_names(name: str, flag: str, value: list[str], allowed: tuple[str, ...], *, empty_ok: bool) -> None:
        unknown = sorted(set(value) - set(allowed))
        if unknown or not (value or empty_ok):
            raise ValueError(f"{name} ({flag}): unknown{'' if empty_ok else ' or empty'} {name} {unknown}; choose "
                             f"from {list(allowed)}")


@dataclass
class FaithfulnessConfig(SourceConfig):
    """``alignlab reasoning faithfulness``: Lanham et al.'s four tests on sampled CoTs."""

    mistake_model: str | None = option(None, _MISTAKE_HELP)
    paraphrase_model: str | None = option(None, "Model spec that paraphrases (default: the evaluated model).")
    tests: list[str] = option(help="Comma-separated: early,mistakes,paraphrase,filler.", factory=lambda: list(TESTS),
                              csv=True)
    samples: int = option(5, "CoT samples per question (the paper: 100).", minimum=1)
    max_new_tokens: int = option(128, _TOKENS_HELP, minimum=1)
    temperature: float = option(0.8, "", minimum=0)  # the paper's nucleus sampling: T = 0.8, p = 0.95
    top_p: float = option(0.95, "", minimum=0, maximum=1)
    filler_step: int = option(5, "Filler lengths step, in tokens.", minimum=1)
    chunk_size: int = option(4, _CHUNK_HELP, minimum=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_names("tests", "--tests", self.tests, TESTS, empty_ok=True)

    @property
    def sampling(self) -> Sampling:
        return Sampling(self.samples, self.max_new_tokens, self.temperature, self.top_p, self.seed)


@dataclass
class DecomposeConfig(SourceConfig):
    """``alignlab reasoning decompose``: Radhakrishnan et al.'s five methods, biased contexts and faithfulness."""

    mistake_model: str | None = option(None, _MISTAKE_HELP)
    methods: list[str] = option(help="Comma-separated: zero_shot,few_shot,cot,cot_decomposition,factored.",
                                factory=lambda: list(METHODS), csv=True)
    biases: list[str] = option(help="Comma-separated contexts: none,always_a,suggested.", factory=lambda: list(BIASES),
                               csv=True)
    faithfulness: bool = option(True, "Early answering and adding mistakes for cot, cot_decomposition, factored.",
                                flag="--faithfulness/--no-faithfulness")  # typer: a bare "--x" has no "--no-x"
    max_new_tokens: int = option(128, _TOKENS_HELP, minimum=1)
    temperature: float = option(0.0, "0 = greedy.", minimum=0)  # greedy: one answer per question and method
    top_p: float = option(1.0, "Nucleus sampling (Python only).", minimum=0, maximum=1, cli=False)
    chunk_size: int = option(4, _CHUNK_HELP, minimum=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_names("methods", "--methods", self.methods, METHODS, empty_ok=False)
        self._check_names("biases", "--biases", self.biases, BIASES, empty_ok=False)

    @property
    def sampling(self) -> Sampling:
        return Sampling(1, self.max_new_tokens, self.temperature, self.top_p, self.seed)
