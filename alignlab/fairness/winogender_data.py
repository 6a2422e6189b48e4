"""Winogender schemas (Rudinger et al. 2018, *Gender Bias in Coreference Resolution*; MIT, Copyright (c) 2018
Rachel Rudinger) as Ganguli et al. 2023 §3.2 use them: the 60 templates whose pronoun refers to the occupation
(``templates.tsv``, ``answer = 0``), each with a blank for the pronoun and the three pronouns of its case
(male, female, neutral), joined with the occupation's BLS share of women (``occupations-stats.tsv``).

Resolved as ``winogender-schemas/data`` under ``--data`` / ``$ALIGNLAB_DATA`` / the user cache, or downloaded
from GitHub ``rudinger/winogender-schemas``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from alignlab.behaviors.data import WINOGENERATED_GENDERS
from alignlab.data.errors import DataError
from alignlab.data.jsonl import read_lines
from alignlab.data.resolve import http_download, resolve_dataset

UPSTREAM = "https://raw.githubusercontent.com/rudinger/winogender-schemas/master/data/{name}"
FILES = ("templates.tsv", "occupations-stats.tsv")
GENDERS = WINOGENERATED_GENDERS  # ("male", "female", "neutral"): the order of every pronoun triple
PRONOUNS = {  # placeholder -> (male, female, neutral)
    "$NOM_PRONOUN": ("he", "she", "they"),
    "$POSS_PRONOUN": ("his", "her", "their"),
    "$ACC_PRONOUN": ("him", "her", "them"),
}


@dataclass(frozen=True)
class WinogenderItem:
    """One occupation template: ``sentence`` has ``_`` for the pronoun; ``prefix`` is the text before it."""

    id: str
    occupation: str
    participant: str
    sentence: str
    prefix: str
    pronouns: tuple[str, str, str]  # male, female, neutral
    bls_pct_female: float
    line: int


def _read_tsv(path: Path, needed: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    reader = csv.DictReader((text + "\n" for _, text in read_lines(path)), delimiter="\t")
    try:
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"missing column(s) {missing}", path=path, line=1)
        rows = []
        for number, row in enumerate(reader, start=2):
            for column in needed:
                if row.get(column) is None:
                    raise DataError("missing value (too few tab-separated columns)", path=path, line=number,
                                    field=column)
            rows.append((number, row))
    except csv.Error as err:
        raise DataError(f"not a valid TSV row ({err})", path=path, line=reader.line_num) from None
    return rows


def load_occupation_stats(path: str | Path) -> dict[str, float]:
    """``{occupation: bls_pct_female}``; a bad or repeated row raises DataError."""
    path = Path(path)
    stats: dict[str, float] = {}
    for number, row in _read_tsv(path, ("occupation", "bls_pct_female")):
        try:
            share = float(row["bls_pct_female"])
        except (TypeError, ValueError) as err:
            raise DataError(f"{row['bls_pct_female']!r} is not a number", path=path, line=number,
                            field="bls_pct_female") from err
        if not 0 <= share <= 100:
            raise DataError(f"{share} is not a percentage", path=path, line=number, field="bls_pct_female")
        if row["occupation"] in stats:
            raise DataError(f"occupation {row['occupation']!r} listed twice", path=path, line=number,
                            field="occupation")
        stats[row["occupation"]] = share
    return stats


def load_winogender_files(templates: str | Path, stats_path: str | Path) -> list[WinogenderItem]:
    """The ``answer = 0`` templates with their blanks filled by ``_``, in file order."""
    templates, stats = Path(templates), load_occupation_stats(stats_path)
    columns = ("occupation(0)", "other-participant(1)", "answer", "sentence")
    items = []
    for number, row in _read_tsv(templates, columns):
        if row["answer"].strip() != "0":
            continue
        occupation, participant, template = row["occupation(0)"], row["other-participant(1)"], row["sentence"]
        slots = [p for p in PRONOUNS if p in template]
        if len(slots) != 1 or template.count(slots[0]) != 1:
            raise DataError("needs exactly one pronoun placeholder", path=templates, line=number, field="sentence")
        if occupation not in stats:
            raise DataError(f"occupation {occupation!r} has no row in {Path(stats_path).name}", path=templates,
                            line=number, field="occupation(0)")
        sentence = template.replace("$OCCUPATION", occupation).replace("$PARTICIPANT", participant)
        prefix = sentence.split(slots[0])[0].rstrip()
        if not prefix:
            raise DataError("the pronoun opens the sentence: nothing to put before it", path=templates,
                            line=number, field="sentence")
        items.append(WinogenderItem(id=f"winogender#{occupation}.{participant}", occupation=occupation,
                                    participant=participant, sentence=sentence.replace(slots[0], "_"), prefix=prefix,
                                    pronouns=PRONOUNS[slots[0]], bls_pct_female=stats[occupation], line=number))
    if not items:
        raise DataError("no template with answer = 0", path=templates)
    return items


def load_winogender(data: str | Path | None = None) -> list[WinogenderItem]:
    """The 60 occupation-coreferent templates from the resolved ``winogender-schemas/data`` folder."""
    def download(target: Path) -> None:
        for name in FILES:
            http_download(UPSTREAM.format(name=name), target / name)

    folder = resolve_dataset("winogender-schemas/data", data=data, download=download)
    if folder.is_file():
        folder = folder.parent
    return load_winogender_files(folder / "templates.tsv", folder / "occupations-stats.tsv")
