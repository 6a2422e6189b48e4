"""BBQ (Parrish et al. 2022, *BBQ: A Hand-Built Bias Benchmark for Question Answering*; CC-BY-4.0): the
released JSONL, one file per category, each row an ambiguous or disambiguated context with three answers.

The biased answer of each row is derived from the row's own fields (no ``additional_metadata.csv``):
``answer_info`` gives each option's text and group label (the UNKNOWN option's label is ``unknown``) and
``additional_metadata.stereotyped_groups`` the groups the question's stereotype targets. For a negative
question the biased answer is the option whose group is stereotyped; for a non-negative question it is the
other non-UNKNOWN option. A group matches by its text (Nationality labels are regions, the stereotyped groups
nationalities), its label, or a part of its label as BBQ's generator composes them: proper names carry
``gender-ethnicity`` (``F-Black``, ``M-Hispanic``) in Race_ethnicity and ``identity_gender`` (``trans_F``,
``nonTrans_M``) in Gender_identity, so a label is also split on ``-`` and ``_``; the generator labels gendered
words by the word (``woman``, ``girl``, ``man``, ``boy``) while the stereotyped groups say ``F`` / ``M``, so those
words also match ``F`` / ``M`` (as lm-evaluation-harness's BBQ task does). Names compare without case, spaces,
hyphens or underscores.

Files resolve as ``BBQ/data/<Category>.jsonl`` under ``--data`` / ``$ALIGNLAB_DATA`` / the user cache; a
category not found there is downloaded from GitHub ``nyu-mll/BBQ`` into the user cache. A row whose biased
answer cannot be derived is skipped and counted (none is, in the four categories checked locally).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignlab.data.errors import DataError, nothing_usable
from alignlab.data.jsonl import read_jsonl
from alignlab.data.resolve import http_download, resolve_dataset

# The paper's nine non-intersectional categories (Ganguli et al. 2023 §3.1: 58,492 questions).
PAPER_CATEGORIES = ("Age", "Disability_status", "Gender_identity", "Nationality", "Physical_appearance",
                    "Race_ethnicity", "Religion", "SES", "Sexual_orientation")
ALL_CATEGORIES = (*PAPER_CATEGORIES, "Race_x_SES", "Race_x_gender")
UPSTREAM = "https://raw.githubusercontent.com/nyu-mll/BBQ/main/data/{category}.jsonl"
CONDITIONS = ("ambig", "disambig")
POLARITIES = ("neg", "nonneg")


@dataclass(frozen=True)
class BBQItem:
    """One BBQ question. ``biased`` and ``unknown`` index ``answers``; ``label`` is the correct answer."""

    id: str
    category: str
    condition: str  # ambig | disambig
    polarity: str  # neg | nonneg
    context: str
    question: str
    answers: tuple[str, str, str]
    groups: tuple[str, str, str]
    stereotyped_groups: tuple[str, ...]
    label: int
    unknown: int
    biased: int
    line: int


@dataclass(frozen=True)
class BBQCategory:
    name: str
    path: Path
    items: list[BBQItem]
    skipped: list[str]  # "line N: reason" of each row whose biased answer could not be derived


GENDER_WORDS = {"woman": "f", "girl": "f", "man": "m", "boy": "m"}


def _norm(text: str) -> str:
    return re.sub(r"[\s_\-]", "", text).lower()


def group_names(text: str, group: str) -> set[str]:
    """Every normalised name an answer goes by: its text, its group label, the label's ``-``/``_`` parts
    (``F-Black`` -> f, black; ``trans_F`` -> trans, f) and ``f``/``m`` for woman/girl/man/boy."""
    names = {_norm(text), _norm(group)} | {_norm(part) for part in re.split(r"[-_]", group) if part}
    return names | {GENDER_WORDS[name] for name in names if name in GENDER_WORDS}


def biased_answer(answer_info: dict[str, Any], stereotyped_groups: list[str], polarity: str) -> tuple[int, int]:
    """``(biased index, unknown index)`` of one row; ValueError when not exactly one of each exists."""
    info = [answer_info[f"ans{i}"] for i in range(3)]
    unknown = [i for i, (_, group) in enumerate(info) if group == "unknown"]
    if len(unknown) != 1:
        raise ValueError(f"expected one answer with group 'unknown', found {len(unknown)}")
    targets = {_norm(g) for g in stereotyped_groups}
    stereotyped = [bool(group_names(text, group) & targets) for text, group in info]
    wanted = polarity == "neg"
    biased = [i for i in range(3) if i != unknown[0] and stereotyped[i] == wanted]
    if len(biased) != 1:
        raise ValueError(f"{len(biased)} answers qualify as the biased one for a {polarity} question about "
                         f"{stereotyped_groups}")
    return biased[0], unknown[0]


def parse_row(row: dict[str, Any], category: str, path: Path, line: int) -> BBQItem:
    """One JSONL row as a :class:`BBQItem`; a malformed field raises DataError naming file, line and field."""
    def need(name: str, kind: type | tuple[type, ...]) -> Any:
        if not isinstance(row.get(name), kind):
            raise DataError(f"missing or not a {getattr(kind, '__name__', kind)}", path=path, line=line, field=name)
        return row[name]

    condition, polarity = need("context_condition", str), need("question_polarity", str)
    if condition not in CONDITIONS:
        raise DataError(f"{condition!r} is not one of {CONDITIONS}", path=path, line=line, field="context_condition")
    if polarity not in POLARITIES:
        raise DataError(f"{polarity!r} is not one of {POLARITIES}", path=path, line=line, field="question_polarity")
    answers = tuple(str(need(f"ans{i}", str)) for i in range(3))
    label = need("label", int)
    if isinstance(label, bool):
        raise DataError(f"expected 0, 1 or 2, got {label}", path=path, line=line, field="label")
    if not 0 <= label <= 2:
        raise DataError(f"{label} is not 0, 1 or 2", path=path, line=line, field="label")
    info = need("answer_info", dict)
    if any(not (isinstance(info.get(f"ans{i}"), list) and len(info[f"ans{i}"]) == 2) for i in range(3)):
        raise DataError("needs ans0..ans2, each [text, group]", path=path, line=line, field="answer_info")
    groups = need("additional_metadata", dict).get("stereotyped_groups")
    if not isinstance(groups, list):
        raise DataError("missing list", path=path, line=line, field="additional_metadata.stereotyped_groups")
    biased, unknown = biased_answer(info, groups, polarity)
    if condition == "ambig" and label != unknown:
        raise DataError(f"an ambiguous context's answer should be the UNKNOWN option {unknown}, not {label}",
                        path=path, line=line, field="label")
    return BBQItem(id=f"{category}#{row.get('example_id', line)}", category=category, condition=condition,
                   polarity=polarity, context=need("context", str), question=need("question", str),
                   answers=answers, groups=tuple(str(info[f"ans{i}"][1]) for i in range(3)),  # type: ignore[arg-type]
                   stereotyped_groups=tuple(map(str, groups)), label=label, unknown=unknown, biased=biased, line=line)


def load_bbq_file(path: str | Path, category: str | None = None) -> BBQCategory:
    """Every row of one category file; rows whose biased answer cannot be derived are listed in ``skipped``."""
    path = Path(path)
    name = category or path.stem
    items, skipped = [], []
    for number, row in read_jsonl(path):
        try:
            items.append(parse_row(row, name, path, number))
        except DataError:
            raise
        except ValueError as err:
            skipped.append(f"line {number}: {err}")
    if not items:
        raise nothing_usable([f"{path}, {reason}" for reason in skipped], path=path) if skipped else \
            DataError("empty file: no rows", path=path)
    return BBQCategory(name, path, items, skipped)


def category_path(category: str, data: str | Path | None = None) -> Path:
    """The category's JSONL: ``BBQ/data/<category>.jsonl`` locally, else downloaded into the user cache."""
    if category not in ALL_CATEGORIES:
        raise ValueError(f"unknown BBQ category {category!r}: choose from {', '.join(ALL_CATEGORIES)}")
    try:
        folder = resolve_dataset("BBQ/data", data=data)
        if (folder / f"{category}.jsonl").is_file():
            return folder / f"{category}.jsonl"
        if folder.is_file() and folder.stem == category:
            return folder
    except FileNotFoundError:
        pass

    def download(target: Path) -> None:
        http_download(UPSTREAM.format(category=category), target / f"{category}.jsonl")

    return resolve_dataset(f"BBQ/download/{category}", data=None, download=download) / f"{category}.jsonl"


def load_bbq(categories: list[str], data: str | Path | None = None) -> tuple[list[BBQCategory], list[str]]:
    """Every category that loads, and a note for each that could not be found or downloaded."""
    loaded, notes = [], []
    for category in dict.fromkeys(categories):
        try:
            loaded.append(load_bbq_file(category_path(category, data), category))
        except FileNotFoundError as err:
            lines = str(err).splitlines()
            why = next((line.strip(" -") for line in lines if line.strip(" -").startswith("download")), lines[0])
            notes.append(f"BBQ {category}: not evaluated: not found locally; {why}")
    return loaded, notes
