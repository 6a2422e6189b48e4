"""The loop's runner: one run directory (``loop-*``), a sub-run per stage under ``stages/<stage>/``, one record per
finished stage in ``samples.jsonl``, and the loop's summary and report at the end.

Resuming (``resume=LOOP_DIR``) skips every stage whose sub-run is complete, finishes an interrupted one through its
own study's resume (or reruns a trainer, which does not resume), and runs the rest; ``stages`` picks a subset, in
the loop's order. A stage whose inputs are missing is refused with the stages to run first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from alignlab.loop import stages as S
from alignlab.loop.config import STAGES, LoopConfig
from alignlab.loop.plan import plan
from alignlab.loop.splits import Splits, make_splits
from alignlab.loop.subruns import complete_run, summary_of
from alignlab.runs.run import Run
from alignlab.runs.study import finish, marking_failure

NAME = "loop"
StageFn = Callable[[S.Context, Path], Path]


def _explain(ctx: S.Context, folder: Path) -> Path:
    from alignlab.loop.explain import explain

    return explain(ctx, folder)


RUNNERS: dict[str, StageFn] = {
    "scorer": S.scorer, "audit_before": partial(S.audit, after=False),
    "redteam_before": partial(S.redteam, after=False), "revise": S.revise, "sft": S.sft, "label": S.label,
    "pm": S.pm, "rl": S.rl, "audit_after": partial(S.audit, after=True),
    "redteam_after": partial(S.redteam, after=True), "explain": _explain}


def run(config: LoopConfig | None = None, *, out: str | os.PathLike[str] = "runs",
        resume: str | os.PathLike[str] | None = None, stages: list[str] | None = None, dtype: str = "float32",
        cache: bool = True, progress: Callable[[str, int, int], None] | None = None, report: bool = True,
        load: Callable[..., Any] | None = None, command: str | None = None,
        on_open: Callable[[Run], None] | None = None) -> tuple[Run, dict[str, Any]]:
    """Run the loop (or finish ``resume`` with its saved config); ``stages`` (default: the config's, else all)
    picks a subset. Returns ``(run, summary)``."""
    unknown = sorted(set(stages or []) - set(STAGES))
    if unknown:
        raise ValueError(f"stages (--stages): unknown {', '.join(unknown)}; stages: {', '.join(STAGES)}")
    if resume is not None:
        loop = Run.resume(resume, study=NAME)
        config = LoopConfig.from_dict(loop.manifest["config"]["study"])
        dtype = loop.manifest["config"].get("dtype", dtype)
    else:
        config = config or LoopConfig()
        loop = Run.create(NAME, {"study": config.as_dict(), "dtype": dtype}, root=out, seed=config.seed,
                          command=command)
    if on_open is not None:
        on_open(loop)
    with marking_failure(loop):
        ctx = _context(loop, config, dtype, cache, progress, load)
        todo = plan(config, set(ctx.runs), stages or config.stages or None)
        for number, stage in enumerate(todo, start=1):
            if progress:
                progress(f"loop: {stage}", number - 1, len(todo))
            _run_stage(loop, ctx, stage)
        from alignlab.loop.summary import loop_summary

        summary = loop_summary(ctx, loop.samples())
    finish(loop, summary, report=report)
    return loop, summary


def _context(loop: Run, config: LoopConfig, dtype: str, cache: bool, progress: Any, load: Any) -> S.Context:
    """The stages' shared state: the splits (written once, then read back) and the finished stages' runs."""
    samples = loop.samples()
    setup = next((s for s in samples if s.get("key") == "setup"), None)
    if setup is None:
        setup = _setup(loop, config)
        loop.append([setup])
    ctx = S.Context(config, loop.path, Splits.from_dict(setup["splits"]), setup["format"], dtype=dtype, cache=cache,
                    progress=progress, load=load)
    for record in samples:
        if record.get("kind") == "stage":
            ctx.runs[record["stage"]] = loop.path / record["run"]
    for stage in STAGES:  # a stage whose sub-run completed just before a kill, before its record was written
        folder = loop.path / "stages" / stage
        if stage not in ctx.runs and stage != "explain" and (found := complete_run(folder)) is not None:
            ctx.runs[stage] = found
            loop.append([_record(loop, stage, found, None)])
    return ctx


def _setup(loop: Run, config: LoopConfig) -> dict[str, Any]:
    from alignlab.data.resolve import resolve_dataset

    source = resolve_dataset("hh-rlhf/harmless-base/test.jsonl", data=config.data)
    sizes = {"calibration": 0 if config.calibration_file else config.calibration_pairs,
             "scorer_pairs": config.scorer_pairs if config.scorer is None else 0,
             "attacks": 0 if config.attacks_file else config.attacks,
             "cai": 0 if config.cai_file else config.cai_prompts}
    from alignlab.redteam.config import RedteamConfig

    calibration_first = not S.has_field(RedteamConfig, "calibration")
    user = {"attacks": config.attacks_file, "cai": config.cai_file, "calibration": config.calibration_file}
    splits = make_splits(Path(source), loop.path / "splits", sizes, seed=config.seed,
                         calibration_first=calibration_first, user_files=user)
    if calibration_first and config.calibration_file:
        splits.warnings.append("this red-team version calibrates on the first harmless-base rows, not on "
                               f"{config.calibration_file}")
    for warning in splits.warnings:
        import warnings

        warnings.warn(warning, stacklevel=2)
    return {"section": NAME, "model": config.model, "key": "setup", "kind": "setup", "format": resolve_format(config),
            "splits": splits.as_dict()}


def resolve_format(config: LoopConfig) -> str:
    """``auto``: chat when the base model's tokenizer has a chat template, else raw_hh."""
    if config.prompt_format != "auto":
        return config.prompt_format
    from transformers import AutoTokenizer

    from alignlab.constitution.training import model_path

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path(config.model))
    except (OSError, ValueError):
        return "chat"  # an API model: the server applies its own template
    return "chat" if getattr(tokenizer, "chat_template", None) else "raw_hh"


def _run_stage(loop: Run, ctx: S.Context, stage: str) -> None:
    started, noted = time.monotonic(), len(ctx.notes)
    run_dir = RUNNERS[stage](ctx, loop.path / "stages" / stage)
    ctx.runs[stage] = run_dir
    record = _record(loop, stage, run_dir, time.monotonic() - started)
    loop.append([{**record, "left_out": ctx.notes[noted:]}])


def _record(loop: Run, stage: str, run_dir: Path, seconds: float | None) -> dict[str, Any]:
    summary = summary_of(run_dir)
    cards = [{"label": c.get("label"), "value": c.get("value")} for c in summary.get("headline", [])]
    return {"section": NAME, "model": loop.manifest["config"]["study"]["model"], "key": f"stage|{stage}",
            "kind": "stage", "stage": stage,
            "run": os.path.relpath(run_dir, loop.path), "seconds": None if seconds is None else round(seconds, 1),
            "measure": cards, "notes": list(summary.get("notes", []))[:8]}
