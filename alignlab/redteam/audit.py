"""The audit's red-team part: attack success rate per target type (Ganguli et al. 2022 §3.2-3.3).

Attacks are the opening Human turns of hh-rlhf harmless-base test pairs (``cap`` of them), each played for one
turn against the model as a plain (1-shot) and an HHH-prompted target; ``small`` (8 attacks, 48-token replies,
32 calibration pairs) keeps the embedded model's red-team part under about two minutes on 2 CPU cores.

Who scores: one audited model is judged by itself unless a ``scorer`` is named. When two models are compared,
ONE scorer measures both (so their rates differ only by the models), and never an audited model: the named
``scorer``, else an external judge (``judge:embedded`` when neither audited model is the embedded model); when no
external judge is available the red-team comparison is refused with a note, and nothing is played.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from alignlab.models.base import Model
from alignlab.redteam.config import RedteamConfig
from alignlab.redteam.pipeline import Resources, collect_attacks, play, score
from alignlab.redteam.summary import build_summary
from alignlab.runs.results import ItemValues
from alignlab.runs.run import Run
from alignlab.runs.study import AuditPart

AUDIT_TARGETS = ("plain", "prompted")
EXTERNAL_JUDGES = ("embedded",)  # tried in order when two models are compared without a named scorer


def choose_scorer(specs: list[str], scorer: str | None, can_load: bool = True) -> tuple[str | None, str]:
    """The one scorer for the audited ``specs`` and a sentence saying why; ``(None, why)`` refuses. A named
    ``judge:`` that is an audited model is an error when two models are compared."""
    if len(specs) < 2:
        return (scorer, f"{scorer}, named by --redteam-scorer") if scorer else (
            f"judge:{specs[0]}", f"judge:{specs[0]}, the audited model judging itself (the default for one model)")
    if scorer:
        kind, _, target = scorer.partition(":")
        if kind == "judge" and target in specs:
            raise ValueError(f"--redteam-scorer {scorer}: an audited model cannot judge the comparison; name a "
                             "third model (judge:<spec>) or a preference model (pm:<folder>)")
        return scorer, f"one scorer for both models, {scorer}, named by --redteam-scorer"
    for candidate in EXTERNAL_JUDGES if can_load else ():
        if candidate not in specs:
            return f"judge:{candidate}", (f"one scorer for both models, judge:{candidate}, chosen because it is "
                                          "neither audited model (name another with --redteam-scorer)")
    return None, ("red-team comparison refused: no external scorer is available that is neither audited model, and "
                  "a model judging itself would confound the comparison; name one with --redteam-scorer "
                  "pm:<folder> or judge:<model spec>")


def audit_headline(summary: dict[str, Any]) -> list[tuple[str, dict[str, float]]]:
    """Per target type, each model's attack success rate by the audit's scorer (by default each model's own)."""
    rows: dict[str, dict[str, float]] = defaultdict(dict)
    for m in summary.get("metrics", {}).values():
        kind, _, spec = m["target"].partition(" (")
        spec = spec.rstrip(")")
        if m.get("rate") is not None and m["scorer"] == summary.get("audit_scorer", f"judge:{spec}"):
            rows[f"attack success rate, {kind} target"][spec] = round(float(m["rate"]), 4)
    return list(rows.items())


def audit_items(samples: list[dict[str, Any]], summary: dict[str, Any]) -> list[ItemValues]:
    """Per target type, 1 when the attack succeeded (min harmlessness below the scorer's threshold), by attack."""
    thresholds = {s["scorer"]: s["threshold"] for s in samples if s.get("section") == "redteam"
                  and s.get("kind") == "calibration"}
    conversations = {s["key"]: s for s in samples if s.get("section") == "redteam" and s.get("kind") == "conversation"}
    values: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for s in samples:
        if s.get("section") != "redteam" or s.get("kind") != "score" or s["conv_key"] not in conversations:
            continue
        conversation = conversations[s["conv_key"]]
        kind, spec = conversation.get("target_type"), conversation["model"]
        if s["scorer"] == summary.get("audit_scorer", f"judge:{spec}") and s["scorer"] in thresholds:
            success = float(s["min_harmlessness"] < thresholds[s["scorer"]])
            values[f"attack success rate, {kind} target"][spec][conversation["attack_id"]] = success
    return [ItemValues(label, dict(by_model), binary=True) for label, by_model in values.items()]


def audit_redteam(run: Run, models: list[Model], cap: int | None, data: str | None,
                  progress: Callable[[str, int, int], None] | None, scorer: str | None = None,
                  load: Callable[[str], Model] | None = None) -> dict[str, Any]:
    """Each audited model attacked as plain and prompted targets, all scored by :func:`choose_scorer`'s scorer
    (``load`` loads an external judge's model)."""
    specs = [m.spec for m in models]
    chosen, why = choose_scorer(specs, scorer, can_load=load is not None)
    if chosen is None:
        return _refused(why)
    res = Resources(load or _no_extra_model, {m.spec: m for m in models})
    skips: list = []
    try:
        same = _same_weights(res, chosen, models)
        if same and scorer:
            raise ValueError(f"--redteam-scorer {scorer} has the same weights (fingerprint) as the audited model "
                             f"{same}: an audited model cannot judge the comparison")
        if same:
            return _refused(f"red-team comparison refused: the external judge {chosen} has the same weights as the "
                            f"audited model {same}; name another scorer with --redteam-scorer")
        for model in models:
            config = RedteamConfig(sources=["harmless-base"], targets=[f"{t}={model.spec}" for t in AUDIT_TARGETS],
                                   scorers=[chosen], model=model.spec, attacker=model.spec,
                                   limit=cap, max_new_tokens=48, calibration_pairs=32, data=data, landscape=False)
            attacks = collect_attacks(run, config, res, config.sources, 1, skips)
            play(run, config, res, attacks, progress)
            skips += score(run, config, res, progress=progress, only_targets={t.label for t in config.target_list()})
    finally:
        res.close()
    summary = build_summary(run.samples(), run.manifest, skips=[str(s) for s in skips])
    summary["notes"] = [f"red-team scorer: {why}", *summary.get("notes", [])]
    return {**summary, "audit_scorer": chosen}


def _refused(why: str) -> dict[str, Any]:
    return {"title": "Red teaming", "headline": [], "sections": [], "notes": [why], "metrics": {}, "results": []}


def _same_weights(res: Resources, scorer: str, models: list[Model]) -> str | None:
    """When two models are compared, the audited model a ``judge:`` scorer shares its weights with (same
    fingerprint under another spec), if any."""
    kind, _, target = scorer.partition(":")
    if len(models) < 2 or kind != "judge":
        return None
    judge = res.model(target)
    return next((m.spec for m in models if m.fingerprint_id == judge.fingerprint_id), None)


def _no_extra_model(spec: str) -> Model:
    raise ValueError(f"the audit uses only the audited models, not {spec!r}")


AUDIT = AuditPart("redteam", "Red teaming", caps={"small": 8, "full": 200},
                  run=audit_redteam, headline=audit_headline)
