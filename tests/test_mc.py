"""Multiple-choice benchmarks of your own (``alignlab.mc``): scoring rules by hand, the worked example of
docs/new_benchmark.md on real data, ``alignlab mc FILE.jsonl``, resume."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alignlab import mc
from alignlab.cli import app
from alignlab.mc.runner import record

ROOT = Path(__file__).resolve().parents[1]


class Scripted:
    spec = "scripted"


def test_sum_and_mean_scoring_pick_different_choices():
    question = mc.Question("q", "Q:", (" long right answer", " no"), answer=0)
    logprobs, lengths = (-6.0, -4.0), [6, 2]  # sum prefers choice 1; per token (-1 vs -2) prefers choice 0
    by_sum = record(Example(), Scripted(), question, logprobs, lengths, mc.MCConfig())
    by_mean = record(Example(), Scripted(), question, logprobs, lengths,
                     mc.MCConfig(scoring="mean"))
    assert (by_sum["prediction"], by_sum["correct"]) == (1, False)
    assert (by_mean["prediction"], by_mean["correct"]) == (0, True)
    assert by_sum["probs"] == pytest.approx([1 / (1 + math.e ** 2), math.e ** 2 / (1 + math.e ** 2)])


def test_a_bad_question_or_config_is_refused():
    with pytest.raises(ValueError, match="answer 2 is not an index"):
        mc.Question("q", "Q:", ("a", "b"), answer=2)
    with pytest.raises(ValueError, match=r"scoring \(--scoring\) must be one of sum, mean"):
        mc.MCConfig(scoring="max")


class Example(mc.Benchmark):
    name = "example"

    def questions(self, config):
        return []


def load_example():
    spec = importlib.util.spec_from_file_location("harmless_choice", ROOT / "examples" / "harmless_choice.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_guide_shows_the_example_file_as_it_is():
    guide = (ROOT / "docs" / "new_benchmark.md").read_text(encoding="utf-8")
    (shown,) = re.findall(r"```python\n# examples/harmless_choice.py\n(.*?)```", guide, re.S)
    assert shown == (ROOT / "examples" / "harmless_choice.py").read_text(encoding="utf-8")
    assert shown.count("\n") < 100


def test_worked_example_on_hh_rlhf_with_a_tiny_model(tmp_path, tiny_dir, shared_data, monkeypatch):
    monkeypatch.setenv("ALIGNLAB_CACHE", str(tmp_path / "cache"))
    example = load_example()
    questions = list(example.HarmlessChoice().questions(mc.MCConfig(data=str(shared_data))))
    first = json.loads((shared_data / "hh-rlhf" / "harmless-base" / "test.jsonl").open().readline())
    dialogue, chosen = example.split_last_reply(first["chosen"])
    assert questions[0].prompt == dialogue + "\n\nAssistant:" and questions[0].choices[questions[0].answer] == chosen
    assert {q.answer for q in questions} == {0, 1}  # the preferred reply is not always first

    config = mc.MCConfig(limit=6, scoring="mean", data=str(shared_data))
    run, summary = mc.run(example.HarmlessChoice(), config, model=f"hf:{tiny_dir}", out=tmp_path / "runs")
    samples = run.samples()
    assert len(samples) == 6 and all(s["prediction"] == max(range(2), key=lambda i: s["logprobs"][i] / s["tokens"][i])
                                     for s in samples)
    overall = next(r for r in summary["results"] if r["task"] == "harmless-choice/all")
    assert overall["n"] == 6 and overall["value"] == pytest.approx(sum(s["correct"] for s in samples) / 6)
    assert overall["ci"][0] <= overall["value"] <= overall["ci"][1]
    assert json.loads((run.path / "results.json").read_text())["results"] == summary["results"]

    again, resumed = mc.run(example.HarmlessChoice(), resume=run.path, model=f"hf:{tiny_dir}")
    assert len(again.samples()) == 6 and resumed["results"] == summary["results"]


def test_mc_cli_scores_a_jsonl_file_and_resumes(tmp_path, tiny_dir, monkeypatch):
    monkeypatch.setenv("ALIGNLAB_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "2 + 2 =", "choices": ["3", "4"], "answer": 1}\n'
                    '{"question": "Sky?", "choices": ["blue", "green", "red"], "answer": 0}\n')
    args = ["mc", str(path), "--model", f"hf:{tiny_dir}", "--out", str(tmp_path / "runs")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert [s["choices"] for s in samples] == [[" 3", " 4"], [" blue", " green", " red"]]
    assert CliRunner().invoke(app, ["mc", "--resume", str(run_dir)]).exit_code == 0
    assert (run_dir / "samples.jsonl").read_text().count("\n") == 2
    bad = CliRunner().invoke(app, ["mc", str(path), "--limit", "0"])
    assert bad.exit_code == 2 and "limit (--limit) must be at least 1, got 0" in bad.output
