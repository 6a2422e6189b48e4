"""BIG-bench prompts: ``default_format_fn`` and ``make_nshot_dataset`` of BIG-bench 1.0.0's ``json_task.py``.

The same prompt text, the same seeded order of appended choices, the same few-shot draws and the same
``max_examples`` subsample as BIG-bench, so scores are comparable with the paper's (Srivastava et al. 2022).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alignlab.bigbench.tasks import (
    GENERATIVE_METRICS,
    MULTIPLE_CHOICE_METRICS,
    SCORING_METRICS,
    BigBenchExample,
    BigBenchTask,
    FormattedExample,
)


def format_examples(
    task: BigBenchTask, shots: int = 0, seed: int = 42, max_examples: int | None = None
) -> list[FormattedExample]:
    """Format every leaf task's examples as BIG-bench does, in BIG-bench's query order.

    With subtasks, ``max_examples`` is split evenly (``max_examples // number of subtasks`` each), as in
    BIG-bench.
    """
    if shots < 0:
        raise ValueError(f"shots must be >= 0, got {shots}")
    if max_examples is not None and max_examples < 1:
        raise ValueError(f"max_examples must be >= 1, got {max_examples}")
    per_leaf = max_examples
    if task.subtasks and max_examples is not None:
        per_leaf = max_examples // len(task.subtasks)
        if per_leaf < 1:
            raise ValueError(
                f"{task.name}: max_examples ({max_examples}) must be >= the number of subtasks "
                f"({len(task.subtasks)})"
            )
    return [example for leaf in task.leaves() for example in _format_leaf(leaf, shots, seed, per_leaf)]


def _format_leaf(
    task: BigBenchTask, shots: int, seed: int, max_examples: int | None
) -> list[FormattedExample]:
    formatted_pairs = [_format_one(task, ex, seed) for ex in task.examples]
    prompts = tuple(prompt for prompt, _ in formatted_pairs)
    targets = tuple(target for _, target in formatted_pairs)
    n = len(prompts)
    count = min(max_examples, n) if max_examples else n
    rng = np.random.RandomState(seed)

    if shots == 0:
        order = rng.choice(n, count, replace=False) if count < n else np.arange(n)
        contexts = {int(i): task.task_prefix + prompts[i] for i in order}
    else:
        if n < shots + 1:
            raise ValueError(f"{task.name}: {n} examples are too few for {shots}-shot prompts")
        # BIG-bench always passes max_examples here, so the query order is drawn even when all are used.
        order = rng.choice(n, count, replace=False)
        equal_to = _indices_by_equality(task.examples, prompts, targets)
        contexts = {}
        for i in order:
            # Shots come from the other examples (BIG-bench excludes every example equal to the query).
            pool = np.delete(np.arange(n), equal_to[i])
            picks = pool[rng.choice(len(pool), shots, replace=False)]
            demos = [prompts[j] + targets[j][rng.choice(len(targets[j]))] for j in picks]
            separator = task.few_shot_example_separator
            contexts[int(i)] = task.task_prefix + separator.join(demos) + separator + prompts[i]

    formatted = []
    for i, context in contexts.items():
        example = task.examples[i]
        scores = example.target_scores or {}
        formatted.extend(
            FormattedExample(
                task=task.name,
                index=example.index,
                id=example.id if example.id is not None else f"{task.name}-{example.index}",
                context=context,
                choices=tuple(scores),
                target_scores=tuple(scores.values()),
                targets=targets[i],
                kind=kind,
            )
            for kind in example_kinds(task, example)
        )
    return formatted


def example_kinds(task: BigBenchTask, example: BigBenchExample) -> tuple[str, ...]:
    """How an example is evaluated, decided by the task's ``metrics`` as BIG-bench's ``evaluate_fixed_shot``
    does: choices scored when the task lists a multiple-choice metric, text generated (and targets scored, for
    ``log_likelihood``) when it lists a generative or scoring one; both when it lists both, whatever fields the
    example carries. A task listing no metric BIG-bench knows falls back to the example's own fields
    (``target_scores`` -> multiple choice, else generative)."""
    metrics = set(task.metrics)
    kinds = (("multiple_choice",) if metrics & MULTIPLE_CHOICE_METRICS else ()) + (
        ("generative",) if metrics & (GENERATIVE_METRICS | SCORING_METRICS) else ())
    if kinds:
        return kinds
    return ("multiple_choice",) if example.target_scores is not None else ("generative",)


def _format_one(task: BigBenchTask, example: BigBenchExample, seed: int) -> tuple[str, tuple[str, ...]]:
    """One example's prompt (input prefix, input, appended choices, output prefix) and its targets."""
    text = example.input
    scores = example.target_scores
    if scores is not None and task.append_choices_to_input:
        # BIG-bench seeds a fresh generator per example and permutes the sorted choices.
        ordered = sorted(scores)
        permutation = np.random.RandomState(seed).permutation(len(ordered))
        text += task.choice_prefix + task.choice_prefix.join(ordered[k] for k in permutation)
    if example.targets:
        targets = example.targets
    else:  # the first choice with the highest score
        assert scores is not None
        best = max(scores.values())
        targets = (next(choice for choice, score in scores.items() if score == best),)
    return task.input_prefix + text + task.output_prefix, targets


def _indices_by_equality(
    examples: list[BigBenchExample], prompts: tuple[str, ...], targets: tuple[tuple[str, ...], ...]
) -> list[list[int]]:
    """For each example, the indices of the examples equal to it once formatted (itself included).

    BIG-bench compares whole formatted example dicts: every field of the file's example, with ``input`` and
    ``target`` replaced by their formatted values and ``choice`` (the target_scores keys, in order) added.
    """
    groups: dict[Any, list[int]] = {}
    keys = []
    for i, (example, prompt, target) in enumerate(zip(examples, prompts, targets, strict=True)):
        formatted = {**example.raw, "input": prompt, "target": list(target)}
        if example.target_scores is not None:
            formatted["choice"] = list(example.target_scores)
        key = _hashable(formatted)
        groups.setdefault(key, []).append(i)
        keys.append(key)
    return [groups[key] for key in keys]


def _hashable(value: Any) -> Any:
    """A hashable stand-in that is equal exactly when the JSON values are equal under Python's ``==``
    (object key order ignored, list order kept, ``1 == 1.0``)."""
    if isinstance(value, dict):
        return frozenset((key, _hashable(item)) for key, item in value.items())
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)  # JSON has no tuples, so none is mistaken for a list
    return value
