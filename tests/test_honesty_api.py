"""``alignlab.honesty.run`` from Python: the same run as the CLI, results.json, resume, and refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from alignlab import honesty
from alignlab.honesty.cli import honesty_app
from alignlab.models.base import Model
from alignlab.runs.run import Run


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.delenv("ALIGNLAB_DATA", raising=False)
    monkeypatch.setenv("ALIGNLAB_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def calls(monkeypatch):
    """Every score and generate request any model receives."""
    seen: list[str] = []
    score, generate = Model.score, Model.generate

    def counting_score(self, requests, *args, **kwargs):
        seen.extend("score" for _ in requests)
        return score(self, requests, *args, **kwargs)

    def counting_generate(self, requests, *args, **kwargs):
        seen.extend("generate" for _ in requests)
        return generate(self, requests, *args, **kwargs)

    monkeypatch.setattr(Model, "score", counting_score)
    monkeypatch.setattr(Model, "generate", counting_generate)
    return seen


def cli(*args: str):
    app = typer.Typer()
    app.add_typer(honesty_app, name="honesty")
    return CliRunner().invoke(app, ["honesty", *args])


def samples_of(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


def results_of(run_dir) -> list[dict]:
    return json.loads((run_dir / "results.json").read_text())["results"]


def entry(results: list[dict], **where) -> dict:
    (found,) = [r for r in results if all(r.get(k) == v for k, v in where.items())]
    return found


def test_python_calibration_equals_the_cli_run_and_resumes_without_model_calls(tmp_path, tiny_dir, calls):
    task = tmp_path / "mc.jsonl"
    task.write_text("\n".join(json.dumps({"question": f"Pick {i}", "choices": [str(i), "x", "y"], "answer": 0})
                              for i in range(8)))
    spec = f"hf:{tiny_dir}"
    config = honesty.CalibrationConfig(tasks=[str(task)], variants=["standard", "true_false"], max_items=6)
    run, summary = honesty.run(config, model=spec, out=tmp_path / "api", cache=False)
    assert run.manifest["study"] == "honesty-calibration" and run.manifest["status"] == "complete"
    assert run.manifest["config"]["study"] == config.as_dict()

    result = cli("calibration", str(task), "--variant", "standard", "--variant", "true_false", "--limit", "6",
                 "--model", spec, "--out", str(tmp_path / "cli"), "--no-cache")
    assert result.exit_code == 0, result.output
    (cli_run,) = (tmp_path / "cli").iterdir()
    results = results_of(run.path)
    settings = sum(len(by_t) for by_t in summary["metrics"].values())  # T=1, fixed T, fitted T (if a fit split)
    assert results == results_of(cli_run) and len(results) == 5 * settings and settings >= 2 * 2
    assert json.loads((cli_run / "results.json").read_text())["config"]["study"] == config.as_dict()

    # results.json holds the summary's numbers, and accuracy at T=1 is the share of correct evaluation items
    ece = entry(results, task="mc", metric="ece", variant="standard", setting="T=1")
    assert ece["value"] == pytest.approx(summary["metrics"][f"{spec}|mc|standard"]["T=1"]["ece"])
    standard = [s for s in samples_of(run.path) if s["variant"] == "standard"]
    evals = [s for s in standard if s["split"] == "eval"] or standard
    accuracy = entry(results, task="mc", metric="accuracy", variant="standard", setting="T=1")
    assert len(standard) == 6 and accuracy["n"] == len(evals)
    assert accuracy["value"] == pytest.approx(np.mean([s["correct"] for s in evals]))

    calls.clear()
    again, resumed = honesty.run(resume=run.path, cache=False)
    assert again.path == run.path and calls == []
    assert resumed["metrics"] == summary["metrics"] and results_of(run.path) == results
    assert len(samples_of(run.path)) == 6 + 12  # standard items + two true/false items per question


def test_python_ptrue_results_are_the_graded_samples(tmp_path, tiny_dir, calls):
    config = honesty.PTrueConfig(task="arithmetic:add:1", questions=3, samples=2, answer_shots=1, max_new_tokens=3)
    run, summary = honesty.run(config, model=f"hf:{tiny_dir}", out=tmp_path, cache=False)
    assert run.manifest["study"] == "honesty-ptrue"
    assert calls.count("generate") == 3 and calls.count("score") == 3 * 2 * 2  # each sample, both variants
    records = samples_of(run.path)
    correct = [c for r in records for c in r["sample_correct"]]
    results = results_of(run.path)
    base = entry(results, metric="base_accuracy", variant="zero_shot")
    assert base["task"] == "arithmetic:add:1" and base["n"] == 6 and base["value"] == pytest.approx(np.mean(correct))
    p_true = [p for r in records for p in r["p_true"]["comparison"]]
    selected = entry(results, metric="conditional_accuracy", variant="comparison")
    assert selected["n"] == sum(p > 0.5 for p in p_true)
    brier = entry(results, metric="brier", variant="comparison")
    assert brier["value"] == pytest.approx(np.mean([(p - c) ** 2 for p, c in zip(p_true, correct, strict=True)]))
    assert brier["value"] == pytest.approx(summary["metrics"][f"hf:{tiny_dir}|comparison"]["brier"])


def test_python_pik_trains_reports_and_resumes_from_the_saved_head(tmp_path, tiny_dir, calls):
    config = honesty.PIKConfig(train_task="arithmetic:add:1", eval_tasks=["arithmetic:mul:1"], questions=4,
                               samples=2, answer_shots=1, max_new_tokens=3)
    run, summary = honesty.run(config, model=f"hf:{tiny_dir}", out=tmp_path, cache=False)
    assert run.manifest["study"] == "honesty-pik" and (run.path / "pik-head" / "head.json").is_file()
    results = results_of(run.path)
    held_out = entry(results, task="arithmetic:add:1", metric="mean_label")
    assert held_out["split"] == "in-distribution" and held_out["n"] == 1 and held_out["method"] == "probe"
    ood = entry(results, task="arithmetic:mul:1", metric="brier")
    row = summary["metrics"]["results"]["arithmetic:mul:1 (out-of-distribution)"]
    assert ood["split"] == "out-of-distribution" and ood["n"] == 4 and ood["value"] == pytest.approx(row["brier"])
    labels = [s["label"] for s in samples_of(run.path) if s.get("kind") == "label" and s["task"] == "arithmetic:mul:1"]
    assert entry(results, task="arithmetic:mul:1", metric="mean_label")["value"] == pytest.approx(np.mean(labels))

    calls.clear()
    _, resumed = honesty.run(resume=run.path, cache=False)
    assert calls == [] and resumed["metrics"]["results"] == summary["metrics"]["results"]
    with pytest.raises(ValueError, match="one model per run"):
        honesty.run(config, model=[f"hf:{tiny_dir}", f"hf:{tiny_dir}"], out=tmp_path / "two")


def test_a_run_written_before_the_move_resumes(tmp_path, tiny_dir):
    """A manifest as the old CLI wrote it (``asdict`` of the old config, with ``errors``) plus a retired key."""
    task = tmp_path / "mc.jsonl"
    task.write_text("\n".join(json.dumps({"question": f"Q{i}", "choices": ["a", "b"], "answer": i % 2})
                              for i in range(4)))
    old = {"tasks": [str(task)], "variants": ["standard"], "shots": 0, "fixed_temperature": 2.5,
           "fit_fraction": 0.3, "max_items": None, "seed": 0, "data": None, "chunk_size": 32,
           "errors": ["stale note"], "retired_option": True}
    made = Run.create("honesty-calibration", {"study": old, "models": [f"hf:{tiny_dir}"], "dtype": "float32"},
                      root=tmp_path)
    run, summary = honesty.run(resume=made.path, cache=False)
    assert run.manifest["status"] == "complete" and len(samples_of(run.path)) == 4
    assert summary["notes"] == [] and len(results_of(run.path)) == 3 * 5


def test_bad_values_are_refused_naming_the_flag(tmp_path):
    with pytest.raises(ValueError, match=r"variants \(--variant\): unknown calibration variants \['nope'\]"):
        honesty.CalibrationConfig(tasks=["t"], variants=["nope"])
    with pytest.raises(ValueError, match=r"max_items \(--limit\) must be at least 1, got 0"):
        honesty.CalibrationConfig(tasks=["t"], max_items=0)
    with pytest.raises(ValueError, match=r"fit_fraction \(--fit-fraction\) must lie in \[0, 1\)"):
        honesty.CalibrationConfig(tasks=["t"], fit_fraction=1.0)
    with pytest.raises(ValueError, match=r"fixed_temperature \(--temperature\) must be positive"):
        honesty.CalibrationConfig(tasks=["t"], fixed_temperature=0)
    with pytest.raises(ValueError, match="name at least one task"):
        honesty.CalibrationConfig()
    with pytest.raises(ValueError, match=r"samples \(--samples\) must be at least 1, got 0"):
        honesty.PTrueConfig(samples=0)
    with pytest.raises(ValueError, match=r"answer_shots \(--shots\) must be at least 0"):
        honesty.PTrueConfig(answer_shots=-1)
    with pytest.raises(ValueError, match=r"method \(--method\) must be one of probe, lora; got 'full'"):
        honesty.PIKConfig(method="full")
    with pytest.raises(ValueError, match=r"questions \(--questions\) must be at least 2"):
        honesty.PIKConfig(questions=1)
    with pytest.raises(TypeError, match="CalibrationConfig, PTrueConfig, PIKConfig"):
        honesty.run(object(), out=tmp_path)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []

    missing = cli("calibration", "--out", str(tmp_path))
    assert missing.exit_code == 2 and "name at least one task" in missing.output
    bad = cli("ptrue", "--samples", "0", "--out", str(tmp_path))
    assert bad.exit_code == 2 and "--samples" in bad.output
    assert list(tmp_path.iterdir()) == []
