"""BIG-bench JSON tasks (Srivastava et al. 2022, arXiv 2206.04615), scored as BIG-bench 1.0.0 scores them.

The task's ``metrics`` decide how each example runs, as in ``JsonTask.evaluate_fixed_shot``: with a
multiple-choice metric every choice is scored as a continuation of the formatted input (``cond_log_prob`` with
``absolute_normalization=True``, then renormalised over the choices unless the task sets
``absolute_normalization``; by default the choice is tokenised alone and its ids appended to the input's, as
BIG-bench's HF model does; ``--tokenization joint`` tokenises input + choice as one string); with a generative
metric the model generates greedily and BIG-bench's post-processing applies (cut after the first ``stop_string``
when it starts past index 0, then the first match of ``output_regex``); with ``log_likelihood`` the targets are
scored as continuations. A task listing both kinds runs both. The metrics (:mod:`alignlab.bigbench.summary`) are
those the task lists, computed as BIG-bench does. Programmatic (``task.py``) tasks are refused: they run arbitrary code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from alignlab.bigbench.config import BigBenchConfig
from alignlab.bigbench.prompts import format_examples
from alignlab.bigbench.summary import SECTION, generates, scores_targets, summarize
from alignlab.bigbench.tasks import BigBenchTask, FormattedExample, find_task, load_task
from alignlab.data.errors import DataError, nothing_usable
from alignlab.metrics.bigbench import hashed_argmax, multiple_choice_grade, normalized_log_probs
from alignlab.models.base import Model
from alignlab.models.types import GenerateParams, GenerateRequest, ScoreRequest, Tokenization
from alignlab.runs.run import Run

# --tokenization -> the model layer's ScoreRequest.tokenization
TOKENIZATION: dict[str, Tokenization] = {"bigbench": "separate", "joint": "joint"}

__all__ = ["SECTION", "BigBenchConfig", "load_examples", "postprocess", "run_bigbench", "sample_key", "summarize"]


def load_examples(config: BigBenchConfig) -> tuple[list[FormattedExample], dict[str, BigBenchTask]]:
    """Every formatted example of every task, and the leaf task of each example by name.

    Skipped bad examples are recorded in ``config.errors``; when no example is left at all, DataError (the first
    rejection and the count).
    """
    examples: list[FormattedExample] = []
    leaves: dict[str, BigBenchTask] = {}
    rejected: list[str] = []
    for name in config.tasks:
        task = load_task(find_task(name, data=config.data))
        rejected.extend(task.errors)
        leaves.update({leaf.name: leaf for leaf in task.leaves()})
        examples.extend(format_examples(task, shots=config.shots, seed=config.seed, max_examples=config.max_examples))
    config.errors.extend(rejected)
    if not examples:  # every example rejected (or none at all): a run with nothing evaluated is an error
        raise nothing_usable(rejected, what="example") if rejected else \
            DataError(f"no examples in {', '.join(config.tasks)}")
    return examples, leaves


def sample_key(model: Model, ex: FormattedExample, shots: int) -> str:
    """The record's key; the generative half of an example that is also scored as multiple choice adds
    ``|generative``, so both halves have their own record."""
    suffix = "|generative" if ex.kind == "generative" and ex.choices else ""
    return f"{model.spec}|{model.fingerprint_id}|{ex.task}|{shots}-shot|{ex.index}{suffix}"


def run_bigbench(run: Run, models: list[Model], config: BigBenchConfig,
                 progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Evaluate every model on every example not yet in ``run``; returns the summary."""
    examples, leaves = load_examples(config)
    for model in models:
        run.evaluate_in_chunks(model, examples, lambda ex, m=model: sample_key(m, ex, config.shots),
                               lambda chunk, m=model: _evaluate_chunk(m, chunk, leaves, config),
                               chunk_size=config.chunk_size, progress=progress)
    return summarize(run.samples(), run.manifest, config, leaves)


def _evaluate_chunk(model: Model, chunk: list[FormattedExample], leaves: dict[str, BigBenchTask],
                    config: BigBenchConfig) -> list[dict[str, Any]]:
    mc = [ex for ex in chunk if ex.kind == "multiple_choice"]
    gen = [ex for ex in chunk if ex.kind == "generative"]
    tokenization = TOKENIZATION[config.tokenization]
    records = []
    for ex, scored in zip(mc, model.score([ScoreRequest(ex.context, ex.choices, tokenization) for ex in mc]),
                          strict=True):
        absolute = scored.logprobs
        log_probs = absolute if leaves[ex.task].absolute_normalization else normalized_log_probs(absolute)
        probs = np.exp(np.array(log_probs) - np.max(log_probs))
        probs /= probs.sum()
        records.append({
            **_base_record(model, ex, config), "choices": list(ex.choices),
            "target_scores": list(ex.target_scores), "absolute_log_probs": list(absolute), "log_probs": log_probs,
            "probs": probs.tolist(),
            # the choice multiple_choice_grade grades: BIG-bench's hashed tie-break, not the first maximum
            "prediction": ex.choices[hashed_argmax(log_probs)],
            "correct": multiple_choice_grade([log_probs], [ex.target_scores]),
        })
    # no stop string goes to the backend: BIG-bench's reference model generates, then cuts (see postprocess)
    to_generate = [ex for ex in gen if generates(leaves[ex.task])]
    params = GenerateParams(max_new_tokens=config.max_new_tokens, temperature=0.0)
    generated = dict(zip((id(ex) for ex in to_generate),
                         model.generate([GenerateRequest(ex.context, params) for ex in to_generate]), strict=True))
    to_score = [ex for ex in gen if scores_targets(leaves[ex.task])]
    target_scores = dict(zip((id(ex) for ex in to_score),
                             model.score([ScoreRequest(ex.context, ex.targets, tokenization)
                                                     for ex in to_score]), strict=True))
    for ex in gen:
        record = {**_base_record(model, ex, config), "targets": list(ex.targets)}
        if id(ex) in generated:
            raw = generated[id(ex)].text
            response = postprocess(raw, leaves[ex.task])
            record.update(raw_response=raw, response=response, correct=float(response in ex.targets))
        if id(ex) in target_scores:
            record["target_log_probs"] = target_scores[id(ex)].logprobs
        records.append(record)
    return records


def postprocess(text: str, task: BigBenchTask) -> str:
    """BIG-bench's ``postprocess_output``: when ``stop_string`` first occurs at an index above 0, keep the text
    up to and including it (a text that starts with it is kept whole); then take the first match of
    ``output_regex`` (empty when nothing matches). Decided from the text alone: a generation that ended (at EOS,
    or at the token limit) without writing the stop string gets none appended."""
    if task.stop_string:
        index = text.find(task.stop_string)
        if index > 0:
            text = text[:index + len(task.stop_string)]
    if task.output_regex:
        text = next(iter(re.findall(task.output_regex, text)), "")
    return text


def _base_record(model: Model, ex: FormattedExample, config: BigBenchConfig) -> dict[str, Any]:
    return {"section": SECTION, "model": model.spec, "key": sample_key(model, ex, config.shots), "task": ex.task,
            "index": ex.index, "id": ex.id, "kind": ex.kind, "shots": config.shots, "context": ex.context}
