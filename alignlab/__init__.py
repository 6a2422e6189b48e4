"""alignlab: the methods of a family of alignment-research papers, on any open or API language model.

The public API is the model layer and one module per study; each study runs the same way, from a typed config::

    import alignlab
    from alignlab import fairness

    model = alignlab.load_model("embedded")                      # or "hf:<id-or-path>", "openai:<model>@<url>"
    model.score_one("Q: 2+2=\\nA:", [" 4", " 5"]).logprobs
    run, summary = fairness.run(fairness.BBQConfig(limit=8), model=model)
    alignlab.read_results(run.path)["results"]                   # value, n and CI per task and metric

Study modules (imported on first use): ``audit``, ``bigbench``, ``behaviors``, ``honesty``, ``fairness``,
``reasoning``, ``redteam``, ``constitution``, ``influence``, and ``mc`` (multiple-choice benchmarks of your own).
Everything else is private.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
from alignlab.runs.results import read_results

if TYPE_CHECKING:
    from alignlab import (
        audit,
        behaviors,
        bigbench,
        constitution,
        fairness,
        honesty,
        influence,
        reasoning,
        redteam,
    )

__version__ = "0.1.0"
STUDIES = ("audit", "bigbench", "behaviors", "honesty", "fairness", "reasoning", "redteam", "constitution",
           "influence", "mc")


def __getattr__(name: str) -> Any:
    """Study modules load on first use, so ``import alignlab`` stays light (no TRL, UMAP or kronfluence)."""
    if name in STUDIES:
        return importlib.import_module(f"alignlab.{name}")
    raise AttributeError(f"module 'alignlab' has no attribute {name!r}")


__all__ = [
    "ContinuationScore", "Conversation", "GenerateParams", "GenerateRequest", "GenerateResult", "Message", "Model",
    "ModelError", "NextTokenRequest", "NextTokenResult", "RequestCache", "Run", "ScoreRequest", "ScoreResult",
    "__version__", "audit", "behaviors", "bigbench", "constitution", "fairness", "honesty", "influence",
    "load_model", "mc", "parse_spec", "read_results", "reasoning", "redteam",
]
