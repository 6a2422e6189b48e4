"""The audit's red-team part: attack success rate per target type (Ganguli et al. 2022 §3.2-3.3), judged by
the audited model itself unless another scorer is named.

Attacks are the opening Human turns of hh-rlhf harmless-base test pairs (``cap`` of them), each played for one
turn against the model as a plain (1-shot) and an HHH-prompted target; ``small`` (8 attacks, 48-token replies,
32 calibration pairs) keeps the embedded model's red-team part under about two minutes on 2 CPU cores.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from alignlab.models.base import Model
from alignlab.redteam.config import RedteamConfig
from alignlab.redteam.pipeline import Resources, collect_attacks, play, score
from alignlab.redteam.summary import build_summary
from alignlab.runs.run import Run
from alignlab.runs.study import AuditPart

AUDIT_TARGETS = ("plain", "prompted")


def audit_headline(summary: dict[str, Any]) -> list[tuple[str, dict[str, float]]]:
    """Per target type, each model's attack success rate (by its own judge)."""
    rows: dict[str, dict[str, float]] = defaultdict(dict)
    for m in summary.get("metrics", {}).values():
        kind, _, spec = m["target"].partition(" (")
        if m.get("rate") is not None and m["scorer"] == f"judge:{spec.rstrip(')')}":
            rows[f"attack success rate, {kind} target"][spec.rstrip(")")] = round(float(m["rate"]), 4)
    return list(rows.items())


def _no_extra_model(spec: str) -> Model:
    raise ValueError(f"the audit uses only the audited models, not {spec!r}")


def audit_redteam(run: Run, models: list[Model], cap: int | None, data: str | None,
                  progress: Callable[[str, int, int], None] | None, scorer: str | None = None) -> dict[str, Any]:
    """Each audited model attacked as plain and prompted targets, judged by itself (or ``scorer``)."""
    res = Resources(_no_extra_model, {m.spec: m for m in models})
    skips: list = []
    for model in models:
        config = RedteamConfig(sources=["harmless-base"], targets=[f"{t}={model.spec}" for t in AUDIT_TARGETS],
                               scorers=[scorer or f"judge:{model.spec}"], model=model.spec, attacker=model.spec,
                               limit=cap, max_new_tokens=48, calibration_pairs=32, data=data, landscape=False)
        attacks = collect_attacks(run, config, res, config.sources, 1, skips)
        play(run, config, res, attacks, progress)
        skips += score(run, config, res, progress=progress, only_targets={t.label for t in config.target_list()})
    return build_summary(run.samples(), run.manifest, skips=[str(s) for s in skips])


AUDIT = AuditPart("redteam", "Red teaming", caps={"small": 8, "full": 200},
                  run=audit_redteam, headline=audit_headline)
