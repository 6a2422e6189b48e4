"""``alignlab.reasoning.run`` from Python: the same run as the CLI, helper models, results.json, resume, refusals."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from alignlab import reasoning
from alignlab.models.base import Model
from alignlab.reasoning.cli import reasoning_app
from tests.test_reasoning_study import Scripted

runner = CliRunner()
app = typer.Typer()
app.add_typer(reasoning_app, name="reasoning")

MC = ('{"id": "q1", "question": "Is water wet?", "choices": ["Yes", "No"], "answer": 0}\n'
      '{"id": "q2", "question": "Is fire cold?", "choices": ["Yes", "No"], "answer": 1}\n')


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.delenv("ALIGNLAB_DATA", raising=False)
    monkeypatch.setenv("ALIGNLAB_CACHE", str(tmp_path / "cache"))


class Named(Scripted):
    """The scripted model under its own spec (one fingerprint per spec); counts its closes."""

    def __init__(self, spec: str) -> None:
        super().__init__()
        self.spec, self.closed = spec, 0

    def fingerprint(self):
        return {"backend": "scripted", "spec": self.spec}

    def close(self) -> None:
        self.closed += 1


class Loader:
    """``load(spec, dtype, cache)`` for run_study and the helpers: scripted models, each load recorded."""

    def __init__(self) -> None:
        self.loads: list[tuple[str, str, bool]] = []
        self.backends: list[Named] = []

    def __call__(self, spec: str, dtype: str, cache: bool) -> Model:
        self.loads.append((spec, dtype, cache))
        self.backends.append(Named(spec))
        return Model(self.backends[-1])


def _lines(path):
    return path.read_text().splitlines()


def _entry(results, **match):
    (hit,) = [e for e in results if all(e.get(k) == v for k, v in match.items())]
    return hit


def test_python_run_equals_the_cli_run_and_resumes(tmp_path, tiny_dir):
    spec = f"hf:{tiny_dir}"
    config = reasoning.FaithfulnessConfig(source="addition:2", limit=1, samples=2, max_new_tokens=6,
                                          tests=["early", "mistakes"], mistake_model=spec)
    run, summary = reasoning.run(config, model=spec, out=tmp_path / "api", cache=False)
    assert run.manifest["study"] == "reasoning-faithfulness" and run.manifest["status"] == "complete"
    assert run.manifest["config"]["study"] == config.as_dict()

    result = runner.invoke(app, ["reasoning", "faithfulness", "addition:2", "--limit", "1", "--samples", "2",
                                 "--max-new-tokens", "6", "--tests", "early,mistakes", "--mistake-model", spec,
                                 "--model", spec, "--out", str(tmp_path / "cli"), "--no-cache"])
    assert result.exit_code == 0, result.output
    (cli_run,) = (tmp_path / "cli").iterdir()
    api_results = json.loads((run.path / "results.json").read_text())
    cli_results = json.loads((cli_run / "results.json").read_text())
    assert api_results["config"] == cli_results["config"]
    assert api_results["results"] == cli_results["results"] == summary["results"]
    assert _lines(run.path / "samples.jsonl") == _lines(cli_run / "samples.jsonl")
    aoc = _entry(api_results["results"], metric="early_aoc")
    assert aoc["value"] == summary["metrics"][spec]["early_aoc"] and aoc["n"] == 2 and aoc["task"] == "addition:2"

    before = _lines(run.path / "samples.jsonl")
    again, resumed = reasoning.run(resume=run.path, cache=False)
    assert again.path == run.path and resumed["metrics"] == summary["metrics"]
    assert _lines(run.path / "samples.jsonl") == before  # nothing recomputed


def test_helpers_load_once_per_run_with_its_dtype_and_cache_and_are_closed(tmp_path):
    (tmp_path / "mc.jsonl").write_text(MC)
    config = reasoning.FaithfulnessConfig(source=str(tmp_path / "mc.jsonl"), limit=None, samples=1,
                                          tests=["early", "mistakes"], mistake_model="helper", chunk_size=1)
    load = Loader()
    run, summary = reasoning.run(config, model=["a", "b"], out=tmp_path, dtype="bfloat16", cache=False, load=load,
                                 report=False)
    assert load.loads == [("a", "bfloat16", False), ("helper", "bfloat16", False), ("b", "bfloat16", False)]
    assert [b.closed for b in load.backends] == [1, 1, 1]
    helper = load.backends[1]
    assert [kind for kind, _ in helper.calls] == ["generate"] * 4  # the mistakes of 2 models x 2 questions
    assert {m["spec"] for m in run.manifest["models"]} == {"a", "b", "helper"}
    results = json.loads((run.path / "results.json").read_text())["results"]
    assert results == summary["results"]
    # by hand (test_reasoning_study): a mistake at step 1 or 2 flips the answer: curve [0, 0, 1], AOC 0.75 per CoT
    mistakes = _entry(results, model="b", metric="mistakes_aoc")
    assert mistakes["value"] == pytest.approx(0.75) and mistakes["n"] == 2 and mistakes["ci"] is None
    accuracy = _entry(results, model="a", metric="accuracy_cot")
    assert accuracy["value"] == 0.5 and accuracy["n"] == 2 and accuracy["ci"] == [0.0, 1.0]
    assert _entry(results, model="a", metric="early_aoc_by_length")["steps"] == 2
    assert not [e for e in results if e["metric"] in ("paraphrase_accuracy", "filler_accuracy")]  # not run


def test_decompose_from_python_has_per_method_results(tmp_path):
    (tmp_path / "mc.jsonl").write_text(MC)
    config = reasoning.DecomposeConfig(source=str(tmp_path / "mc.jsonl"), limit=None, methods=["cot", "factored"],
                                       biases=["none", "suggested"])
    run, summary = reasoning.run(config, model="s", out=tmp_path, load=Loader(), report=False)
    assert run.manifest["study"] == "reasoning-decompose"
    results = json.loads((run.path / "results.json").read_text())["results"]
    # q1 (answer A) switches to the suggested (B); q2 (answer B) already answers the suggested (A): 1 of 1 switch
    switch = _entry(results, method="cot", metric="suggested_switch")
    assert switch["value"] == 1.0 and switch["n"] == 1
    drop = _entry(results, method="cot", metric="suggested_drop")
    assert drop["value"] == summary["metrics"]["s"]["cot"]["suggested_drop"] == 0.5 and drop["n"] == 2
    assert _entry(results, method="factored", metric="accuracy")["n"] == 2


def test_bad_values_are_refused_with_the_flag_named(tmp_path):
    with pytest.raises(ValueError, match=r"samples \(--samples\) must be at least 1, got 0"):
        reasoning.FaithfulnessConfig(samples=0)
    with pytest.raises(ValueError, match=r"prompt_format \(--format\) must be one of raw_hh, chat"):
        reasoning.DecomposeConfig(prompt_format="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"tests \(--tests\): unknown tests \['shuffle'\]"):
        reasoning.FaithfulnessConfig(tests=["early", "shuffle"])
    with pytest.raises(ValueError, match=r"methods \(--methods\): unknown or empty"):
        reasoning.DecomposeConfig(methods=[])
    with pytest.raises(TypeError, match="FaithfulnessConfig"):
        reasoning.run(object(), out=tmp_path)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())

    limit = runner.invoke(app, ["reasoning", "decompose", "addition", "--limit", "0", "--out", str(tmp_path)])
    assert limit.exit_code == 2 and "limit (--limit) must be at least 1, got 0" in limit.output
    nothing = runner.invoke(app, ["reasoning", "faithfulness", "--out", str(tmp_path)])
    assert nothing.exit_code == 2 and "name a dataset" in nothing.output
    assert not list(tmp_path.iterdir())


def test_resume_refuses_a_run_of_the_other_study(tmp_path):
    (tmp_path / "mc.jsonl").write_text(MC)
    config = reasoning.FaithfulnessConfig(source=str(tmp_path / "mc.jsonl"), samples=1, tests=["early"])
    run, _ = reasoning.run(config, model="s", out=tmp_path / "runs", load=Loader(), report=False)
    result = runner.invoke(app, ["reasoning", "decompose", "--resume", str(run.path)])
    assert result.exit_code == 2 and "reasoning-faithfulness" in result.output
    assert json.loads((run.path / "manifest.json").read_text())["status"] == "complete"
