"""The house rules of issue 15: one room per study, imports run down the floors only, no import circles, small files."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "alignlab"
STUDIES = ("bigbench", "behaviors", "honesty", "fairness", "reasoning", "redteam", "constitution", "influence", "mc")
# models -> data -> runs (and report) -> metrics -> studies -> audit -> CLI
FLOORS = {"models": 0, "paths": 0, "extras": 0, "data": 1, "runs": 2, "report": 2, "metrics": 3,
          **dict.fromkeys(STUDIES, 4), "audit": 5, "loop": 5, "catalog": 5, "cli": 6, "cli_common": 6, "__init__": 6}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> set[str]:
    """Every alignlab module ``path`` imports (at any depth, including inside functions), resolved to modules:
    ``from alignlab.x import y`` is ``alignlab.x.y`` when that is a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("alignlab")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("alignlab"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & MODULES.keys()
            found |= subs or {node.module}
    return {name for name in found if name in MODULES}


def floor(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return FLOORS["__init__"]
    if len(parts) > 2 and parts[2].startswith("cli"):
        return FLOORS["cli"]  # a study's (or the audit's) CLI shell sits on the CLI floor
    return FLOORS[parts[1].removesuffix(".py")]


def test_every_module_has_a_floor():
    unknown = sorted(m for m in MODULES if m.count(".") >= 1 and m.split(".")[1] not in FLOORS)
    assert not unknown, f"modules outside the house plan: {unknown}"


def test_imports_never_run_up_the_floors():
    upward = [f"{m} (floor {floor(m)}) imports {target} (floor {floor(target)})"
              for m, path in MODULES.items() for target in imports(path) if floor(target) > floor(m)]
    assert not upward, "\n".join(upward)


def test_no_import_circles():
    graph = {m: imports(p) - {m} for m, p in MODULES.items()}
    circles = []
    for start in graph:  # a depth-first search back to ``start``
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    circles.append(" -> ".join([*trail, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
    assert not circles, "\n".join(sorted(set(circles)))


def test_the_checks_see_a_circle_and_an_upward_import(tmp_path, monkeypatch):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from alignlab.runs.run import Run\nimport alignlab.cli\n")
    b.write_text("def f():\n    from alignlab.fairness import config\n")
    assert imports(a) == {"alignlab.runs.run", "alignlab.cli"}
    assert imports(b) == {"alignlab.fairness.config"}
    assert floor("alignlab.runs.run") < floor("alignlab.fairness.bbq") < floor("alignlab.fairness.cli")


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_files_stay_small(path):
    lines = path.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines: split it by what the code does"


@pytest.mark.parametrize("study", STUDIES)
def test_each_study_is_one_room_with_its_own_door(study):
    room = PACKAGE / study
    assert (room / "config.py").is_file() and (room / "cli.py").is_file()
    module = importlib.import_module(f"alignlab.{study}")
    assert callable(module.run) and module.run.__doc__
    assert module.__doc__ and "run(" in module.__doc__  # the module docstring shows the one call
