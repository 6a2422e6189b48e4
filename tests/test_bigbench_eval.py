"""The BIG-bench study end to end on a tiny model: records, BIG-bench post-processing, metrics, bad examples."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest

from alignlab.bigbench.runner import BigBenchConfig, postprocess, run_bigbench
from alignlab.bigbench.tasks import load_task
from alignlab.metrics.bigbench import multiple_choice_grade
from alignlab.models import Model
from alignlab.models.base import Backend
from alignlab.models.hf import HFBackend
from alignlab.models.types import ContinuationScore, GenerateResult, Generation, ScoreResult
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


def test_postprocess_cuts_after_the_stop_string_then_takes_the_first_regex_match(tmp_path):
    task = load_task(write_task(tmp_path, "gen", GEN_TASK))  # stop ".", regex [a-z]+
    assert postprocess(" 42 dogs. and cats.", task) == "dogs"
    assert postprocess(" 42", task) == ""
    task.output_regex = None
    # BIG-bench model_utils.postprocess_output: text[:index + len(stop)] only when index > 0
    assert postprocess(" 42 dogs. and cats.", task) == " 42 dogs."
    assert postprocess(".cats. dogs", task) == ".cats. dogs"  # starts with the stop string: kept whole
    assert postprocess(" no stop here", task) == " no stop here"  # never appended


class Scripted(Backend):
    """Generations by the prompt's question and log-probabilities by continuation; EOS reported as "stop", as the
    openai backend and ``alignlab serve`` report it. Records every request."""

    spec = "scripted"

    def __init__(self, replies=None, logprobs=None):
        self.replies, self.logprobs = replies or {}, logprobs or {}
        self.generated, self.scored = [], []

    def fingerprint(self):
        return {"backend": "scripted"}

    def generate(self, requests):
        self.generated.extend(requests)
        return [GenerateResult((Generation(next(v for k, v in self.replies.items() if k in r.prompt), "stop"),))
                for r in requests]

    def score(self, requests):
        self.scored.extend(requests)
        return [ScoreResult(tuple(ContinuationScore(self.logprobs.get(c, -5.0), (), (), False)
                                  for c in r.continuations)) for r in requests]

    def next_token(self, requests):
        raise NotImplementedError


def run_scripted(tmp_path, tasks, backend, **kwargs):
    run = Run.create("bigbench", {}, root=tmp_path / "runs")
    config = BigBenchConfig(tasks=[str(write_task(tmp_path, name, task)) for name, task in tasks.items()],
                            **kwargs)
    summary = run_bigbench(run, [Model(backend)], config)
    return run.samples(), summary


STOP_TASK = {"name": "stop", "description": "toy", "keywords": [], "metrics": ["exact_str_match"],
             "stop_string": ".", "examples": [{"input": "Say cat.", "target": "cat."},
                                              {"input": "Say dog.", "target": "dog"},
                                              {"input": "Say emu.", "target": ".emu. emu"}]}


def test_an_eos_reported_as_stop_gets_no_stop_string_and_the_backend_gets_none(tmp_path):
    # "dog" ended at EOS (finish_reason "stop", as openai/serve report it). Before issue 16 the runner appended
    # the stop string to every "stop" generation ("dog" -> "dog.", wrong) and asked the backend to stop at "."
    # (so "cat. more" came back as "cat" and was rebuilt as "cat.", and ".emu. emu" came back empty).
    backend = Scripted({"cat": "cat. more", "dog": "dog", "emu": ".emu. emu"})
    records, summary = run_scripted(tmp_path, {"stop": STOP_TASK}, backend)
    assert {r["raw_response"]: r["response"] for r in records} == {"cat. more": "cat.", "dog": "dog",
                                                                   ".emu. emu": ".emu. emu"}
    assert all(r.params.stop == () for r in backend.generated)
    assert summary["metrics"]["scripted|stop"]["exact_str_match"] == 1.0


# A generative-only task whose examples also carry target_scores (BIG-bench generates them), and a task that
# lists both kinds of metric (BIG-bench runs both, as for strategyqa).
GEN_WITH_SCORES = {"name": "g", "description": "toy", "keywords": [], "metrics": ["exact_str_match"],
                   "output_regex": "[a-z]+", "examples": [
                       {"input": "Say cat.", "target": "cat", "target_scores": {"cat": 1, "dog": 0}},
                       {"input": "Say dog.", "target": "dog", "target_scores": {"cat": 0, "dog": 1}}]}
BOTH = {**GEN_WITH_SCORES, "name": "both", "metrics": ["multiple_choice_grade", "exact_str_match"],
        "preferred_score": "exact_str_match"}


def test_the_task_metrics_decide_multiple_choice_or_generative(tmp_path):
    # Before issue 16 an example with target_scores was always scored as multiple choice only.
    backend = Scripted({"cat": " cat!", "dog": " a cow"}, {"cat": -0.1, "dog": -3.0})
    records, summary = run_scripted(tmp_path, {"g": GEN_WITH_SCORES, "both": BOTH}, backend)
    kinds = sorted((r["task"].split("/")[-1], r["index"], r["kind"]) for r in records)
    assert kinds == [("both", 0, "generative"), ("both", 0, "multiple_choice"), ("both", 1, "generative"),
                     ("both", 1, "multiple_choice"), ("g", 0, "generative"), ("g", 1, "generative")]
    assert len({r["key"] for r in records}) == 6
    g, both = summary["metrics"]["scripted|g"], summary["metrics"]["scripted|both"]
    assert g == {"n": 2.0, "exact_str_match": 0.5}  # "cat" right, "a" (first regex match of " a cow") wrong
    # both: grade 0.5 ("cat" is the argmax of both examples) with its calibration metrics, and generation
    assert both["multiple_choice_grade"] == 0.5 and both["exact_str_match"] == 0.5 and both["n"] == 2.0
    assert "expected_calibration_error" in both and "bleu" not in both  # only what the task lists (and grade's)
    # the headline is the task's preferred_score
    assert {h["label"] for h in summary["headline"]} == {"g (exact_str_match)", "both (exact_str_match)"}


RICH = {"name": "rich", "description": "toy", "keywords": [], "output_regex": "[^\\n]+",
        "metrics": ["case_insensitive_str_match", "numeric_match_with_0_1_relative_error", "sequence_f1",
                    "log_likelihood", "bleurt"],
        "preferred_score": "case_insensitive_str_match",
        "examples": [{"input": "How many legs?", "target": "4"}, {"input": "Name it.", "target": "Tiger Cat"}]}


def test_every_generative_metric_the_task_lists_and_its_preferred_score(tmp_path):
    # Before issue 16 only exact_str_match, BLEU and ROUGE were computed, whatever the task listed.
    backend = Scripted({"legs": " 4.2", "Name": "tiger cat "}, {"4": -1.0, "Tiger Cat": -3.0})
    records, summary = run_scripted(tmp_path, {"rich": RICH}, backend)
    m = summary["metrics"]["scripted|rich"]
    # responses " 4.2" and "tiger cat ": case-insensitive: "4.2" != "4", "tiger cat" == "tiger cat" -> 1/2;
    # numeric: |4.2 - 4| / 4 = 5% -> 1, "tiger cat" not a number -> 1/2; sequence_f1: ["", "4.2"] cut to 1 tag
    # vs ["4"] -> 0, ["tiger", "cat", ""] cut to 2 vs ["Tiger", "Cat"] -> 0 -> 0; log_likelihood of the
    # targets (scored as continuations): (-1 + -3) / 2, per word (-1/1 + -3/2) / 2, per char (-1/1 - 3/9) / 2
    assert m == pytest.approx({"n": 2.0, "case_insensitive_str_match": 0.5,
                               "numeric_match_with_0_1_relative_error": 0.5, "sequence_f1": 0.0,
                               "log_likelihood": -2.0, "log_likelihood_per_word": -1.25,
                               "log_likelihood_per_char": (-1 - 1 / 3) / 2})
    assert summary["headline"][0]["label"] == "rich (case_insensitive_str_match)"
    assert summary["headline"][0]["value"] == 0.5
    assert any("bleurt not computed" in n for n in summary["notes"])
    ci = {e["metric"]: e["ci"] for e in summary["results"]}
    assert ci["case_insensitive_str_match"] is not None and ci["sequence_f1"] is None


def _bigbench_argmax(row):
    """BIG-bench's task_metrics.argmax, written out: the hash of the float64 row picks among the tied maxima."""
    array = np.asarray(row, dtype=np.float64)
    tied = np.arange(len(array))[array == np.max(array)]
    return int(tied[int(hashlib.sha256(array.tobytes()).hexdigest(), 16) % len(tied)])


def test_the_recorded_prediction_is_the_graded_choice_on_ties(tmp_path):
    # Two choices tie; renormalised they are (-ln 2, -ln 2), whose hash picks the second. Before issue 16 the
    # record's prediction was numpy's first maximum ("yes") while `correct` graded the hashed pick ("no").
    task = {"name": "tie", "description": "toy", "keywords": [], "metrics": ["multiple_choice_grade"],
            "examples": [{"input": "Well?", "target_scores": {"yes": 1, "no": 0}}]}
    records, _ = run_scripted(tmp_path, {"tie": task}, Scripted(logprobs={"yes": -1.5, "no": -1.5}))
    row = records[0]["log_probs"]
    assert row[0] == row[1] == pytest.approx(-math.log(2)) and _bigbench_argmax(row) == 1
    assert records[0]["prediction"] == "no" and records[0]["correct"] == 0.0


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


def test_choices_are_tokenised_as_bigbench_does_unless_asked_and_the_choice_is_recorded(tmp_path):
    # Before issue 16 every choice was tokenised jointly with its context (the model layer had no other way).
    replies, logprobs = {"cat": "cat", "dog": "dog"}, {"cat": -0.1, "dog": -3.0}
    backend = Scripted(replies, logprobs)
    _, summary = run_scripted(tmp_path / "a", {"both": BOTH}, backend)
    assert backend.scored and {r.tokenization for r in backend.scored} == {"separate"}
    assert summary["config"]["tokenization"] == "bigbench"
    assert any("each choice alone" in n for n in summary["notes"])
    joint = Scripted(replies, logprobs)
    _, summary = run_scripted(tmp_path / "b", {"both": BOTH}, joint, tokenization="joint")
    assert {r.tokenization for r in joint.scored} == {"joint"}
    assert any("jointly" in n for n in summary["notes"])
    assert BigBenchConfig.from_dict({"tasks": ["x"]}).tokenization == "joint"  # an older run resumes as it began
    assert BigBenchConfig.from_dict(BigBenchConfig(tasks=["x"]).as_dict()).tokenization == "bigbench"
    with pytest.raises(ValueError, match="tokenization"):
        BigBenchConfig(tasks=["x"], tokenization="separate")
