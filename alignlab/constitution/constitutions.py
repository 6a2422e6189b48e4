"""Constitutions: YAML files of critique/revision pairs (SL-CAI) and multiple-choice feedback principles (RL-CAI).

Built-in files live in ``alignlab/constitution/constitutions/`` (our own wording): ``harmless`` (Bai et al. 2022,
16 critique/revision pairs + 16 feedback principles), ``good_for_humanity`` (Kundu et al. 2023 §3.1, nine variants of
one general principle) and five trait sets (§2.2: ``power_seeking``, ``self_preservation``, ``self_replication``,
``risk_seeking``, ``self_identity``; four principles each plus seed questions for trait-question generation).
A user file has the same fields::

    name: my-constitution
    critiques: [{id: c0, critique: "...", revision: "..."}]   # optional, needed by `revise`
    feedback: ["Which reply ...?"]                             # optional, needed by `label`
    trait: "what the trait is"                                 # optional, trait sets only
    seed_questions: ["..."]                                    # optional, trait-question few-shots
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from alignlab.data.errors import DataError
from alignlab.data.jsonl import read_text

BUILTIN_DIR = Path(str(resources.files("alignlab.constitution") / "constitutions"))
TRAITS = ("power_seeking", "self_preservation", "self_replication", "risk_seeking", "self_identity")


@dataclass(frozen=True)
class CritiquePair:
    id: str
    critique: str
    revision: str


@dataclass(frozen=True)
class Constitution:
    name: str
    critiques: tuple[CritiquePair, ...] = ()
    feedback: tuple[str, ...] = ()
    description: str = ""
    trait: str = ""
    seed_questions: tuple[str, ...] = ()
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def constitution_path(name_or_path: str | Path) -> Path:
    """A built-in name (``harmless``, ``power-seeking``...) or a path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise FileNotFoundError(f"constitution file {path} not found")
        return path
    builtin = BUILTIN_DIR / f"{str(name_or_path).replace('-', '_')}.yaml"
    if not builtin.is_file():
        raise FileNotFoundError(f"unknown constitution {str(name_or_path)!r}: use a .yaml path or one of "
                                f"{', '.join(builtin_names())}")
    return builtin


class _LineLoader(yaml.SafeLoader):
    """Records the 1-based line of every mapping as ``__line__`` so errors can name it."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping = super().construct_mapping(node, deep=deep)
        mapping["__line__"] = node.start_mark.line + 1
        return mapping


def _text(value: Any, path: Path, line: int | None, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DataError("must be a non-empty string", path=path, line=line, field=name)
    return value.strip()


def _text_list(doc: dict[str, Any], key: str, path: Path, line: int) -> tuple[str, ...]:
    values = doc.get(key) or []
    if not isinstance(values, list):
        raise DataError("must be a list of strings", path=path, line=line, field=key)
    return tuple(_text(v, path, line, f"{key}[{i}]") for i, v in enumerate(values))


def load_constitution(name_or_path: str | Path) -> Constitution:
    """Load and validate a constitution; a bad file raises DataError naming file, line and field."""
    path = constitution_path(name_or_path)
    try:
        doc = yaml.load(read_text(path), Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = " ".join(str(getattr(err, "problem", None) or err).split())  # one line (the mark has the place)
        raise DataError(f"invalid YAML ({problem})", path=path, line=mark.line + 1 if mark else None) from err
    if not isinstance(doc, dict):
        raise DataError("must be a mapping with fields name, critiques and/or feedback", path=path)
    top = doc.pop("__line__", 1)
    name = _text(doc.get("name", path.stem), path, top, "name")
    pairs = []
    raw_pairs = doc.get("critiques") or []
    if not isinstance(raw_pairs, list):
        raise DataError("must be a list of {id, critique, revision}", path=path, line=top, field="critiques")
    for i, item in enumerate(raw_pairs):
        line = item.get("__line__") if isinstance(item, dict) else top
        if not isinstance(item, dict):
            raise DataError("must be a mapping with critique and revision", path=path, line=line,
                            field=f"critiques[{i}]")
        pairs.append(CritiquePair(str(item.get("id", f"{name}{i}")),
                                  _text(item.get("critique"), path, line, f"critiques[{i}].critique"),
                                  _text(item.get("revision"), path, line, f"critiques[{i}].revision")))
    if len({p.id for p in pairs}) != len(pairs):
        raise DataError("critique ids must be unique", path=path, line=top, field="critiques")
    feedback = _text_list(doc, "feedback", path, top)
    if not pairs and not feedback:
        raise DataError("needs at least one of critiques or feedback", path=path, line=top)
    known = {"name", "critiques", "feedback", "description", "trait", "seed_questions"}
    return Constitution(name=name, critiques=tuple(pairs), feedback=feedback,
                        description=str(doc.get("description", "")), trait=str(doc.get("trait", "")),
                        seed_questions=_text_list(doc, "seed_questions", path, top), source=str(path),
                        extra={k: v for k, v in doc.items() if k not in known})


def require(constitution: Constitution, what: str) -> None:
    """Fail clearly when a step needs critiques or feedback principles the constitution lacks."""
    if what == "critiques" and not constitution.critiques:
        raise ValueError(f"constitution {constitution.name} ({constitution.source}) has no critiques: "
                         "`revise` needs critique/revision pairs")
    if what == "feedback" and not constitution.feedback:
        raise ValueError(f"constitution {constitution.name} ({constitution.source}) has no feedback principles: "
                         "`label` needs them")
