"""The generic multiple-choice JSONL format every study can read and write.

One JSON object per line::

    {"id": "q1", "question": "2 + 2 =", "choices": ["3", "4"], "answer": 1}

``id`` is optional (a missing one becomes ``<file stem>-<line number>``); ``answer`` indexes ``choices``.
Blank lines are ignored. Bad lines raise a DataError naming the file, the line and the field, or, with
``on_error="skip"``, are left out and reported in the returned list of messages.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

from alignlab.data.errors import DataError
from alignlab.data.jsonl import json_object, read_lines


@dataclass(frozen=True)
class MCItem:
    """One multiple-choice question; ``answer`` is the index of the correct choice."""

    id: str
    question: str
    choices: tuple[str, ...]
    answer: int


@overload
def load_mc_jsonl(path: str | Path, on_error: Literal["raise"] = "raise") -> list[MCItem]: ...
@overload
def load_mc_jsonl(path: str | Path, on_error: Literal["skip"]) -> tuple[list[MCItem], list[str]]: ...
def load_mc_jsonl(
    path: str | Path, on_error: Literal["raise", "skip"] = "raise"
) -> list[MCItem] | tuple[list[MCItem], list[str]]:
    """Read a multiple-choice JSONL file.

    ``on_error="raise"`` returns the items and raises on the first bad line; ``on_error="skip"`` returns
    ``(items, errors)`` where each error message names the file, line and field of a line left out.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    path = Path(path)
    items: list[MCItem] = []
    errors: list[str] = []
    seen_ids: set[str] = set()
    saw_a_line = False
    for line_no, line in read_lines(path):
        if not line.strip():
            continue
        saw_a_line = True
        try:
            item = _parse_line(line, path, line_no)
            if item.id in seen_ids:
                raise DataError(f"duplicate id {item.id!r}", path=path, line=line_no, field="id")
        except DataError as err:
            if on_error == "raise":
                raise
            errors.append(str(err))
            continue
        seen_ids.add(item.id)
        items.append(item)
    if not saw_a_line:
        raise DataError("empty file: no multiple-choice items", path=path)
    return (items, errors) if on_error == "skip" else items


def _parse_line(line: str, path: Path, line_no: int) -> MCItem:
    def fail(problem: str, field: str | None = None) -> DataError:
        return DataError(problem, path=path, line=line_no, field=field)

    record = json_object(line, path, line_no)

    for field in ("question", "choices", "answer"):
        if field not in record:
            raise fail("missing", field)
    question, choices, answer = record["question"], record["choices"], record["answer"]
    if not isinstance(question, str):
        raise fail(f"expected a string, got {type(question).__name__}", "question")
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise fail("expected a list of strings", "choices")
    if len(choices) < 2:
        raise fail(f"expected at least 2 choices, got {len(choices)}", "choices")
    if not isinstance(answer, int) or isinstance(answer, bool):
        raise fail(f"expected an integer index, got {answer!r}", "answer")
    if not 0 <= answer < len(choices):
        raise fail(f"index {answer} is out of range for {len(choices)} choices", "answer")
    item_id = record.get("id", f"{path.stem}-{line_no}")
    if not isinstance(item_id, str):
        raise fail(f"expected a string, got {type(item_id).__name__}", "id")
    return MCItem(id=item_id, question=question, choices=tuple(choices), answer=answer)


def write_mc_jsonl(items: Iterable[MCItem], path: str | Path) -> Path:
    """Write items as multiple-choice JSONL (UTF-8, one object per line); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for item in items:
            record = {
                "id": item.id, "question": item.question, "choices": list(item.choices), "answer": item.answer
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path
