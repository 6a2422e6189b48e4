"""``alignlab.behaviors.run`` and ``alignlab.behaviors.generate`` from Python: the same run (and the same generated
file) as the CLI, results.json against the samples, resume (also of a run written before the move), refusals."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from alignlab import behaviors
from alignlab.behaviors.cli import behaviors_app
from alignlab.runs.run import Run

from .test_generate_behaviors import DESCRIPTION, persona_model


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.delenv("ALIGNLAB_DATA", raising=False)
    monkeypatch.setenv("ALIGNLAB_CACHE", str(tmp_path / "cache"))


def cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(behaviors_app, name="behaviors")
    return app


def samples(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


def test_python_run_equals_the_cli_run(tmp_path, tiny_dir, shared_data):
    config = behaviors.BehaviorsConfig(datasets=["persona/no-shut-down", "winogenerated"], max_items=6,
                                       data=str(shared_data))
    run, summary = behaviors.run(config, model=f"hf:{tiny_dir}", out=tmp_path / "api", cache=False)
    assert run.manifest["study"] == "behaviors" and run.manifest["status"] == "complete"
    assert run.manifest["config"]["study"] == config.as_dict()

    result = CliRunner().invoke(cli(), ["behaviors", "eval", "persona/no-shut-down", "winogenerated", "--limit", "6",
                                        "--data", str(shared_data), "--model", f"hf:{tiny_dir}", "--out",
                                        str(tmp_path / "cli"), "--no-cache"])
    assert result.exit_code == 0, result.output
    (cli_run,) = (tmp_path / "cli").iterdir()
    api_results = json.loads((run.path / "results.json").read_text())
    cli_results = json.loads((cli_run / "results.json").read_text())
    assert api_results["config"]["study"] == cli_results["config"]["study"]
    assert api_results["results"] == cli_results["results"]

    # the match rate in results.json is the share of matching answers among the samples, with its CI and n
    persona = [s for s in samples(run.path) if s["dataset"] == "persona/no-shut-down"]
    assert len(persona) == 6
    (entry,) = [r for r in api_results["results"] if r["task"] == "persona/no-shut-down" and r["metric"] ==
                "match_rate"]
    assert entry["value"] == pytest.approx(sum(s["matches_behavior"] for s in persona) / 6)
    metrics = summary["metrics"][f"hf:{tiny_dir}|persona/no-shut-down"]
    assert entry["n"] == 6 and entry["ci"] == pytest.approx([metrics["ci_low"], metrics["ci_high"]])
    assert entry["model"] == f"hf:{tiny_dir}" and entry["prompt_format"] == "raw_hh"
    wino = {r["metric"]: r for r in api_results["results"] if r["task"] == "winogenerated"}
    assert set(wino) == {"pearson_r", "mean_female_minus_male"} and wino["mean_female_minus_male"]["n"] == 6
    by_metric = {r["metric"] for r in api_results["results"] if r["task"] == "persona/no-shut-down"}
    assert by_metric == {"match_rate", "mean_p_matching", "ceiling", "floor", "most_chosen_share"}

    before = (run.path / "samples.jsonl").read_text()
    again, resumed = behaviors.run(resume=run.path, cache=False)
    assert again.path == run.path and resumed["metrics"] == summary["metrics"]
    assert (run.path / "samples.jsonl").read_text() == before


def test_a_run_written_before_the_move_resumes(tmp_path, tiny_dir, shared_data):
    """The old CLI saved ``vars(config)`` as ``config.study``; a key this version lacks is ignored."""
    old = {"datasets": ["persona/no-shut-down"], "prompt_format": "raw_hh", "max_items": 3, "seed": 0,
           "data": str(shared_data), "chunk_size": 64, "retired_option": True}
    run = Run.create("behaviors", {"study": old, "models": [f"hf:{tiny_dir}"], "dtype": "float32"},
                     root=tmp_path, seed=0)
    again, summary = behaviors.run(resume=run.path, cache=False, report=False)
    assert again.path == run.path and again.manifest["status"] == "complete"
    assert summary["metrics"][f"hf:{tiny_dir}|persona/no-shut-down"]["n"] == 3
    assert json.loads((run.path / "results.json").read_text())["results"]


def test_python_generate_equals_the_cli(tmp_path, monkeypatch):
    model, closed = persona_model(), []
    model.close = lambda: closed.append(model)  # type: ignore[method-assign]
    config = behaviors.GenerateConfig(DESCRIPTION, n=8, samples_per_label=8)
    result = behaviors.generate(config, generator=model, out=tmp_path / "api.jsonl")
    assert len(result.rows) == 6 and not closed  # a model handed in is the caller's to close

    models = iter([persona_model()])
    monkeypatch.setattr("alignlab.behaviors.cli.load_or_exit", lambda spec, dtype, cache: next(models))
    out = tmp_path / "cli.jsonl"
    ran = CliRunner().invoke(cli(), ["behaviors", "generate", DESCRIPTION, "--generator", "scripted", "-n", "8",
                                     "--samples-per-label", "8", "-o", str(out), "--no-cache"])
    assert ran.exit_code == 0, ran.output
    assert out.read_text() == (tmp_path / "api.jsonl").read_text()
    meta = [json.loads(p.read_text()) for p in (tmp_path / "api.meta.json", tmp_path / "cli.meta.json")]
    assert meta[0]["config"] == meta[1]["config"] == config.as_dict()
    assert meta[0]["stats"] == meta[1]["stats"]


def test_python_generate_loads_specs_once_and_closes_them(tmp_path):
    loaded, closed = [], []

    def load(spec, dtype, cache):
        model = persona_model()
        model.close = lambda: closed.append(model)  # type: ignore[method-assign]
        loaded.append((spec, dtype, cache))
        return model

    result = behaviors.generate(behaviors.GenerateConfig(DESCRIPTION, n=8, samples_per_label=8), "scripted",
                                "scripted", load=load, cache=False)
    assert len(result.rows) == 6 and loaded == [("scripted", "float32", False)] and len(closed) == 1


def test_bad_values_are_refused_with_the_flag_named(tmp_path):
    with pytest.raises(ValueError, match=r"max_items \(--limit\) must be at least 1, got 0"):
        behaviors.BehaviorsConfig(datasets=["persona/no-shut-down"], max_items=0)
    with pytest.raises(ValueError, match=r"prompt_format \(--format\) must be one of raw_hh, chat"):
        behaviors.BehaviorsConfig(datasets=["persona/no-shut-down"], prompt_format="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name at least one dataset"):
        behaviors.BehaviorsConfig()
    with pytest.raises(ValueError, match=r"n must be at least 2, got 1 \(--n\); top_p must be at most 1, got 2"):
        behaviors.GenerateConfig(DESCRIPTION, n=1, top_p=2)
    with pytest.raises(ValueError, match=r"few_shot must be at least 1, got 0 \(--few-shot\)"):
        behaviors.GenerateConfig(DESCRIPTION, few_shot=0)
    with pytest.raises(TypeError, match="BehaviorsConfig"):
        behaviors.run(object(), model="embedded", out=tmp_path)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())
    assert behaviors.BehaviorsConfig("persona/no-shut-down").datasets == ["persona/no-shut-down"]
    assert behaviors.GenerateConfig(DESCRIPTION, kind="ai_risk", seed_questions="s.jsonl").max_new_tokens == 160
