"""The loop's data splits: red-team attacks, scorer calibration pairs, scorer training pairs and CAI prompts are
disjoint, seeded rows of hh-rlhf harmless-base (test split), each written as a JSONL file in the loop's run directory
and passed to the stages by path.

Rows are grouped by their opening Human turn, so two rows asking the same thing never land in different splits.
When the red-team study has no calibration-file option, it calibrates on the first valid rows of the file; the
calibration split is then those rows, so the other splits still avoid them. A user-given file replaces its split;
the loop warns when it shares a prompt with another split.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alignlab.data.errors import DataError
from alignlab.data.jsonl import read_jsonl

SPLITS = ("calibration", "scorer_pairs", "attacks", "cai")
_TURN = re.compile(r"\n\nHuman: ?(.*?)(?=\n\n(?:Human|Assistant):|\Z)", re.S)


@dataclass
class Splits:
    """Where each split lives, which source lines it took, and the overlap warnings."""

    files: dict[str, str] = field(default_factory=dict)
    lines: dict[str, list[int]] = field(default_factory=dict)
    source: str = ""
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.files, "lines": self.lines, "source": self.source, "warnings": self.warnings}

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> Splits:
        return cls(dict(saved["files"]), {k: list(v) for k, v in saved["lines"].items()}, saved.get("source", ""),
                   list(saved.get("warnings", [])))


def first_turn(transcript: str) -> str | None:
    found = _TURN.search(transcript)
    return found.group(1).strip() if found else None


def normalized(text: str) -> str:
    return " ".join(text.lower().split())


def read_rows(path: Path) -> list[tuple[int, dict[str, Any], str]]:
    """``(line, row, opening human turn)`` of every hh-rlhf row with chosen and rejected transcripts."""
    rows = []
    for line, row in read_jsonl(path):
        chosen, rejected = row.get("chosen"), row.get("rejected")
        prompt = first_turn(chosen) if isinstance(chosen, str) else None
        if prompt and isinstance(rejected, str) and "\n\nAssistant:" in chosen and "\n\nAssistant:" in rejected:
            rows.append((line, row, prompt))
    if not rows:
        raise DataError("no hh-rlhf rows with chosen/rejected transcripts", path=path)
    return rows


def make_splits(source: Path, folder: Path, sizes: dict[str, int], *, seed: int, calibration_first: bool,
                user_files: dict[str, str | None] | None = None) -> Splits:
    """Write each split of ``sizes`` (``calibration``, ``scorer_pairs``, ``attacks``, ``cai``; 0 = none) to
    ``folder/<split>.jsonl``. ``calibration_first``: the calibration split is the file's first valid rows (what the
    red team calibrates on when it takes no file)."""
    rows = read_rows(source)
    folder.mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[int]] = {}
    for index, (_, _, prompt) in enumerate(rows):
        groups.setdefault(normalized(prompt), []).append(index)
    order = list(groups)
    taken: set[str] = set()
    chosen: dict[str, list[int]] = {}
    if calibration_first and sizes.get("calibration"):
        first = rows[:sizes["calibration"]]
        chosen["calibration"] = list(range(len(first)))
        taken |= {normalized(p) for _, _, p in first}
    rng = np.random.default_rng(seed)
    shuffled = [order[i] for i in rng.permutation(len(order))]
    for name in SPLITS:
        if name in chosen or not sizes.get(name):
            continue
        picks = [g for g in shuffled if g not in taken][:sizes[name]]
        if len(picks) < sizes[name]:
            raise DataError(f"only {len(picks)} unused prompts left for the {name} split ({sizes[name]} wanted)",
                            path=source)
        taken |= set(picks)
        chosen[name] = sorted(groups[g][0] for g in picks)
    splits = Splits(source=str(source))
    for name, indices in chosen.items():
        picked = [rows[i] for i in indices]
        if name in ("calibration", "scorer_pairs"):
            out = [{"chosen": r["chosen"], "rejected": r["rejected"]} for _, r, _ in picked]
        else:
            out = [{"id": f"{source.parent.name}:{line}", "prompt": prompt} for line, _, prompt in picked]
        splits.files[name] = str(_write(folder / f"{name}.jsonl", out))
        splits.lines[name] = [line for line, _, _ in picked]
    for name, path in (user_files or {}).items():
        if path:
            splits.files[name] = str(Path(path).resolve())
            splits.lines[name] = []
    splits.warnings = overlaps(splits.files)
    return splits


def prompts_of(path: str | Path) -> set[str]:
    """The normalised opening prompts of a split file (attack/CAI prompts, or the Human turn of pairs)."""
    out = set()
    for _, row in read_jsonl(Path(path)):
        for key in ("prompt", "question"):
            if isinstance(row.get(key), str):
                out.add(normalized(row[key]))
                break
        else:
            text = first_turn(row["chosen"]) if isinstance(row.get("chosen"), str) else None
            if text:
                out.add(normalized(text))
    return out


def overlaps(files: dict[str, str]) -> list[str]:
    """One warning per pair of splits that share a prompt (the loop's own splits never do; a user's file may)."""
    texts = {name: prompts_of(path) for name, path in files.items()}
    names = list(texts)
    warnings = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = texts[a] & texts[b]
            if shared:
                example = next(iter(sorted(shared)))[:60]
                warnings.append(f"the {a} split ({files[a]}) and the {b} split ({files[b]}) share {len(shared)} "
                                f"prompt(s), e.g. {example!r}: measurements on them are not held out")
    return warnings


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path
