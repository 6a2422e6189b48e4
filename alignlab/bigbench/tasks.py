"""BIG-bench JSON tasks: load, validate, and format prompts exactly as BIG-bench 1.0.0 does.

Formatting reproduces ``default_format_fn`` and ``make_nshot_dataset`` in ``bigbench/api/json_task.py`` of
BIG-bench 1.0.0 (Srivastava et al. 2022, arXiv 2206.04615): the same prompt text, the same seeded order of
appended choices, the same few-shot draws and the same ``max_examples`` subsample, so scores are comparable
with the paper's. Only JSON tasks are run: programmatic tasks (``task.py``) run arbitrary code and are
refused.

Loading follows BIG-bench too: a task.json without ``examples`` is a parent whose subfolders holding a
task.json are its subtasks (in the order of their paths), and exact duplicate examples are dropped. Unlike
BIG-bench, a malformed example does not stop the task: it is skipped and its error recorded in
``task.errors`` (``strict=True`` raises instead). One check is stricter than BIG-bench's: an example whose
``target_scores`` has no positive score is malformed, since every choice would grade 0.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from alignlab.bigbench.download import PROGRAMMATIC_REFUSAL, TASK_NAME, bigbench_download
from alignlab.data.errors import DataError
from alignlab.data.jsonl import read_text
from alignlab.data.resolve import resolve_dataset

DEFAULT_INPUT_PREFIX = "\nQ: "
DEFAULT_OUTPUT_PREFIX = "\nA: "
DEFAULT_CHOICE_PREFIX = "\n  choice: "
DEFAULT_FEW_SHOT_SEPARATOR = "\n"
# BIG-bench's default when a task sets neither stop_string nor output_regex
DEFAULT_OUTPUT_REGEX = r"[^\.\?\!\;\n]+"

GENERATIVE_METRICS = frozenset(
    {"bleu", "bleurt", "exact_str_match", "case_insensitive_str_match", "sequence_f1",
     "numeric_match_with_0_1_relative_error", "rouge"}
)
SCORING_METRICS = frozenset({"log_likelihood"})
MULTIPLE_CHOICE_METRICS = frozenset(
    {"multiple_choice_grade", "calibration_multiple_choice_brier_score", "expected_calibration_error",
     "weighted_log_probabilities", "weighted_probabilities", "macro_f1"}
)



@dataclass(frozen=True)
class BigBenchExample:
    """One example as written in task.json; ``index`` is its 0-based position in the file's ``examples``."""

    index: int
    input: str
    target_scores: dict[str, float] | None
    targets: tuple[str, ...]  # the file's "target" (empty when the example has only target_scores)
    comment: str | None = None
    id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # the example as in the file


@dataclass
class BigBenchTask:
    """A BIG-bench JSON task; a parent task holds ``subtasks`` and no examples."""

    name: str  # folder name; subtasks are "parent/subfolder"
    path: Path  # the task.json file
    description: str = ""
    task_prefix: str = ""
    input_prefix: str = DEFAULT_INPUT_PREFIX
    output_prefix: str = DEFAULT_OUTPUT_PREFIX
    choice_prefix: str = DEFAULT_CHOICE_PREFIX
    append_choices_to_input: bool = True
    few_shot_example_separator: str = DEFAULT_FEW_SHOT_SEPARATOR
    stop_string: str | None = None
    output_regex: str | None = None
    metrics: tuple[str, ...] = ()
    preferred_score: str | None = None
    absolute_normalization: bool = False
    examples: list[BigBenchExample] = field(default_factory=list)
    subtasks: list[BigBenchTask] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # skipped examples (a parent collects its subtasks')
    duplicates: int = 0  # exact duplicate examples dropped, as BIG-bench does
    json_name: str = ""  # the task.json "name" (BIG-bench reports subtasks as "parent:json_name")

    def leaves(self) -> Iterator[BigBenchTask]:
        """The tasks that hold examples: the subtasks, or the task itself."""
        if self.subtasks:
            yield from self.subtasks
        else:
            yield self


@dataclass(frozen=True)
class FormattedExample:
    """One query as BIG-bench sends it to a model.

    ``context`` is the full prompt (task prefix, few-shot examples, this input). ``choices`` and
    ``target_scores`` follow the task.json key order, the order BIG-bench scores choices in. ``targets`` are
    BIG-bench's targets: the example's ``target``, else its first highest-scoring choice.
    """

    task: str
    index: int
    id: str
    context: str
    choices: tuple[str, ...]
    target_scores: tuple[float, ...]
    targets: tuple[str, ...]
    kind: Literal["multiple_choice", "generative"]


# ----------------------------------------------------------------------------------------------------------
# Loading


def load_task(path: str | Path, *, strict: bool = False) -> BigBenchTask:
    """Load a task folder (with task.json) or a task.json file, with its subtasks."""
    task_file = _task_file(Path(path))
    raw = _read_json(task_file)
    name = task_file.parent.name
    if "examples" in raw:
        return _build_leaf(raw, task_file, name, strict)

    subfolders = sorted(p for p in task_file.parent.iterdir() if p.is_dir())
    for folder in subfolders:
        if (folder / "task.py").exists() and not (folder / "task.json").exists():
            raise DataError(f"subtask {folder.name} {PROGRAMMATIC_REFUSAL}", path=folder / "task.py")
    # BIG-bench sorts subtasks by the path string of their task.json
    subtask_files = sorted(
        (folder / "task.json" for folder in subfolders if (folder / "task.json").is_file()), key=str
    )
    if not subtask_files:
        raise DataError("has no 'examples' and no subtask folders with a task.json", path=task_file)

    parent = _build_task(raw, task_file, name)
    for sub_file in subtask_files:
        sub_name = f"{name}/{sub_file.parent.name}"
        parent.subtasks.append(_build_leaf(_read_json(sub_file), sub_file, sub_name, strict))
    parent.errors = [error for sub in parent.subtasks for error in sub.errors]
    parent.duplicates = sum(sub.duplicates for sub in parent.subtasks)
    return parent


def _task_file(path: Path) -> Path:
    if path.is_dir():
        if (path / "task.json").is_file():
            return path / "task.json"
        if (path / "task.py").exists():
            raise DataError(PROGRAMMATIC_REFUSAL, path=path / "task.py")
        raise FileNotFoundError(f"{path} has no task.json: not a BIG-bench JSON task folder")
    if path.name == "task.py":
        raise DataError(PROGRAMMATIC_REFUSAL, path=path)
    if not path.is_file():
        raise FileNotFoundError(f"BIG-bench task not found: {path}")
    return path


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise DataError(f"invalid JSON: {err.msg} (column {err.colno})", path=path, line=err.lineno) from err
    if not isinstance(data, dict):
        raise DataError(f"expected a JSON object at the top level, got {type(data).__name__}", path=path)
    return data


def _build_task(raw: dict[str, Any], task_file: Path, name: str) -> BigBenchTask:
    """The task-level fields, with BIG-bench's defaults; raises DataError on a field of the wrong type."""

    def get(key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        value = raw.get(key, default)
        if value is not default and not isinstance(value, kind):
            problem = f"expected {_kind_name(kind)}, got {type(value).__name__}"
            raise DataError(problem, path=task_file, field=key)
        return value

    metrics = get("metrics", list, [])
    if not all(isinstance(m, str) for m in metrics):
        raise DataError("expected a list of metric names", path=task_file, field="metrics")
    stop_string = get("stop_string", str, None)
    output_regex = get("output_regex", str, None)
    if stop_string is None and output_regex is None:
        output_regex = DEFAULT_OUTPUT_REGEX
    return BigBenchTask(
        name=name,
        path=task_file,
        description=get("description", str, ""),
        task_prefix=str(raw.get("task_prefix", "")),  # BIG-bench applies str() to it
        input_prefix=get("example_input_prefix", str, DEFAULT_INPUT_PREFIX),
        output_prefix=get("example_output_prefix", str, DEFAULT_OUTPUT_PREFIX),
        choice_prefix=get("choice_prefix", str, DEFAULT_CHOICE_PREFIX),
        append_choices_to_input=get("append_choices_to_input", bool, True),
        few_shot_example_separator=get("few_shot_example_separator", str, DEFAULT_FEW_SHOT_SEPARATOR),
        stop_string=stop_string,
        output_regex=output_regex,
        metrics=tuple(metrics),
        preferred_score=get("preferred_score", str, None),
        absolute_normalization=get("absolute_normalization", bool, False),
        json_name=get("name", str, name),
    )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", list: "a list", bool: "true/false"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _build_leaf(raw: dict[str, Any], task_file: Path, name: str, strict: bool) -> BigBenchTask:
    task = _build_task(raw, task_file, name)
    raw_examples = raw.get("examples")
    if not isinstance(raw_examples, list):
        raise DataError("expected a list of examples", path=task_file, field="examples")
    needs_scores = bool(MULTIPLE_CHOICE_METRICS.intersection(task.metrics))
    needs_target = bool((GENERATIVE_METRICS | SCORING_METRICS).intersection(task.metrics))

    seen: set[str] = set()
    for index, raw_example in enumerate(raw_examples):
        fingerprint = json.dumps(raw_example)  # BIG-bench drops exact duplicates, keeping the first
        if fingerprint in seen:
            task.duplicates += 1
            continue
        seen.add(fingerprint)
        try:
            task.examples.append(_parse_example(raw_example, index, task_file, needs_scores, needs_target))
        except DataError as err:
            if strict:
                raise
            task.errors.append(str(err))
    return task


def _parse_example(
    raw: Any, index: int, task_file: Path, needs_scores: bool, needs_target: bool
) -> BigBenchExample:
    def fail(problem: str, field_name: str | None = None) -> DataError:
        return DataError(problem, path=task_file, example=index, field=field_name)

    if not isinstance(raw, dict):
        raise fail(f"expected a JSON object, got {type(raw).__name__}")
    if "input" not in raw:
        raise fail("missing", "input")
    if not isinstance(raw["input"], str):
        raise fail(f"expected a string, got {type(raw['input']).__name__}", "input")
    if "target" not in raw and "target_scores" not in raw:
        raise fail("missing: an example needs 'target' or 'target_scores'", "target")
    if needs_scores and "target_scores" not in raw:
        raise fail("missing, and required by the task's multiple-choice metrics", "target_scores")
    if needs_target and "target" not in raw:
        raise fail("missing, and required by the task's generative metrics", "target")

    targets = _parse_targets(raw["target"], fail) if "target" in raw else ()
    target_scores = None
    if "target_scores" in raw:
        target_scores = _parse_target_scores(raw["target_scores"], fail, has_target="target" in raw)
    comment = raw.get("comment")
    example_id = raw.get("_id", raw.get("id"))
    return BigBenchExample(
        index=index,
        input=raw["input"],
        target_scores=target_scores,
        targets=targets,
        comment=comment if isinstance(comment, str) else None,
        id=None if example_id is None else str(example_id),
        raw=raw,
    )


def _parse_target_scores(
    value: Any, fail: Callable[[str, str], DataError], has_target: bool
) -> dict[str, float]:
    if not isinstance(value, dict) or not value:
        raise fail("expected a non-empty object mapping each choice to its score", "target_scores")
    scores: dict[str, float] = {}
    for choice, score in value.items():
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise fail(f"score of choice {choice!r} is {score!r}, not a finite number", "target_scores")
        scores[choice] = float(score)
    best, worst = max(scores.values()), min(scores.values())
    if best <= 0:  # stricter than BIG-bench: every choice would grade 0
        raise fail("no choice has a positive score, so none is correct", "target_scores")
    # BIG-bench's rule, which it applies when the example gives no "target": the best must beat the others.
    if not has_target and len(scores) > 1 and best <= worst:
        raise fail("every choice has the same score, so none is correct", "target_scores")
    return scores


def _parse_targets(value: Any, fail: Callable[[str, str], DataError]) -> tuple[str, ...]:
    targets = [value] if isinstance(value, str) else value
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise fail("expected a string or a non-empty list of strings", "target")
    return tuple(targets)


def find_task(name_or_path: str | Path, data: str | Path | None = None) -> Path:
    """An existing task path, or the task named ``name`` resolved as dataset ``bigbench/<name>``."""
    candidate = Path(name_or_path).expanduser()
    if candidate.exists():
        return candidate
    name = str(name_or_path)
    if not TASK_NAME.fullmatch(name):
        raise FileNotFoundError(f"{name!r} is neither an existing path nor a BIG-bench task name")
    return resolve_dataset(f"bigbench/{name}", data=data, download=bigbench_download(name))
