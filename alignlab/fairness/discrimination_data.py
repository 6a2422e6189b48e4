"""Students for the law-school admissions task of Ganguli et al. 2023 §3.3, and Anthropic's discrim-eval scenarios.

- :func:`student_grid`: students the project generates itself, every (raw LSAT, GPA) pair of two ranges; each is
  asked about once per race x sex variant (Black/white x female/male), everything else fixed.
- :func:`load_student_csv`: a user's CSV of real student records (the paper used the LSAC National Longitudinal
  Bar Passage Study, whose licence does not allow shipping it): columns ``lsat`` and ``gpa`` (any case; LSAC's
  ``UGPA`` is accepted for ``gpa``); other columns, race and sex included, are ignored, since every student is
  asked about under every variant.
- :func:`load_discrim_eval`: the JSONL format of HF ``Anthropic/discrim-eval`` (Tamkin et al. 2023): one row per
  filled scenario with ``filled_template``, ``decision_question_id``, ``age``, ``gender``, ``race``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alignlab.data.errors import DataError
from alignlab.data.jsonl import read_jsonl, read_lines
from alignlab.data.resolve import http_download, resolve_dataset

RACES = ("Black", "white")  # the paper's comparison: p(yes | Black) - p(yes | white)
SEXES = ("female", "male")  # and p(yes | female) - p(yes | male)
DEFAULT_LSAT = tuple(range(145, 180, 5))  # raw LSAT (120-180 scale): 145, 150, ..., 175
DEFAULT_GPA = (2.7, 3.0, 3.3, 3.6, 3.9)
DISCRIM_EVAL_URL = "https://huggingface.co/datasets/Anthropic/discrim-eval/resolve/main/{name}/{name}.jsonl"


@dataclass(frozen=True)
class Student:
    id: str
    lsat: float
    gpa: float


@dataclass(frozen=True)
class AdmissionItem:
    """One student under one race x sex variant."""

    id: str
    student: str
    lsat: float
    gpa: float
    race: str
    sex: str


@dataclass(frozen=True)
class DiscrimEvalItem:
    id: str
    question_id: int
    text: str
    age: float
    gender: str
    race: str
    line: int


def student_grid(lsat: tuple[float, ...] = DEFAULT_LSAT, gpa: tuple[float, ...] = DEFAULT_GPA) -> list[Student]:
    """Every (LSAT, GPA) pair, LSAT-major."""
    if not lsat or not gpa:
        raise ValueError("the student grid needs at least one LSAT score and one GPA")
    return [Student(f"grid-lsat{_num(s)}-gpa{_num(g)}", float(s), float(g)) for s in lsat for g in gpa]


def variants(students: list[Student]) -> list[AdmissionItem]:
    """Each student once per race x sex, in student order."""
    return [AdmissionItem(f"{s.id}|{race}|{sex}", s.id, s.lsat, s.gpa, race, sex)
            for s in students for race in RACES for sex in SEXES]


def select_students(students: list[Student], limit: int | None, seed: int) -> list[Student]:
    """All students, or a seeded subset of ``limit`` kept in order."""
    if limit is None or len(students) <= limit:
        return list(students)
    keep = np.sort(np.random.default_rng(seed).choice(len(students), limit, replace=False))
    return [students[i] for i in keep]


def _num(value: float) -> str:
    return f"{value:g}"


def load_student_csv(path: str | Path) -> list[Student]:
    """Students from a CSV with ``lsat`` and ``gpa`` columns; a bad value raises DataError naming line and field."""
    path = Path(path)
    reader = csv.DictReader(text + "\n" for _, text in read_lines(path))
    try:
        names = {name.strip().lower(): name for name in reader.fieldnames or []}
        lsat_col = names.get("lsat")
        gpa_col = names.get("gpa") or names.get("ugpa")
        if lsat_col is None or gpa_col is None:
            raise DataError("needs columns 'lsat' and 'gpa' (or 'ugpa')", path=path, line=1)
        students = []
        for number, row in enumerate(reader, start=2):
            values = []
            for column in (lsat_col, gpa_col):
                if row[column] is None:
                    raise DataError("missing value (too few columns)", path=path, line=number, field=column)
                try:
                    value = float(row[column])
                except (TypeError, ValueError) as err:
                    raise DataError(f"{row[column]!r} is not a number", path=path, line=number,
                                    field=column) from err
                if not np.isfinite(value) or value < 0:
                    raise DataError(f"{value} is not a non-negative number", path=path, line=number, field=column)
                values.append(value)
            students.append(Student(f"csv-line{number}", values[0], values[1]))
    except csv.Error as err:
        raise DataError(f"not a valid CSV row ({err})", path=path, line=reader.line_num) from None
    if not students:
        raise DataError("no student rows", path=path)
    return students


def load_discrim_eval_file(path: str | Path) -> list[DiscrimEvalItem]:
    """Rows of a discrim-eval JSONL file (``explicit.jsonl`` or ``implicit.jsonl``)."""
    path = Path(path)
    items = []
    for number, row in read_jsonl(path):
        for name, kind in (("filled_template", str), ("decision_question_id", int), ("age", (int, float)),
                           ("gender", str), ("race", str)):
            if not isinstance(row.get(name), kind) or isinstance(row.get(name), bool):
                raise DataError("missing or of the wrong type", path=path, line=number, field=name)
        items.append(DiscrimEvalItem(f"discrim-eval#{path.stem}#{number}", row["decision_question_id"],
                                     row["filled_template"].strip(), float(row["age"]), row["gender"], row["race"],
                                     number))
    if not items:
        raise DataError("no rows", path=path)
    return items


def load_discrim_eval(name: str = "explicit", data: str | Path | None = None) -> list[DiscrimEvalItem]:
    """A discrim-eval file: a path, ``discrim-eval/<name>.jsonl`` under the data roots, or downloaded from HF."""
    if Path(name).suffix == ".jsonl" and Path(name).is_file():
        return load_discrim_eval_file(name)
    if name not in ("explicit", "implicit"):
        raise ValueError(f"discrim-eval set must be 'explicit', 'implicit' or a .jsonl path, got {name!r}")

    def download(target: Path) -> None:
        http_download(DISCRIM_EVAL_URL.format(name=name), target / f"{name}.jsonl")

    folder = resolve_dataset(f"discrim-eval/{name}", data=data, download=download)
    return load_discrim_eval_file(folder if folder.is_file() else folder / f"{name}.jsonl")
