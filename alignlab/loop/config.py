"""The loop's config: one dataclass for the whole chain, each field a flag of ``alignlab loop``.

The defaults are the CPU smoke recipe of ``docs/loop.md`` (minutes per stage on the embedded model). A YAML file
(``--config loop.yaml``) sets any field, ``stage_options`` included (extra fields for one stage's own config,
e.g. ``{"sft": {"lora_r": 16}}``); flags given on the command line win over the file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignlab.runs.config import StudyConfig, option

# The stages, in order; ``--stages`` names a subset (a stage needs the outputs of those it lists in NEEDS).
STAGES = ("scorer", "audit_before", "redteam_before", "revise", "sft", "label", "pm", "rl", "audit_after",
          "redteam_after", "explain")
RL_METHODS = ("rloo", "grpo", "dpo", "none")
FORMATS = ("auto", "chat", "raw_hh")
TARGETS = ("plain", "prompted", "rejection")


@dataclass
class LoopConfig(StudyConfig):
    """``alignlab loop``: attack -> fix (Constitutional AI) -> re-audit -> explain, one run directory."""

    model: str = option("embedded", "The base model (embedded, hf:<id-or-path>): audited, attacked, then trained.",
                        short="-m")
    scorer: str | None = option(None, "The one harmlessness scorer of every measurement: pm:<folder>, "
                                      "pm:hf:<id-or-path> or judge:<spec> (never the base model itself). Default: a "
                                      "PM trained in the 'scorer' stage on human harmlessness pairs.")
    stages: list[str] = option(help=f"Comma-separated stages to run (default: all): {', '.join(STAGES)}.",
                               factory=list, csv=True, choices=STAGES)
    seed: int = option(0, "Seeds the data splits, sampling and training.", minimum=0)
    data: str | None = option(None, "Dataset folder (else $ALIGNLAB_DATA, the user cache, then a download).")
    prompt_format: str = option("auto", "auto (the chat template when the model has one), chat or raw_hh; passed to "
                                        "every stage that takes it.", flag="--format", choices=FORMATS)
    # -- the data splits (disjoint rows of hh-rlhf harmless-base, or the user's files) --
    attacks: int = option(8, "Red-team attacks (before and after).", minimum=1)
    calibration_pairs: int = option(32, "Pairs that set the scorer's threshold.", minimum=1)
    cai_prompts: int = option(8, "Prompts for revise, label and RL.", minimum=1)
    scorer_pairs: int = option(100, "Human harmlessness pairs the 'scorer' stage trains on (20% held out).",
                               minimum=2)
    attacks_file: str | None = option(None, "Your own attacks (JSONL with prompt); checked against the other splits.")
    cai_file: str | None = option(None, "Your own CAI prompts (JSONL with prompt); checked against the other splits.")
    calibration_file: str | None = option(None, "Your own calibration pairs (hh-rlhf chosen/rejected JSONL).")
    # -- the stages' sizes --
    audit_budget: str = option("small", "Audit budget (small or full).", choices=("small", "full"))
    audit_studies: list[str] = option(help="Studies of the before/after audits (the alignment tax).",
                                      factory=lambda: ["bigbench"], csv=True)
    targets: list[str] = option(help="Red-team target types.", factory=lambda: ["plain"], csv=True, choices=TARGETS)
    max_new_tokens: int = option(48, "Tokens per reply (red team, revise, label, RL completions).", minimum=1)
    rounds: int = option(1, "Critique/revision rounds (paper: 4).", minimum=1)
    feedback_model: str | None = option(None, "Model that samples the response pairs and labels them (AI feedback; "
                                                    "default: the base model).")
    rl_method: str = option("rloo", "rloo, grpo (against the PM), dpo (on the AI-feedback labels) or none.",
                            choices=RL_METHODS)
    scorer_steps: int = option(16, "Optimizer steps of the scorer PM.", minimum=1)
    sft_steps: int = option(8, "SL-CAI optimizer steps.", minimum=1)
    pm_steps: int = option(8, "AI-feedback PM optimizer steps.", minimum=1)
    rl_steps: int = option(4, "RL (or DPO) optimizer steps.", minimum=1)
    batch_size: int = option(4, "Examples (prompts for RL) per step.", minimum=1)
    learning_rate: float = option(1e-4, "Learning rate of every trainer.", flag="--lr", minimum=0)
    lora: bool = option(True, "LoRA (merged when saved) or full fine-tuning.", flag="--lora/--full")
    explain_top: int = option(3, "Most-changed responses explained by influence.", minimum=0)
    influence_max_length: int = option(128, "Tokens per training sequence and query in the influence fit.",
                                       minimum=8)
    stage_options: dict[str, dict[str, Any]] = option(help="Extra fields of each stage's own config (YAML/Python).",
                                                      factory=dict, cli=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("attacks_file", "cai_file", "calibration_file", "data"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, str(value))
        if self.scorer is not None:
            kind = self.scorer.split(":", 1)[0]
            if kind not in ("pm", "judge") or not self.scorer.partition(":")[2]:
                raise ValueError(f"scorer (--scorer) must be pm:<folder>, pm:hf:<id> or judge:<spec>, got "
                                 f"{self.scorer!r}")
            if self.scorer in (f"judge:{self.model}",):
                raise ValueError(f"scorer (--scorer) {self.scorer} is the base model judging itself: name another "
                                 f"judge or a pm: (the loop compares the base with its trained policy)")
        unknown = sorted(set(self.stage_options) - set(STAGES))
        if unknown:
            raise ValueError(f"stage_options: unknown stages {', '.join(unknown)}; stages: {', '.join(STAGES)}")
        for name in ("attacks_file", "cai_file", "calibration_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name} (--{name.replace('_', '-')}): {path} not found")

    def model_specs(self) -> list[tuple[str, str]]:
        """``(field, spec)`` of the models this config names, checked by the CLI before the run opens."""
        judge = [("scorer", self.scorer.removeprefix("judge:"))] if self.scorer and self.scorer.startswith(
            "judge:") else []
        feedback = [("feedback_model", self.feedback_model)] if self.feedback_model else []
        return [("model", self.model), *judge, *feedback]


def from_file(path: str | Path) -> dict[str, Any]:
    """The fields a YAML (or JSON) loop config sets, checked against :class:`LoopConfig`."""
    import yaml

    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot read the loop config ({err})") from err
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a loop config is a mapping of field: value")
    names = {f.name for f in dataclasses.fields(LoopConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{path}: unknown fields {', '.join(unknown)}")
    return values


def merged(file_values: dict[str, Any], cli_values: dict[str, Any]) -> LoopConfig:
    """The config of a YAML file overridden by the command line's values that differ from the defaults."""
    defaults = LoopConfig().as_dict()
    values = dict(file_values)
    for name, value in cli_values.items():
        if name in defaults and value is not None and value != defaults[name]:
            values[name] = value
    return LoopConfig(**values)
