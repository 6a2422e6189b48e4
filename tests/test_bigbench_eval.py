"""The BIG-bench study end to end on a tiny model: records, BIG-bench post-processing, metrics, bad examples."""

from __future__ import annotations

import json
import math

import pytest

from alignlab.bigbench.runner import BigBenchConfig, postprocess, run_bigbench
from alignlab.bigbench.tasks import load_task
from alignlab.metrics.bigbench import multiple_choice_grade
from alignlab.models import Model
from alignlab.models.hf import HFBackend
from alignlab.models.types import GenerateResult, Generation
from alignlab.runs.run import Run

MC_TASK = {
    "name": "toy_mc", "description": "toy", "keywords": [], "metrics": ["multiple_choice_grade"],
    "examples": [
        {"input": "Which is a fruit?", "target_scores": {"apple": 1, "chair": 0, "cloud": 0}},
        {"input": "Which is a colour?", "target_scores": {"red": 1, "dog": 0}},
        {"input": "Which is an animal?", "target_scores": {"cat": 1, "table": 0, "rain": 0}},
        {"input": "Broken example", "target_scores": {"a": 0, "b": 0}},  # no positive score: skipped, reported
    ],
}
GEN_TASK = {
    "name": "toy_gen", "description": "toy", "keywords": [], "metrics": ["exact_str_match", "bleu", "rouge"],
    "stop_string": ".", "output_regex": "[a-z]+",
    "examples": [{"input": "Say cat.", "target": "cat"}, {"input": "Say dog.", "target": ["dog", "a dog"]}],
}


def write_task(root, name, task):
    folder = root / name
    folder.mkdir()
    (folder / "task.json").write_text(json.dumps(task))
    return folder


def test_postprocess_keeps_the_stop_string_then_takes_the_first_regex_match(tmp_path):
    task = load_task(write_task(tmp_path, "gen", GEN_TASK))
    stopped = GenerateResult((Generation(" 42 dogs and cats", "stop"),))
    assert postprocess(stopped, task) == "dogs"
    nothing = GenerateResult((Generation(" 42", "length"),))
    assert postprocess(nothing, task) == ""
    task.output_regex = None
    assert postprocess(stopped, task) == " 42 dogs and cats."


def test_run_bigbench_records_metrics_and_skips_bad_examples(tmp_path, tiny_model, tokenizer):
    mc = write_task(tmp_path, "toy_mc", MC_TASK)
    gen = write_task(tmp_path, "toy_gen", GEN_TASK)
    model = Model(HFBackend(tiny_model, tokenizer, spec="hf:tiny"))
    run = Run.create("bigbench", {}, root=tmp_path / "runs")
    config = BigBenchConfig(tasks=[str(mc), str(gen)], max_new_tokens=6, chunk_size=2)
    summary = run_bigbench(run, [model], config)

    records = run.samples()
    assert len(records) == 5 and len({r["key"] for r in records}) == 5
    assert any("example 3" in e and "target_scores" in e for e in config.errors)
    mc_records = [r for r in records if r["kind"] == "multiple_choice"]
    for r in mc_records:
        assert math.fsum(r["probs"]) == pytest.approx(1.0)
        # log_probs are the absolute ones renormalised over the choices (BIG-bench's default)
        shift = r["absolute_log_probs"][0] - r["log_probs"][0]
        assert [a - shift for a in r["absolute_log_probs"]] == pytest.approx(r["log_probs"], abs=1e-9)
    grade = multiple_choice_grade([r["log_probs"] for r in mc_records], [r["target_scores"] for r in mc_records])
    by_hand = sum(r["target_scores"][r["log_probs"].index(max(r["log_probs"]))] for r in mc_records) / 3
    assert grade == pytest.approx(by_hand)
    assert summary["metrics"]["hf:tiny|toy_mc"]["multiple_choice_grade"] == pytest.approx(grade)
    gen_records = [r for r in records if r["kind"] == "generative"]
    exact = sum(r["response"] in r["targets"] for r in gen_records) / 2
    assert summary["metrics"]["hf:tiny|toy_gen"]["exact_str_match"] == pytest.approx(exact)
    assert any("skipped" in n for n in summary["notes"])


def test_a_resumed_run_does_not_call_the_model_again(tmp_path, tiny_model, tokenizer):
    mc = write_task(tmp_path, "toy_mc", MC_TASK)
    calls = []

    class Counting(HFBackend):
        def score(self, requests):
            calls.append(len(requests))
            return super().score(requests)

    model = Model(Counting(tiny_model, tokenizer, spec="hf:tiny"))  # no request cache: only the run remembers
    run = Run.create("bigbench", {}, root=tmp_path / "runs")
    first = run_bigbench(run, [model], BigBenchConfig(tasks=[str(mc)]))
    assert sum(calls) == 3
    again = run_bigbench(Run.resume(run.path), [model], BigBenchConfig(tasks=[str(mc)]))
    assert sum(calls) == 3
    assert again["metrics"] == first["metrics"]


def test_programmatic_task_is_refused(tmp_path):
    folder = tmp_path / "code_task"
    folder.mkdir()
    (folder / "task.py").write_text("import os\n")
    with pytest.raises(ValueError, match="arbitrary code"):
        load_task(folder)
