"""Disjoint, seeded data for a red-team run.

The harmless-base attacks and the scorer calibration pairs come from hh-rlhf pair files; they must not share rows:

- one seeded permutation of the file's valid rows: **attacks** walk it from the front (distinct opening Human turns),
  **calibration** walks it from the back and skips every pair whose opening Human turn is one the run attacks with
  (or any conversation of the run opens with), so the two never meet;
- both skip the pairs a **PM scorer was trained on** (its ``alignlab_pm.json`` ``training_data``: each file and the
  1-based lines trained on), matched by file and line and by the text of the pair (a copy of the row elsewhere);
- a **user calibration file** (``--calibration``) is used as given, less the PM-training pairs; pairs that open
  with an attack's Human turn are kept but counted, with a warning.

Which rows were attacks and which calibrated is recorded in the run (attack ``attack_meta`` and the calibration
record's ``data``), so a report can list them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alignlab.redteam.transcripts import PreferencePair, load_pairs, to_hh_text

PM_CONFIG = "alignlab_pm.json"  # the PM folder's settings (alignlab.constitution.preference_model.PM_CONFIG)


def _resolved(path: str | Path) -> str:
    return str(Path(path).resolve())


def pair_text_key(pair: PreferencePair) -> str:
    """The same pair in any file: a hash of its two transcripts."""
    text = to_hh_text(pair.chosen) + "\0" + to_hh_text(pair.rejected)
    return hashlib.sha256(text.encode()).hexdigest()


def opening(messages: Sequence[Any]) -> str:
    """The first Human turn of a conversation (messages or ``{"role", "content"}`` dicts), stripped."""
    for m in messages:
        role, content = (m["role"], m["content"]) if isinstance(m, dict) else (m.role, m.content)
        if role == "user":
            return str(content).strip()
    return ""


@dataclass(frozen=True)
class Trained:
    """The pairs some PM scorer was trained on: ``(resolved path, 1-based line)`` and the pairs' text keys."""

    lines: frozenset[tuple[str, int]] = frozenset()
    texts: frozenset[str] = frozenset()
    sources: tuple[str, ...] = field(default=())  # the PM specs they come from

    def hits(self, pair: PreferencePair) -> bool:
        """Was ``pair`` trained on (the same file and line, or the same text)?"""
        if not (self.lines or self.texts):
            return False
        return (bool(pair.path) and (_resolved(pair.path), pair.line) in self.lines) or \
            pair_text_key(pair) in self.texts


NOTHING_TRAINED = Trained()


def pm_meta(spec: str) -> dict[str, Any]:
    """The ``alignlab_pm.json`` of a ``pm:<folder>`` scorer ({} for judges, ``pm:hf:`` and folders without it)."""
    kind, _, target = spec.partition(":")
    path = Path(target) / PM_CONFIG
    if kind != "pm" or target.startswith("hf:") or not path.is_file():
        return {}
    meta = json.loads(path.read_text(encoding="utf-8"))
    return meta if isinstance(meta, dict) else {}


def pm_training(specs: Iterable[str], *, texts: bool = True) -> Trained:
    """Every row the ``pm:`` scorers among ``specs`` were trained on (by line; by text too, when ``texts`` and the
    file is readable)."""
    lines: set[tuple[str, int]] = set()
    keys: set[str] = set()
    sources = []
    for spec in dict.fromkeys(specs):
        for entry in pm_meta(spec).get("training_data") or []:
            if not isinstance(entry, dict) or not entry.get("path"):
                continue
            sources.append(spec)
            used = {int(n) for n in entry.get("lines") or []}
            lines |= {(_resolved(entry["path"]), n) for n in used}
            if texts and Path(entry["path"]).is_file():
                pairs, _ = load_pairs(entry["path"])
                keys |= {pair_text_key(p) for p in pairs if p.line in used}
    return Trained(frozenset(lines), frozenset(keys), tuple(dict.fromkeys(sources)))


def seeded_order(n: int, seed: int) -> list[int]:
    """The permutation of ``n`` rows both walks share."""
    return [int(i) for i in np.random.default_rng(seed).permutation(n)]


def attack_pairs(pairs: Sequence[PreferencePair], limit: int | None, *, seed: int, trained: Trained = NOTHING_TRAINED
                 ) -> list[PreferencePair]:
    """Up to ``limit`` pairs with distinct opening Human turns, from the front of the seeded order (PM-training
    pairs skipped)."""
    out: dict[str, PreferencePair] = {}
    for i in seeded_order(len(pairs), seed):
        if limit is not None and len(out) >= limit:
            break
        if not trained.hits(pairs[i]):
            out.setdefault(opening(pairs[i].chosen), pairs[i])
    return list(out.values())


@dataclass
class CalibrationData:
    """The pairs that calibrate a scorer and how they were chosen (saved in the calibration record)."""

    pairs: list[PreferencePair]
    info: dict[str, Any]


def calibration_pairs(pairs: Sequence[PreferencePair], n: int, *, seed: int, attack_openings: set[str],
                      trained: Trained = NOTHING_TRAINED, user_file: bool = False) -> CalibrationData:
    """``n`` pairs from the back of the seeded order: PM-training pairs skipped; pairs opening with an attack's
    Human turn skipped (the default file) or kept and counted with a warning (a user file)."""
    chosen: list[PreferencePair] = []
    skipped_trained = skipped_attack = 0
    for i in reversed(seeded_order(len(pairs), seed)):
        if len(chosen) >= n:
            break
        pair = pairs[i]
        if trained.hits(pair):
            skipped_trained += 1
        elif not user_file and opening(pair.chosen) in attack_openings:
            skipped_attack += 1
        else:
            chosen.append(pair)
    overlap = sum(opening(p.chosen) in attack_openings for p in chosen)
    path = chosen[0].path if chosen else (pairs[0].path if pairs else "")
    info: dict[str, Any] = {"path": path, "lines": sorted(p.line for p in chosen), "seed": seed,
                            "user_file": user_file, "skipped_pm_training": skipped_trained,
                            "skipped_attack_overlap": skipped_attack, "overlap_with_attacks": overlap,
                            "pm_training_from": list(trained.sources)}
    if overlap:
        info["warning"] = (f"calibration file {path}: {overlap} of its {len(chosen)} pairs open with the same Human "
                           "turn as an attack of this run (the threshold is set partly on the attacked prompts)")
    if len(chosen) < n:
        info["short"] = f"only {len(chosen)} of the {n} calibration pairs asked for are left after the exclusions"
    return CalibrationData(chosen, info)
