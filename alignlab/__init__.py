"""alignlab: the methods of a family of alignment-research papers, on any open or API language model.

The public API is small; everything else is private detail::

    import alignlab
    model = alignlab.load_model("embedded")                      # or "hf:<id-or-path>", "openai:<model>@<url>"
    model.score_one("Q: 2+2=\\nA:", [" 4", " 5"]).logprobs
    summary = alignlab.run_bigbench_tasks(["hhh_alignment"], model="embedded")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alignlab.models import (
    ContinuationScore,
    Conversation,
    GenerateParams,
    GenerateRequest,
    GenerateResult,
    Message,
    Model,
    ModelError,
    NextTokenRequest,
    NextTokenResult,
    ScoreRequest,
    ScoreResult,
    load_model,
    parse_spec,
)
from alignlab.runs import RequestCache, Run

__version__ = "0.1.0"


def run_bigbench_tasks(tasks: list[str], *, model: str | Model = "embedded", shots: int = 0, seed: int = 42,
                       max_examples: int | None = None, data: str | None = None, out: str | Path = "runs",
                       report: bool = True) -> tuple[Run, dict[str, Any]]:
    """Run BIG-bench JSON tasks on one model into a new run directory; returns ``(run, summary)``."""
    from alignlab.bigbench.runner import BigBenchConfig, run_bigbench
    from alignlab.report import write_report

    config = BigBenchConfig(tasks=list(tasks), shots=shots, seed=seed, max_examples=max_examples, data=data)
    loaded = load_model(model) if isinstance(model, str) else model
    spec = loaded.spec
    run = Run.create("bigbench", {"study": {k: v for k, v in vars(config).items() if k != "errors"},
                                  "models": [spec], "dtype": loaded.describe().get("dtype")}, root=out, seed=seed)
    summary = run_bigbench(run, [loaded], config)
    run.finish(summary)
    if report:
        write_report(run.path)
    return run, summary


def run_behavior_evals(datasets: list[str], *, model: str | Model = "embedded", prompt_format: str = "raw_hh",
                       max_items: int | None = None, seed: int = 0, data: str | None = None, out: str | Path = "runs",
                       report: bool = True) -> tuple[Run, dict[str, Any]]:
    """Score model-written behaviour datasets (Perez et al. 2022) into a new run; returns ``(run, summary)``."""
    from alignlab.behaviors.runner import BehaviorsConfig, run_behaviors
    from alignlab.report import write_report

    config = BehaviorsConfig(datasets=list(datasets), prompt_format=prompt_format, max_items=max_items,  # type: ignore[arg-type]
                             seed=seed, data=data)
    loaded = load_model(model) if isinstance(model, str) else model
    run = Run.create("behaviors", {"study": vars(config), "models": [loaded.spec]}, root=out, seed=seed)
    summary = run_behaviors(run, [loaded], config)
    run.finish(summary)
    if report:
        write_report(run.path)
    return run, summary


__all__ = [
    "ContinuationScore", "Conversation", "GenerateParams", "GenerateRequest", "GenerateResult", "Message", "Model",
    "ModelError", "NextTokenRequest", "NextTokenResult", "RequestCache", "Run", "ScoreRequest", "ScoreResult",
    "load_model", "parse_spec", "run_behavior_evals", "run_bigbench_tasks", "__version__",
]
