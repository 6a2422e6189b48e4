"""Parse red-team data: hh-rlhf ``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` transcripts, the released
``red_team_attempts`` file (Ganguli et al. 2022, §3 and the dataset card) and hh-rlhf preference pairs.

A transcript must open with a Human turn, alternate Human/Assistant, and have no empty turn. A malformed
row is a :class:`~alignlab.data.errors.DataError` naming file, line and field; the loaders collect such rows
as :class:`Skip` records (reported in the run summary) unless ``strict=True``, which raises on the first.
Non-UTF-8 bytes are a skip (JSONL, per line) or an error (a JSON array file, which cannot be read in part).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignlab.data.errors import DataError
from alignlab.data.jsonl import decode, first_byte, read_raw_lines
from alignlab.models.types import Message

_TURN = re.compile(r"\n\n(Human|Assistant):")
_ROLES = {"Human": "user", "Assistant": "assistant"}


@dataclass(frozen=True)
class Transcript:
    """One conversation plus the fields the released attempts carry (rating, model_type, task_description...)."""

    id: str
    messages: tuple[Message, ...]
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def tags(self) -> list[str]:
        return [str(t) for t in self.meta.get("tags") or []]


@dataclass(frozen=True)
class PreferencePair:
    """An hh-rlhf row: two transcripts that share every turn but the last assistant reply (``path``, ``line``: the
    file and its 1-based line, to record and compare which rows a run used)."""

    id: str
    chosen: tuple[Message, ...]
    rejected: tuple[Message, ...]
    path: str = ""
    line: int = 0


@dataclass(frozen=True)
class Skip:
    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}, line {self.line}: {self.reason}"


def parse_transcript(text: str, *, path: str | Path | None = None, line: int | None = None,
                     field_name: str = "transcript", allow_empty_last: bool = False) -> tuple[Message, ...]:
    """Split an hh-rlhf transcript into messages, checking the order of turns and that none is empty.

    ``allow_empty_last`` accepts a trailing empty ``Assistant:`` (a conversation waiting for its reply).
    """
    if not isinstance(text, str):
        raise DataError(f"expected a string, got {type(text).__name__}", path=path, line=line, field=field_name)
    parts = _TURN.split(text)
    if parts[0].strip():
        raise DataError(f"text before the first 'Human:' turn: {parts[0][:40]!r}", path=path, line=line,
                        field=field_name)
    speakers, contents = parts[1::2], [c.strip() for c in parts[2::2]]
    if not speakers:
        raise DataError("no '\\n\\nHuman:' turn found", path=path, line=line, field=field_name)
    for i, speaker in enumerate(speakers):
        expected = "Human" if i % 2 == 0 else "Assistant"
        if speaker != expected:
            raise DataError(f"turn {i + 1} is {speaker}, expected {expected} (turns must alternate, Human first)",
                            path=path, line=line, field=field_name)
    messages = [Message(_ROLES[s], c) for s, c in zip(speakers, contents, strict=True)]  # type: ignore[arg-type]
    if allow_empty_last and messages[-1].role == "assistant" and not messages[-1].content:
        messages.pop()
    for i, m in enumerate(messages):
        if not m.content:
            raise DataError(f"turn {i + 1} ({m.role}) is empty", path=path, line=line, field=field_name)
    return tuple(messages)


def check_messages(messages: Sequence[Message], *, path: str | Path | None = None, line: int | None = None,
                   field_name: str = "messages") -> tuple[Message, ...]:
    """The same checks for a conversation given as messages (an optional system message may open it)."""
    turns = [m for m in messages if m.role != "system"]
    if not turns:
        raise DataError("no user turn", path=path, line=line, field=field_name)
    for i, m in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if m.role != expected:
            raise DataError(f"turn {i + 1} is {m.role}, expected {expected} (turns must alternate, user first)",
                            path=path, line=line, field=field_name)
        if not m.content.strip():
            raise DataError(f"turn {i + 1} ({m.role}) is empty", path=path, line=line, field=field_name)
    return tuple(messages)


def messages_from_json(value: Any, *, path: str | Path | None = None, line: int | None = None
                       ) -> tuple[Message, ...]:
    """``[{"role": ..., "content": ...}, ...]`` as checked messages."""
    if not isinstance(value, list):
        raise DataError("expected a list of {role, content} objects", path=path, line=line, field="messages")
    out = []
    for i, m in enumerate(value):
        if not (isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")
                and isinstance(m.get("content"), str)):
            raise DataError(f"message {i + 1} needs role system|user|assistant and a string content", path=path,
                            line=line, field="messages")
        out.append(Message(m["role"], m["content"]))
    return check_messages(out, path=path, line=line)


def to_hh_text(messages: Sequence[Message]) -> str:
    """Inverse of :func:`parse_transcript` (system messages dropped)."""
    return "".join(f"\n\n{'Human' if m.role == 'user' else 'Assistant'}: {m.content}"
                   for m in messages if m.role != "system")


def text_id(prefix: str, text: str) -> str:
    return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


# -- files -------------------------------------------------------------------------------------------------
def read_rows(path: str | Path, skips: list[Skip]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, object)`` for each row of a JSONL file or a JSON array file (``.gz`` too); a row that is not
    UTF-8 or not a JSON object becomes a :class:`Skip` (a broken JSON array file raises DataError)."""
    path = Path(path)
    if first_byte(path) == b"[":  # the released red_team_attempts file is one JSON array
        try:
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"not a valid gzip file ({err})", path=path) from None
        try:
            rows = json.loads(decode(raw, path).removeprefix("\ufeff"))
        except json.JSONDecodeError as err:
            raise DataError(f"invalid JSON ({err.msg})", path=path, line=err.lineno) from err
        for i, row in enumerate(rows, start=1):
            if isinstance(row, dict):
                yield i, row
            else:
                skips.append(Skip(str(path), i, f"array item {i} is not a JSON object"))
        return
    for number, line in read_raw_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as err:
            skips.append(Skip(str(path), number, f"not UTF-8 text (byte {err.start})"))
            continue
        except json.JSONDecodeError as err:
            skips.append(Skip(str(path), number, f"invalid JSON ({err.msg})"))
            continue
        if isinstance(row, dict):
            yield number, row
        else:
            skips.append(Skip(str(path), number, "not a JSON object"))


def load_transcripts(path: str | Path, *, strict: bool = False) -> tuple[list[Transcript], list[Skip]]:
    """Red-team attempts (``transcript`` + metadata), or any JSONL with ``transcript`` text or ``messages``."""
    skips: list[Skip] = []
    out: list[Transcript] = []
    for line, row in read_rows(path, skips):
        try:
            if "transcript" in row:
                messages = parse_transcript(row["transcript"], path=path, line=line, allow_empty_last=True)
            elif "messages" in row:
                messages = messages_from_json(row["messages"], path=path, line=line)
            else:
                raise DataError("needs a 'transcript' or 'messages' field", path=path, line=line)
        except DataError as err:
            if strict:
                raise
            skips.append(Skip(str(path), line, err.problem + (f" (field '{err.field}')" if err.field else "")))
            continue
        meta = {k: v for k, v in row.items() if k not in ("transcript", "messages")}
        ident = str(row.get("id") or text_id("t", json.dumps([m.content for m in messages])))
        out.append(Transcript(ident, messages, meta))
    if strict and skips:
        raise DataError(skips[0].reason, path=skips[0].path, line=skips[0].line)
    return out, skips


def load_pairs(path: str | Path, *, limit: int | None = None, strict: bool = False
               ) -> tuple[list[PreferencePair], list[Skip]]:
    """hh-rlhf ``{"chosen": ..., "rejected": ...}`` rows, the first ``limit`` valid ones in file order."""
    skips: list[Skip] = []
    out: list[PreferencePair] = []
    for line, row in read_rows(path, skips):
        if limit is not None and len(out) >= limit:
            break
        try:
            chosen = parse_transcript(row.get("chosen"), path=path, line=line, field_name="chosen")
            rejected = parse_transcript(row.get("rejected"), path=path, line=line, field_name="rejected")
            for name, msgs in (("chosen", chosen), ("rejected", rejected)):
                if msgs[-1].role != "assistant":
                    raise DataError("does not end with an Assistant turn", path=path, line=line, field=name)
        except DataError as err:
            if strict:
                raise
            skips.append(Skip(str(path), line, err.problem + (f" (field '{err.field}')" if err.field else "")))
            continue
        out.append(PreferencePair(f"{Path(path).parent.name}:{line}", chosen, rejected, str(path), line))
    return out, skips
