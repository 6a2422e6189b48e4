"""The constitution study's configs: each field is a flag of one ``alignlab constitution`` command.

- :class:`ReviseConfig`: ``revise``, run directory ``constitution-revise-*``;
- :class:`LabelConfig`: ``label``, ``constitution-label-*``;
- :class:`QuestionsConfig`: ``questions``, ``constitution-questions-*``;
- :class:`SLConfig`: ``train-sft``, ``constitution-sft-*`` (saves ``<run>/policy``);
- :class:`PMConfig`: ``train-pm``, ``constitution-pm-*`` (saves ``<run>/pm``);
- :class:`RLConfig`: ``train-rl``, ``constitution-<method>-*`` (saves ``<run>/policy``);
- :class:`EvaluatePMConfig`: ``evaluate-pm``, ``constitution-evaluate-pm-*``.

The generation commands (revise, label, questions) take the model as ``--model`` next to the config, as every
evaluation study does; the training commands name the model they start from in the config itself (``model`` or
``base``), as TRL's trainer configs do, since it is part of what is trained. ``--lr`` is ``learning_rate`` and
``--lora/--full`` is ``lora``; every other flag is its field's name with ``-`` for ``_``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from alignlab.constitution.prompts import CRITIQUE_EXAMPLES
from alignlab.runs.config import StudyConfig, option

METHODS = ("rloo", "grpo", "dpo")
Method = Literal["rloo", "grpo", "dpo"]
PERSONA_DATASETS = ("persona/desire-for-acquiring-power", "persona/no-shut-down")

_CONSTITUTION = ("Built-in name (harmless, good_for_humanity, power_seeking, self_preservation, self_replication, "
                 "risk_seeking, self_identity) or a .yaml file.")
_LIMIT = "At most this many prompts/pairs (a seeded subset)."
_SEED = "Seeds subsets, principle draws and sampling."
_PROMPTS = "JSONL of prompts (prompt/question, or hh-rlhf chosen); default hh-rlhf harmless-base test."
_DATA = "Dataset path (else $ALIGNLAB_DATA, the user cache, then a download)."
_MODEL = "Model spec: embedded, hf:<id-or-path>, openai:<model>@<base_url>."
FORMAT_CHOICES = ("auto", "chat", "raw_hh")
_FORMAT = ("Transcript format: chat (the model's chat template), raw_hh (Human:/Assistant: text), or auto (chat when "
           "the tokenizer has a template, else raw_hh).")


@dataclass
class ReviseConfig(StudyConfig):
    """``alignlab constitution revise``: SL-CAI critique/revision data (Bai et al. 2022 §3)."""

    constitution: str = option("harmless", _CONSTITUTION, short="-c")
    rounds: int = option(4, "Critique/revision rounds (paper: 4).", minimum=1)
    prompts: str | None = option(None, _PROMPTS)
    helpful_prompts: str | None = option(None, "JSONL of helpfulness prompts whose samples join sft.jsonl.")
    limit: int | None = option(None, _LIMIT, minimum=1)
    seed: int = option(0, _SEED, minimum=0)
    data: str | None = option(None, _DATA)
    max_new_tokens: int = option(64, "Tokens per generation.", minimum=1)
    temperature: float = option(1.0, "Sampling temperature of responses, critiques and revisions (paper: 1).",
                                minimum=0)
    few_shot: int = option(3, f"Example transcripts in each prompt (0-{len(CRITIQUE_EXAMPLES)}).", minimum=0,
                           maximum=len(CRITIQUE_EXAMPLES))
    chunk_size: int = option(16, "Prompts per model call in a round.", minimum=1)
    prompt_format: str = option("auto", _FORMAT, flag="--format", choices=FORMAT_CHOICES)
    scorer: str | None = option(None, "Score originals vs final revisions: pm:<folder> or judge:<model spec>.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scorer is not None and not self.scorer.startswith(("pm:", "judge:")):
            raise ValueError(f"scorer (--scorer) must be pm:<folder> or judge:<model spec>, got {self.scorer!r}")


@dataclass
class LabelConfig(StudyConfig):
    """``alignlab constitution label``: AI feedback, soft labels P(A better) for response pairs (Bai et al. §4.1)."""

    constitution: str = option("harmless", _CONSTITUTION, short="-c")
    prompts: str | None = option(None, _PROMPTS)
    pairs: str | None = option(None, "JSONL with question, response_a, response_b to label (else two samples per "
                                     "prompt).")
    limit: int | None = option(None, _LIMIT, minimum=1)
    seed: int = option(0, _SEED, minimum=0)
    data: str | None = option(None, _DATA)
    ensemble: int = option(1, "Principles per pair, labels averaged.", minimum=1)
    swap: bool = option(True, "Also score (B, A) and average.", flag="--swap/--no-swap")
    cot: bool = option(False, "Chain-of-thought labels, clamped to [0.4, 0.6].")
    cot_samples: int = option(1, "CoT samples averaged per label.", minimum=1)
    max_new_tokens: int = option(64, "Response/CoT length.", minimum=1)
    few_shot: bool = option(True, "Our example comparisons before each feedback prompt.",
                            flag="--few-shot/--zero-shot")
    chunk_size: int = option(16, "Pairs per model call.", minimum=1)
    prompt_format: str = option("auto", _FORMAT, flag="--format", choices=FORMAT_CHOICES)


@dataclass
class QuestionsConfig(StudyConfig):
    """``alignlab constitution questions``: trait questions written by the model (Kundu et al. 2023 §2.2)."""

    constitution: str = option("power_seeking", _CONSTITUTION, short="-c")
    n: int = option(32, "Questions to sample (before cleaning).", minimum=1)
    seed: int = option(0, _SEED, minimum=0)
    data: str | None = option(None, _DATA)
    prompt_format: str = option("auto", _FORMAT, flag="--format", choices=FORMAT_CHOICES)


@dataclass
class TrainConfig(StudyConfig):
    """Flags every trainer shares (mapped onto TRL's ``TrainingArguments`` by ``training.trainer_args``)."""

    steps: int = option(5, "Optimizer steps.", minimum=1)
    batch_size: int = option(2, "Examples (prompts for RL) per step.", minimum=1)
    learning_rate: float = option(1e-4, "Learning rate.", flag="--lr", minimum=0)
    lora: bool = option(True, "LoRA (all linear layers, merged when saved) or full.", flag="--lora/--full")
    lora_r: int = option(8, "LoRA rank (alpha = 2 x rank).", minimum=1)
    seed: int = option(0, _SEED, minimum=0)
    max_length: int = option(256, "Truncate/drop training sequences beyond this.", minimum=1)

    def model_specs(self) -> list[tuple[str, str]]:
        """``(field, model spec)`` of the model trained from, checked by the CLI before a run opens."""
        return [(name, spec) for name in ("model", "base") if isinstance(spec := getattr(self, name, None), str)]


@dataclass(kw_only=True)
class SLConfig(TrainConfig):
    """``alignlab constitution train-sft``: SL-CAI fine-tuning on the revisions (TRL SFTTrainer)."""

    data: str = option(help="sft.jsonl from `revise` (prompt/completion rows).")
    model: str = option("embedded", _MODEL, short="-m")
    max_round: int | None = option(None, "Keep revisions up to this round.", minimum=0)
    prompt_format: str = option("auto", _FORMAT + " auto follows the data's format (sft.jsonl rows record it).",
                                flag="--format", choices=FORMAT_CHOICES)


@dataclass
class PMConfig(TrainConfig):
    """``alignlab constitution train-pm``: a preference model on soft AI labels mixed with human comparisons."""

    ai_labels: list[str] = option(help="labels.jsonl from `label` (soft AI labels); repeat for several.",
                                  factory=list)
    human: list[str] = option(help="hh-rlhf-format comparisons (human helpfulness, pref = 1); repeat for several.",
                              factory=list)
    helpful_base: int = option(0, "Also N hh-rlhf helpful-base comparisons (downloaded when online).", minimum=0)
    base: str = option("embedded", "Model spec the PM starts from.")
    binarize: bool = option(False, "Round AI labels to 0/1.")
    eval_fraction: float = option(0.2, "Held-out share of each source.", minimum=0)
    limit: int | None = option(None, _LIMIT, minimum=1)
    data: str | None = option(None, _DATA)
    top_layers: int | None = option(None, "Train only the top N transformer blocks and the head (lower ones "
                                          "frozen: a much cheaper step on CPU); default all.", minimum=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction (--eval-fraction) must be in [0, 1), got {self.eval_fraction}")


@dataclass
class RLConfig(TrainConfig):
    """``alignlab constitution train-rl``: RLOO/GRPO against a PM with a KL term, or DPO on preference pairs."""

    method: Method = option("rloo", "rloo (default), grpo, or dpo.", choices=METHODS)
    model: str = option("embedded", _MODEL, short="-m")
    pm: str | None = option(None, "PM folder from train-pm (rloo/grpo).")
    prompts: str | None = option(None, _PROMPTS)
    pairs: str | None = option(None, "dpo.jsonl (revise) or labels.jsonl (label), for dpo.")
    beta: float = option(0.05, "KL coefficient (rloo/grpo) or DPO beta.", minimum=0)
    num_generations: int = option(2, "Completions per prompt.", minimum=1)
    max_completion_length: int = option(32, "Tokens.", minimum=1)
    limit: int | None = option(None, _LIMIT, minimum=1)
    data: str | None = option(None, _DATA)
    prompt_format: str = option("auto", _FORMAT + " For dpo, auto follows the pairs' format.", flag="--format",
                                choices=FORMAT_CHOICES)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method != "dpo" and not self.pm:
            raise ValueError(f"--pm is required for {self.method} (train one with `alignlab constitution train-pm`)")
        if self.method == "dpo" and not self.pairs:
            raise ValueError("--pairs is required for dpo (a revise run's dpo.jsonl or a label run's labels.jsonl)")
        if self.method != "dpo" and self.beta <= 0:
            raise ValueError("beta must be > 0: the KL term against the starting policy is part of RL-CAI")


@dataclass(kw_only=True)
class EvaluatePMConfig(StudyConfig):
    """``alignlab constitution evaluate-pm``: persona-eval win rates (Kundu et al. 2023 §2.4) and comparison
    accuracy of a trained PM."""

    pm: str = option(help="PM folder from train-pm, or a reward model as hf:<id-or-path>.")
    datasets: list[str] = option(help="Comma-separated persona datasets.", factory=lambda: list(PERSONA_DATASETS),
                                 csv=True)
    pairs: list[str] = option(help="Comparison files (hh-rlhf format) to measure accuracy on; repeat for several.",
                              factory=list)
    limit: int | None = option(200, _LIMIT, minimum=1)
    seed: int = option(0, _SEED, minimum=0)
    data: str | None = option(None, _DATA)

    def __post_init__(self) -> None:
        if isinstance(self.datasets, str):  # "a,b" as on the command line
            self.datasets = self.datasets.split(",")
        super().__post_init__()
        self.datasets = [d.strip() for d in self.datasets if d.strip()]


CONFIGS = (ReviseConfig, LabelConfig, QuestionsConfig, SLConfig, PMConfig, RLConfig, EvaluatePMConfig)
