"""Reasoning faithfulness: CoT intervention tests (Lanham et al. 2023) and question decomposition
(Radhakrishnan et al. 2023) on BIG-bench tasks, multiple-choice JSONL or synthetic addition. See docs/reasoning.md.

From Python, one call per study; the config's type picks the study::

    from alignlab import reasoning
    run, summary = reasoning.run(reasoning.FaithfulnessConfig(source="strategyqa", limit=4), model="embedded")
"""

from __future__ import annotations

import os
from typing import Any

from alignlab.reasoning.config import DecomposeConfig, FaithfulnessConfig, SourceConfig
from alignlab.reasoning.questions import Question, load_questions
from alignlab.reasoning.runner import run_decomposition, run_faithfulness
from alignlab.reasoning.studies import DECOMPOSE, FAITHFULNESS, STUDIES, Helpers, with_helpers
from alignlab.runs.run import Run
from alignlab.runs.study import pick_study, run_study


def run(config: SourceConfig | None = None, model: Any = "embedded", *, out: str | os.PathLike[str] = "runs",
        resume: str | os.PathLike[str] | None = None, **options: Any) -> tuple[Run, dict[str, Any]]:
    """Run a reasoning study into a new run directory (or finish ``resume``); returns ``(run, summary)``.

    ``config`` is a :class:`FaithfulnessConfig` or a :class:`DecomposeConfig`; ``model`` a spec, a loaded model,
    or a list of either (one run, several models). The helper models named in the config (``mistake_model``,
    ``paraphrase_model``) are loaded once, with the run's dtype, ``cache`` and ``load``, and closed at the end.
    ``options`` go to :func:`alignlab.runs.study.run_study` (``dtype``, ``cache``, ``progress``, ``report``,
    ``load``).
    """
    study = pick_study(STUDIES, config, resume)
    with Helpers(load=options.get("load"), cache=options.get("cache", True)) as helpers:
        return run_study(with_helpers(study, helpers), config, model, out=out, resume=resume, **options)


__all__ = ["DECOMPOSE", "FAITHFULNESS", "DecomposeConfig", "FaithfulnessConfig", "Question", "SourceConfig",
           "load_questions", "run", "run_decomposition", "run_faithfulness"]
