"""Data for Constitutional AI: red-team prompts, hh-rlhf comparisons (local or downloaded), JSONL in and out.

hh-rlhf rows are ``{"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected": "..."}`` (MIT, Bai et al. 2022a).
``harmless-base`` supplies red-team prompts (the first human turn of each conversation, as in the HF H4 recipe);
``helpful-base`` supplies the human helpfulness comparisons mixed into PM training (downloaded once when online).
Our own comparison files may add ``"pref"`` = P(chosen is better) for soft labels (default 1.0).
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alignlab.data.errors import DataError
from alignlab.data.jsonl import read_jsonl
from alignlab.data.resolve import http_download, resolve_dataset
from alignlab.models.types import Message

HH_URL = "https://raw.githubusercontent.com/anthropics/hh-rlhf/master/{subset}/{split}.jsonl.gz"
_TURN = re.compile(r"\n\n(Human|Assistant): ?")


@dataclass(frozen=True)
class Comparison:
    """Two transcripts of the same conversation; ``pref`` = P(chosen is the better one)."""

    chosen: str
    rejected: str
    pref: float = 1.0
    source: str = ""
    path: str = ""  # the resolved file it was read from
    line: int = 0  # its 1-based line there


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def parse_transcript(text: str, *, path: str | Path | None = None, line: int | None = None,
                     field: str = "chosen") -> list[Message]:
    """``"\\n\\nHuman: a\\n\\nAssistant: b"`` -> messages; an error names the file, line and field."""
    parts = _TURN.split(text)
    if len(parts) < 3 or parts[0].strip():
        raise DataError("expected a transcript starting with '\\n\\nHuman:'", path=path, line=line, field=field)
    roles = {"Human": "user", "Assistant": "assistant"}
    return [Message(roles[parts[i]], parts[i + 1].strip()) for i in range(1, len(parts), 2)]  # type: ignore[arg-type]


def first_human_turn(text: str, **where: Any) -> str:
    messages = parse_transcript(text, **where)
    if messages[0].role != "user" or not messages[0].content:
        raise DataError("the first turn must be a non-empty Human turn", **where)
    return messages[0].content


def _subset(items: list[Any], limit: int | None, seed: int, salt: str) -> list[Any]:
    if limit is None or len(items) <= limit:
        return items
    rng = np.random.default_rng([seed, zlib.crc32(salt.encode())])
    return [items[i] for i in np.sort(rng.choice(len(items), limit, replace=False))]


def _hh_file(subset: str, split: str, data: str | None) -> Path:
    def download(target: Path) -> None:
        http_download(HH_URL.format(subset=subset, split=split), target / f"{split}.jsonl.gz")

    folder = resolve_dataset(f"hh-rlhf/{subset}", data=data, download=download)
    if folder.is_file():
        return folder
    for name in (f"{split}.jsonl", f"{split}.jsonl.gz"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder} has no {split}.jsonl(.gz) for hh-rlhf/{subset}")


def load_prompts(source: str | None, *, data: str | None = None, limit: int | None = None, seed: int = 0,
                 split: str = "test") -> list[tuple[str, str]]:
    """(id, question) pairs: from a JSONL with ``prompt``/``question``/``chosen``, else hh-rlhf harmless-base."""
    path = Path(source) if source else _hh_file("harmless-base", split, data)
    if path.is_dir():
        path = path / "prompts.jsonl"
    out = []
    for number, row in read_jsonl(path):
        if "chosen" in row:
            question = first_human_turn(str(row["chosen"]), path=path, line=number, field="chosen")
        else:
            key = "question" if "question" in row else "prompt"
            question = row.get(key)
            if not isinstance(question, str) or not question.strip():
                raise DataError("needs a non-empty string 'prompt', 'question' or an hh-rlhf 'chosen'", path=path,
                                line=number, field=key)
        out.append((str(row.get("id", f"{path.stem}:{number}")), question.strip()))
    if not out:
        raise DataError("no prompts found", path=path)
    return _subset(out, limit, seed, str(path.name))


def load_comparisons(path: str | Path, *, limit: int | None = None, seed: int = 0) -> list[Comparison]:
    """hh-rlhf-format comparisons (``chosen``, ``rejected``, optional ``pref`` in [0, 1])."""
    path = Path(path)
    out = []
    for number, row in read_jsonl(path):
        for name in ("chosen", "rejected"):
            if not isinstance(row.get(name), str):
                raise DataError("must be a transcript string", path=path, line=number, field=name)
            parse_transcript(row[name], path=path, line=number, field=name)
        pref = row.get("pref", 1.0)
        if not isinstance(pref, (int, float)) or not 0.0 <= pref <= 1.0:
            raise DataError(f"must be a number in [0, 1], got {pref!r}", path=path, line=number, field="pref")
        out.append(Comparison(row["chosen"], row["rejected"], float(pref), f"{path.name}:{number}",
                              str(path.resolve()), number))
    if not out:
        raise DataError("no comparisons found", path=path)
    return _subset(out, limit, seed, path.name)


def harmless_comparisons(data: str | None, *, split: str, limit: int | None = None, seed: int = 0
                         ) -> list[Comparison]:
    """Human harmlessness comparisons from hh-rlhf harmless-base (``split`` downloaded when online, else --data)."""
    return load_comparisons(_hh_file("harmless-base", split, data), limit=limit, seed=seed)


def helpful_comparisons(data: str | None, *, limit: int | None, seed: int = 0, split: str = "train"
                        ) -> list[Comparison]:
    """Human helpfulness comparisons from hh-rlhf helpful-base (a download when online, else --data)."""
    return load_comparisons(_hh_file("helpful-base", split, data), limit=limit, seed=seed)
