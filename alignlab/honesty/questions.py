"""Open (free-answer) questions for P(True) and P(IK) (Kadavath et al. 2022, §4-§5).

Three sources, one record type :class:`OpenQuestion`:

- TriviaQA-style JSONL, one object per line: ``{"id": "tq1", "question": "...", "answers": ["alias", ...]}``
  (``id`` optional; ``background`` optional; ``checker``: ``alias`` (default) or ``integer``). ``triviaqa`` names
  the TriviaQA ``rc.nocontext`` validation split, read from ``--data``/``$ALIGNLAB_DATA``/the user cache as
  ``triviaqa/validation.jsonl``, else converted once from the Hugging Face hub with ``datasets`` when online.
- Arithmetic the project generates itself with a seed (the paper's arithmetic tasks): ``arithmetic`` (a mix of
  2-digit addition, subtraction and multiplication) or ``arithmetic:<add|sub|mul>:<digits>``.
- Source-material JSONL (§5.5): the same format with a required ``background`` passage.

Ground truth: normalised exact match against any alias (lower case, punctuation, articles and extra spaces
removed, as SQuAD/TriviaQA evaluation does) or, for arithmetic, the first integer of the answer. The Python API
takes a task-supplied ``Grader`` (``(answer, question) -> bool``) in place of :func:`is_correct`.
"""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from alignlab.data.errors import DataError, DownloadError
from alignlab.data.jsonl import json_object, read_lines
from alignlab.data.resolve import resolve_dataset
from alignlab.extras import require

Checker = Literal["alias", "integer"]
Grader = Callable[[str, "OpenQuestion"], bool]
OPS = {"add": ("+", lambda a, b: a + b), "sub": ("-", lambda a, b: a - b), "mul": ("*", lambda a, b: a * b)}


@dataclass(frozen=True)
class OpenQuestion:
    """One open question; ``answers`` are accepted aliases; ``checker`` picks how a sampled answer is graded."""

    id: str
    question: str
    answers: tuple[str, ...]
    checker: Checker = "alias"
    background: str | None = None


# -- grading ------------------------------------------------------------------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_INTEGER = re.compile(r"-?\d[\d,]*")


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation and the articles a/an/the, collapse whitespace (TriviaQA's normaliser)."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return " ".join(_ARTICLES.sub(" ", text).split())


def first_integer(text: str) -> int | None:
    match = _INTEGER.search(text)
    return None if match is None else int(match.group().replace(",", ""))


def is_correct(answer: str, item: OpenQuestion) -> bool:
    """Grade one sampled answer against ``item``'s aliases (or its integer, for arithmetic)."""
    if item.checker == "integer":
        value = first_integer(answer)
        return value is not None and any(value == first_integer(a) for a in item.answers)
    got = normalize_answer(answer)
    return bool(got) and any(got == normalize_answer(a) for a in item.answers)


# -- arithmetic ---------------------------------------------------------------------------------------------
def generate_arithmetic(n: int, seed: int, ops: tuple[str, ...] = ("add", "sub", "mul"), digits: int = 2
                        ) -> list[OpenQuestion]:
    """``n`` seeded questions ``What is A <op> B?`` with ``digits``-digit operands, ops drawn uniformly."""
    unknown = sorted(set(ops) - set(OPS))
    if unknown or not ops:
        raise ValueError(f"unknown arithmetic operations {unknown}: choose from {sorted(OPS)}")
    if not 1 <= digits <= 9:
        raise ValueError(f"digits must be between 1 and 9, got {digits}")
    rng = random.Random(seed)
    low, high = 10 ** (digits - 1) if digits > 1 else 0, 10 ** digits - 1
    items = []
    for i in range(n):
        op = rng.choice(ops)
        a, b = rng.randint(low, high), rng.randint(low, high)
        symbol, fn = OPS[op]
        items.append(OpenQuestion(f"arith-{op}{digits}-{seed}-{i}", f"What is {a} {symbol} {b}?", (str(fn(a, b)),),
                                  checker="integer"))
    return items


def parse_arithmetic_spec(spec: str) -> tuple[tuple[str, ...], int]:
    """``arithmetic`` -> all ops, 2 digits; ``arithmetic:add:3`` -> (("add",), 3); ``arithmetic:add+mul:2``."""
    parts = spec.split(":")
    if parts[0] != "arithmetic" or len(parts) > 3:
        raise ValueError(f"bad arithmetic task {spec!r}: use arithmetic or arithmetic:<add|sub|mul>[:<digits>]")
    ops = tuple(parts[1].split("+")) if len(parts) > 1 and parts[1] else tuple(OPS)
    try:
        digits = int(parts[2]) if len(parts) > 2 else 2
    except ValueError as err:
        raise ValueError(f"bad arithmetic task {spec!r}: digits must be an integer") from err
    return ops, digits


# -- JSONL --------------------------------------------------------------------------------------------------
def load_open_jsonl(path: str | Path, *, require_background: bool = False) -> list[OpenQuestion]:
    """Read TriviaQA-style JSONL; a bad line raises a DataError naming the file, line and field."""
    path = Path(path)
    items: list[OpenQuestion] = []
    seen: set[str] = set()
    for line_no, line in read_lines(path):
        if line.strip():
            item = _parse_line(line, path, line_no, require_background)
            if item.id in seen:
                raise DataError(f"duplicate id {item.id!r}", path=path, line=line_no, field="id")
            seen.add(item.id)
            items.append(item)
    if not items:
        raise DataError("empty file: no questions", path=path)
    return items


def load_source_material(path: str | Path) -> list[OpenQuestion]:
    """Source-material JSONL (§5.5): question, answers and a ``background`` passage on every line."""
    return load_open_jsonl(path, require_background=True)


def _parse_line(line: str, path: Path, line_no: int, require_background: bool) -> OpenQuestion:
    def fail(problem: str, field: str | None = None) -> DataError:
        return DataError(problem, path=path, line=line_no, field=field)

    record = json_object(line, path, line_no)
    question, answers = record.get("question"), record.get("answers")
    if not isinstance(question, str) or not question.strip():
        raise fail("missing or not a non-empty string", "question")
    if isinstance(answers, str):
        answers = [answers]
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) and a.strip() for a in answers):
        raise fail("expected a non-empty list of non-empty strings", "answers")
    background = record.get("background")
    if background is not None and not isinstance(background, str):
        raise fail(f"expected a string, got {type(background).__name__}", "background")
    if require_background and not (background or "").strip():
        raise fail("missing: the source-material test needs a background passage", "background")
    item_id = record.get("id", f"{path.stem}-{line_no}")
    if not isinstance(item_id, str):
        raise fail(f"expected a string, got {type(item_id).__name__}", "id")
    checker = record.get("checker", "alias")
    if checker not in ("alias", "integer"):
        raise fail(f"expected 'alias' or 'integer', got {checker!r}", "checker")
    return OpenQuestion(item_id, question.strip(), tuple(a.strip() for a in answers), checker, background)


def triviaqa_download(target: Path) -> None:
    """Convert TriviaQA ``rc.nocontext`` validation (Hugging Face hub) into ``target/validation.jsonl``."""
    try:
        require("datasets", extra="train")
        from datasets import load_dataset

        rows = load_dataset("mandarjoshi/trivia_qa", "rc.nocontext", split="validation")
    except Exception as err:  # noqa: BLE001 - any hub/network failure becomes one download error
        raise DownloadError(f"could not download TriviaQA from the Hugging Face hub: {err}") from err
    target.mkdir(parents=True, exist_ok=True)
    with (target / "validation.jsonl").open("w", encoding="utf-8") as out:
        for row in rows:
            aliases = list(dict.fromkeys([row["answer"]["value"], *row["answer"]["aliases"]]))
            out.write(json.dumps({"id": row["question_id"], "question": row["question"], "answers": aliases},
                                 ensure_ascii=False) + "\n")


def load_open_task(spec: str, *, n: int | None = None, seed: int = 0, data: str | None = None
                   ) -> list[OpenQuestion]:
    """Questions of a task spec: ``arithmetic[:ops[:digits]]``, ``triviaqa`` or a JSONL path.

    ``n`` caps the number of questions (generated ones: exactly ``n``, default 100; files: a seeded subset).
    """
    if spec.split(":")[0] == "arithmetic":
        ops, digits = parse_arithmetic_spec(spec)
        return generate_arithmetic(n or 100, seed, ops, digits)
    if spec == "triviaqa":
        root = resolve_dataset("triviaqa", data=data, download=triviaqa_download)
        path = root / "validation.jsonl" if root.is_dir() else root
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"open-question task {spec!r} is not arithmetic[:ops[:digits]], triviaqa or a "
                                    "JSONL file")
    items = load_open_jsonl(path)
    if n is not None and n < len(items):
        items = random.Random(seed).sample(items, n)
    return items
