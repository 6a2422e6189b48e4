"""Which stages run: the order, what each stage reads, and which stages a config leaves out."""

from __future__ import annotations

from alignlab.loop.config import STAGES, LoopConfig


def needs(stage: str, config: LoopConfig) -> tuple[str, ...]:
    """The stages whose outputs ``stage`` reads (under ``config``)."""
    scorer = () if config.scorer else ("scorer",)
    rl_inputs = ("sft", "label") if config.rl_method == "dpo" else ("sft", "pm")
    return {"scorer": (), "audit_before": scorer if "redteam" in config.audit_studies else (),
            "redteam_before": scorer, "revise": (), "sft": ("revise",), "label": (), "pm": ("label",),
            "rl": rl_inputs, "audit_after": ("sft", *(("rl",) if applies("rl", config) else ()),
                                             *(scorer if "redteam" in config.audit_studies else ())),
            "redteam_after": ("sft", *(("rl",) if applies("rl", config) else ()), *scorer),
            "explain": ("revise", "sft", "redteam_before", "redteam_after",
                        *(("rl",) if config.rl_method == "dpo" else ()))}[stage]


def applies(stage: str, config: LoopConfig) -> bool:
    """False for a stage the config leaves out (no scorer PM when one is named, no PM for DPO, ...)."""
    return {"scorer": config.scorer is None, "label": config.rl_method != "none",
            "pm": config.rl_method in ("rloo", "grpo"), "rl": config.rl_method != "none",
            "explain": config.explain_top > 0}.get(stage, True)


def plan(config: LoopConfig, done: set[str], chosen: list[str] | None = None) -> list[str]:
    """The stages to run now, in order: those chosen (default: all) that apply and are not done. Raises when one
    needs a stage that is neither done nor run before it."""
    wanted = [s for s in STAGES if (not chosen or s in chosen) and applies(s, config) and s not in done]
    ready = set(done)
    for stage in wanted:
        missing = [n for n in needs(stage, config) if n not in ready]
        if missing:
            raise ValueError(f"stage {stage} needs {', '.join(missing)} first: add {'/'.join(missing)} to --stages "
                             f"(or resume the loop with them)")
        ready.add(stage)
    return wanted
