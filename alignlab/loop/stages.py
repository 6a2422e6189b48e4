"""The loop's stages: each calls one study's Python API (the same call as its CLI command) into its own folder.

Every stage config is built from the loop's config through :func:`build`, which sets only the fields the study's
config has in this alignlab version (an option a study does not have yet is left out and noted, not a crash) and
then the stage's ``stage_options``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignlab.loop.config import LoopConfig
from alignlab.loop.splits import Splits
from alignlab.loop.subruns import sub_run

Progress = Callable[[str, int, int], None]


@dataclass
class Context:
    """What the stages share: the loop's config and run directory, the splits, the finished stages' runs."""

    config: LoopConfig
    root: Path
    splits: Splits
    prompt_format: str  # "chat" or "raw_hh", resolved from config.prompt_format
    runs: dict[str, Path] = field(default_factory=dict)
    dtype: str = "float32"
    cache: bool = True
    progress: Progress | None = None
    load: Callable[..., Any] | None = None
    notes: list[str] = field(default_factory=list)

    def options(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "cache": self.cache, "progress": self.progress, "load": self.load}

    def scorer(self) -> str:
        """The fixed harmlessness scorer: the user's, else the PM of the 'scorer' stage."""
        if self.config.scorer:
            return self.config.scorer
        if "scorer" not in self.runs:
            raise ValueError("no --scorer given and the 'scorer' stage has not run: run it, or name a scorer")
        return f"pm:{self.runs['scorer'] / 'pm'}"

    def scorer_if_ready(self) -> str | None:
        return self.config.scorer or (f"pm:{self.runs['scorer'] / 'pm'}" if "scorer" in self.runs else None)

    def policy(self) -> str:
        """The trained policy: RL's (or DPO's) when that stage ran, else SL-CAI's."""
        for stage in ("rl", "sft"):
            if stage in self.runs and (self.runs[stage] / "policy").is_dir():
                return f"hf:{self.runs[stage] / 'policy'}"
        raise ValueError("no trained policy yet: run the sft (and rl) stages first")


def build(cls: type, ctx: Context, stage: str, **values: Any) -> Any:
    """``cls(**values)`` keeping only fields ``cls`` has (others are noted), then ``stage_options[stage]``."""
    names = {f.name for f in dataclasses.fields(cls)}
    if "format" in values and "format" not in names and "prompt_format" in names:
        values["prompt_format"] = values.pop("format")  # the red team's name for the same option
    missing = sorted(k for k, v in values.items() if k not in names and v is not None)
    if missing:
        note = f"{stage}: {cls.__name__} has no {', '.join(missing)} in this version (left out)"
        if note not in ctx.notes:
            ctx.notes.append(note)
    chosen = {k: v for k, v in values.items() if k in names}
    extra = ctx.config.stage_options.get(stage, {})
    unknown = sorted(set(extra) - names)
    if unknown:
        raise ValueError(f"stage_options.{stage}: {cls.__name__} has no field {', '.join(unknown)}")
    return cls(**{**chosen, **extra})


def _format(ctx: Context) -> dict[str, str]:
    """The resolved conversation format (``build`` renames it for configs that call it ``prompt_format``)."""
    return {"format": ctx.prompt_format}


def _train(ctx: Context, steps: int) -> dict[str, Any]:
    c = ctx.config
    return {"steps": steps, "batch_size": c.batch_size, "learning_rate": c.learning_rate, "lora": c.lora,
            "seed": c.seed}


# -- the stages ---------------------------------------------------------------------------------------------------
def scorer(ctx: Context, folder: Path) -> Path:
    """A harmlessness PM trained on human pairs (hh-rlhf harmless-base, the scorer_pairs split)."""
    from alignlab import constitution

    config = build(constitution.PMConfig, ctx, "scorer", human=[ctx.splits.files["scorer_pairs"]],
                   base=ctx.config.model, data=ctx.config.data, eval_fraction=0.2,
                   **_train(ctx, ctx.config.scorer_steps))
    return sub_run(folder, lambda out, resume: constitution.run(config, out=out, **_no_load(ctx)), resumable=False)


def audit(ctx: Context, folder: Path, *, after: bool) -> Path:
    """The audit of the base model (before) or of the base and the policy side by side (after)."""
    from alignlab import audit as audit_study

    config = build(audit_study.AuditConfig, ctx, "audit_after" if after else "audit_before",
                   budget=ctx.config.audit_budget, studies=list(ctx.config.audit_studies), data=ctx.config.data,
                   redteam_scorer=ctx.scorer() if "redteam" in ctx.config.audit_studies else None)
    compare = ctx.policy() if after else None
    return sub_run(folder, lambda out, resume: audit_study.run(config, ctx.config.model, compare=compare, out=out,
                                                               resume=resume, **ctx.options()), resumable=True)


def redteam(ctx: Context, folder: Path, *, after: bool) -> Path:
    """The loop's attacks against the base model (before) or the policy (after), scored by the fixed scorer."""
    from alignlab import redteam as rt

    c = ctx.config
    target_model = ctx.policy() if after else c.model
    config = build(rt.RedteamConfig, ctx, "redteam_after" if after else "redteam_before",
                   sources=[f"jsonl:{ctx.splits.files['attacks']}"], targets=list(c.targets), scorers=[ctx.scorer()],
                   model=target_model, attacker=c.model, limit=None, max_new_tokens=c.max_new_tokens,
                   calibration_pairs=c.calibration_pairs, seed=c.seed, data=c.data, landscape=False,
                   calibration=ctx.splits.files.get("calibration"), **_format(ctx))
    return sub_run(folder, lambda out, resume: rt.run(config, out=out, resume=resume, **ctx.options()),
                   resumable=True)


def revise(ctx: Context, folder: Path) -> Path:
    from alignlab import constitution

    c = ctx.config
    config = build(constitution.ReviseConfig, ctx, "revise", prompts=ctx.splits.files["cai"], rounds=c.rounds,
                   seed=c.seed, data=c.data, max_new_tokens=c.max_new_tokens, scorer=ctx.scorer_if_ready(),
                   **_format(ctx))
    return sub_run(folder, lambda out, resume: constitution.run(config, c.model, out=out, resume=resume,
                                                                **ctx.options()), resumable=True)


def sft(ctx: Context, folder: Path) -> Path:
    from alignlab import constitution

    config = build(constitution.SLConfig, ctx, "sft", data=str(ctx.runs["revise"] / "sft.jsonl"),
                   model=ctx.config.model, **_format(ctx), **_train(ctx, ctx.config.sft_steps))
    return sub_run(folder, lambda out, resume: constitution.run(config, out=out, **_no_load(ctx)), resumable=False)


def label(ctx: Context, folder: Path) -> Path:
    """AI feedback: the feedback model (default: the base model) samples two replies per CAI prompt and labels them."""
    from alignlab import constitution

    c = ctx.config
    config = build(constitution.LabelConfig, ctx, "label", prompts=ctx.splits.files["cai"], seed=c.seed,
                   data=c.data, max_new_tokens=c.max_new_tokens, **_format(ctx))
    return sub_run(folder, lambda out, resume: constitution.run(config, c.feedback_model or c.model, out=out,
                                                                resume=resume, **ctx.options()), resumable=True)


def pm(ctx: Context, folder: Path) -> Path:
    from alignlab import constitution

    config = build(constitution.PMConfig, ctx, "pm", ai_labels=[str(ctx.runs["label"] / "labels.jsonl")],
                   base=ctx.config.model, data=ctx.config.data, **_train(ctx, ctx.config.pm_steps))
    return sub_run(folder, lambda out, resume: constitution.run(config, out=out, **_no_load(ctx)), resumable=False)


def rl(ctx: Context, folder: Path) -> Path:
    """RLOO/GRPO against the AI-feedback PM, or DPO on the AI labels; starts from the SL-CAI policy (§4)."""
    from alignlab import constitution

    c = ctx.config
    start = f"hf:{ctx.runs['sft'] / 'policy'}"
    data = ({"pairs": str(ctx.runs["label"] / "labels.jsonl")} if c.rl_method == "dpo"
            else {"pm": str(ctx.runs["pm"] / "pm"), "prompts": ctx.splits.files["cai"]})
    config = build(constitution.RLConfig, ctx, "rl", method=c.rl_method, model=start, data=c.data,
                   max_completion_length=c.max_new_tokens, **data, **_format(ctx), **_train(ctx, c.rl_steps))
    return sub_run(folder, lambda out, resume: constitution.run(config, out=out, **_no_load(ctx)), resumable=False)


def _no_load(ctx: Context) -> dict[str, Any]:
    return {"progress": ctx.progress}


def has_field(cls: type, name: str) -> bool:
    return name in {f.name for f in dataclasses.fields(cls)}
