"""Reading JSONL (plain or gzipped) with errors that name the file and line: one reader for every loader."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alignlab.data.errors import DataError


def json_object(line: str, path: str | Path, number: int) -> dict[str, Any]:
    """One JSONL line as an object; bad JSON or a non-object raises DataError naming the file and line."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"invalid JSON ({err.msg} at column {err.colno})", path=path, line=number) from err
    if not isinstance(row, dict):
        raise DataError(f"expected a JSON object, got {type(row).__name__}", path=path, line=number)
    return row


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of a ``.jsonl`` or ``.jsonl.gz`` file."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield number, json_object(line, path, number)
