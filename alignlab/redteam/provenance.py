"""What the red-team report says about its own measurement: which scorer measured what (and how well it tells
harm apart), which scorer picked the rejection samples, and which data rows were attacks and which calibrated.

Read from a run's records: ``calibration`` (threshold, pair accuracy with CI, ``scorer_info`` with a PM's
held-out accuracy from ``alignlab_pm.json``, ``data``: the calibration rows), ``conversation`` (``pick_scorer`` of
rejection targets) and ``attack`` (``attack_meta``: file and line of harmless-base attacks).
"""

from __future__ import annotations

from typing import Any

from alignlab.redteam.config import measuring_scorer

Records = dict[str, list[dict[str, Any]]]


def _r(x: Any) -> float | None:
    return None if x is None else round(float(x), 4)


def primary_scorer(scorers: list[str]) -> str | None:
    """The headline scorer among those with scores: the first ``pm:``, else the first."""
    return measuring_scorer(scorers) if scorers else None


def pick_scorers(kinds: Records) -> dict[str, str]:
    """Rejection target label -> the scorer that picked its replies."""
    return {c["target"]: c["pick_scorer"] for c in kinds["conversation"] if c.get("pick_scorer")}


def _heldout(info: dict[str, Any]) -> dict[str, Any]:
    held = info.get("heldout")
    return held if isinstance(held, dict) else {}


def _role(scorer: str, primary: str | None, picks: dict[str, str]) -> str:
    roles = ["measures the headline" if scorer == primary else "measures (also reported)"]
    picked = [t for t, p in picks.items() if p == scorer]
    return "; ".join(roles + ([f"picks rejection samples of {', '.join(picked)}"] if picked else []))


def scorer_table(kinds: Records, primary: str | None) -> list[dict[str, Any]]:
    """One row per calibrated scorer: its role, kind, threshold, calibration pair accuracy with CI and, for a PM
    whose folder records it, its own held-out accuracy, CI and soft loss."""
    cal = kinds["calibration"]
    if not cal:
        return []
    picks = pick_scorers(kinds)
    rows = []
    for c in sorted(cal, key=lambda c: c["scorer"] != primary):
        info, held = c.get("scorer_info") or {}, _heldout(c.get("scorer_info") or {})
        rows.append([c["scorer"], _role(c["scorer"], primary, picks), info.get("kind"), _r(c["threshold"]),
                     c["quantile"], c["n_pairs"], _r(c["pair_accuracy"]), _r(c.get("pair_ci_low")),
                     _r(c.get("pair_ci_high")), held.get("n"), _r(held.get("accuracy")), _r(held.get("ci_low")),
                     _r(held.get("ci_high")), _r(held.get("soft_loss"))])
    return [{"title": "Scorers: what each measured, its threshold and how well it tells harm apart",
             "columns": ["scorer", "role", "kind", "threshold", "quantile of rejected scores", "calibration pairs",
                         "calibration pair accuracy (chosen > rejected)", "95% CI low", "95% CI high",
                         "PM held-out pairs", "PM held-out accuracy", "held-out CI low", "held-out CI high",
                         "held-out soft loss (ln 2 = 0.6931 is chance)"],
             "rows": rows}]


def _lines(lines: list[int], show: int = 24) -> str:
    text = ", ".join(str(n) for n in lines[:show])
    return text + (f", ... ({len(lines)} rows)" if len(lines) > show else "")


def data_table(kinds: Records) -> list[dict[str, Any]]:
    """Which rows of which file were attacks and which calibrated each scorer (1-based lines)."""
    rows: list[list[Any]] = []
    by_file: dict[str, list[int]] = {}
    for a in kinds["attack"]:
        meta = a.get("attack_meta") or {}
        if meta.get("path") and meta.get("line"):
            by_file.setdefault(meta["path"], []).append(int(meta["line"]))
    for path, lines in by_file.items():
        rows.append(["attacks (opening Human turns)", path, len(lines), _lines(sorted(lines)), ""])
    for c in kinds["calibration"]:
        data = c.get("data") or {}
        if data:
            skipped = (f"{data.get('skipped_pm_training', 0)} PM-training pairs and "
                       f"{data.get('skipped_attack_overlap', 0)} attack-prompt pairs skipped; "
                       f"{data.get('overlap_with_attacks', 0)} kept pairs share an attack's prompt")
            rows.append([f"calibration of {c['scorer']}" + (" (user file)" if data.get("user_file") else ""),
                         data.get("path"), len(data.get("lines") or []), _lines(data.get("lines") or []), skipped])
    if not rows:
        return []
    return [{"title": "Data: attack rows and calibration pairs (seeded, disjoint; 1-based file lines)",
             "columns": ["use", "file", "rows", "lines", "exclusions"], "rows": rows}]


def scorer_notes(kinds: Records, primary: str | None) -> list[str]:
    """Plain sentences: the headline scorer and the others with their pair accuracy, the pick scorer of each
    rejection target (flagged when it also measures), and calibration data warnings."""
    notes = []
    cal = {c["scorer"]: c for c in sorted(kinds["calibration"], key=lambda c: c["scorer"] != primary)}
    for scorer, c in cal.items():
        info, held = c.get("scorer_info") or {}, _heldout(c.get("scorer_info") or {})
        role = "Headline harmlessness scorer" if scorer == primary else "Also reported"
        line = (f"{role}: {scorer} ({info.get('kind', 'scorer')}); calibration pair accuracy "
                f"{c['pair_accuracy']:.3f} on {c['n_pairs']} pairs")
        if c.get("pair_ci_low") is not None:
            line += f" (95% CI {c['pair_ci_low']:.3f}-{c['pair_ci_high']:.3f})"
        if held.get("accuracy") is not None:
            ci = (f", 95% CI {held['ci_low']:.3f}-{held['ci_high']:.3f}" if held.get("ci_low") is not None else "")
            line += f"; its own held-out accuracy {held['accuracy']:.3f} (n={held.get('n')}{ci})"
        notes.append(line + ".")
        data = c.get("data") or {}
        notes += [f"{scorer}: {data[k]}" for k in ("warning", "attack_warning", "short") if data.get(k)]
    for target, pick in pick_scorers(kinds).items():
        if pick in cal:
            notes.append(f"{target}: its samples were picked by {pick}, which also measures it: {pick}'s "
                         "harmlessness of this target is biased upwards (its success rate downwards).")
        else:
            notes.append(f"{target}: samples picked by {pick}, not a measuring scorer.")
    return notes
