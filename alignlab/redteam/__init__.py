"""Red teaming (Ganguli et al. 2022; LM-generated attacks after Perez et al. 2022): attacks, target types,
harmlessness scoring (min over assistant turns), attack success rates and the attack landscape.

From Python, one call per command; the config's type picks it (``RedteamConfig``: attack, ``GenerateConfig``,
``ScoreConfig``, ``MapConfig``)::

    from alignlab import redteam
    run, summary = redteam.run(redteam.RedteamConfig(targets=["plain", "prompted"], limit=8), model="embedded")
"""

from __future__ import annotations

import os
from typing import Any

from alignlab.redteam.attacks import Attack, continue_attacks, few_shot_examples, generate_attacks
from alignlab.redteam.config import GenerateConfig, MapConfig, RedteamConfig, ScoreConfig
from alignlab.redteam.pipeline import Resources, run_attack
from alignlab.redteam.scoring import (
    Calibration,
    JudgeScorer,
    PMScorer,
    Scorer,
    calibrate,
    min_harmlessness,
    success_rate,
    turn_scores,
)
from alignlab.redteam.studies import ATTACK, GENERATE, MAP, SCORE, STUDIES, run_redteam
from alignlab.redteam.summary import build_summary
from alignlab.redteam.targets import TARGET_TYPES, Target, parse_target, respond
from alignlab.redteam.transcripts import PreferencePair, Transcript, load_pairs, load_transcripts, parse_transcript
from alignlab.runs.run import Run
from alignlab.runs.study import pick_study


def run(config: RedteamConfig | GenerateConfig | ScoreConfig | MapConfig | None = None, model: Any = None, *,
        out: str | os.PathLike[str] = "runs", resume: str | os.PathLike[str] | None = None,
        **options: Any) -> tuple[Run, dict[str, Any]]:
    """Run a red-team command into a run directory (or finish ``resume``); returns ``(run, summary)``.

    - :class:`RedteamConfig`: ``attack``: play attacks against targets, score every assistant turn, map them.
    - :class:`GenerateConfig`: ``generate``: LM-written attacks into the run's ``attacks.jsonl``.
    - :class:`ScoreConfig` / :class:`MapConfig`: ``score`` / ``map`` a red-team run directory in place, or a
      transcript file into a new run.

    ``model`` is the model under attack (it sets ``RedteamConfig.model``, the model of targets written without
    ``=SPEC``): a spec or a loaded model; default: the config's. Loaded models (one, or a list) serve every spec
    they carry (targets, attacker, ``judge:`` scorers) and are not closed. ``options``: ``dtype``, ``cache``,
    ``progress``, ``report``, ``load`` (see :func:`alignlab.redteam.studies.run_redteam`).
    """
    study = pick_study(STUDIES, config, resume)
    return run_redteam(study, config, model, out=out, resume=resume, **options)


__all__ = ["ATTACK", "GENERATE", "MAP", "SCORE", "TARGET_TYPES", "Attack", "Calibration", "GenerateConfig",
           "JudgeScorer", "MapConfig", "PMScorer", "PreferencePair", "RedteamConfig", "Resources", "ScoreConfig",
           "Scorer", "Target", "Transcript", "build_summary", "calibrate", "continue_attacks", "few_shot_examples",
           "generate_attacks", "load_pairs", "load_transcripts", "min_harmlessness", "parse_target",
           "parse_transcript", "respond", "run", "run_attack", "success_rate", "turn_scores"]
