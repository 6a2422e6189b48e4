"""``alignlab.fairness.run`` from Python: the same run as the CLI, results.json, resume, and refusals."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from alignlab import fairness
from alignlab.fairness.cli import fairness_app


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.delenv("ALIGNLAB_DATA", raising=False)
    monkeypatch.setenv("ALIGNLAB_CACHE", str(tmp_path / "cache"))


def test_python_run_equals_the_cli_run(tmp_path, tiny_dir, shared_data):
    config = fairness.BBQConfig(categories=["Age"], limit=3, interventions=["q", "if"], data=str(shared_data))
    run, summary = fairness.run(config, model=f"hf:{tiny_dir}", out=tmp_path / "api", cache=False)
    assert run.manifest["study"] == "fairness-bbq" and run.manifest["status"] == "complete"
    assert run.manifest["config"]["study"] == config.as_dict()

    import typer

    app = typer.Typer()
    app.add_typer(fairness_app, name="fairness")
    result = CliRunner().invoke(app, ["fairness", "bbq", "--categories", "Age", "--limit", "3", "--interventions",
                                      "q,if", "--data", str(shared_data), "--model", f"hf:{tiny_dir}", "--out",
                                      str(tmp_path / "cli"), "--no-cache"])
    assert result.exit_code == 0, result.output
    (cli_run,) = (tmp_path / "cli").iterdir()
    api_results = json.loads((run.path / "results.json").read_text())
    cli_results = json.loads((cli_run / "results.json").read_text())
    assert api_results["config"]["study"] == cli_results["config"]["study"]
    assert api_results["results"] == cli_results["results"] and api_results["results"]
    api_samples = [json.loads(line) for line in (run.path / "samples.jsonl").read_text().splitlines()]
    assert len(api_samples) == 3 * 2

    again, resumed = fairness.run(resume=run.path, cache=False)
    assert again.path == run.path and resumed["metrics"] == summary["metrics"]
    assert (run.path / "samples.jsonl").read_text().count("\n") == len(api_samples)


def test_the_config_type_picks_the_study_and_bad_values_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"limit \(--limit\) must be at least 1, got 0"):
        fairness.BBQConfig(limit=0)
    with pytest.raises(ValueError, match="prompt_format"):
        fairness.WinogenderConfig(prompt_format="xml")
    with pytest.raises(TypeError, match="BBQConfig"):
        fairness.run(object(), model="embedded", out=tmp_path)  # type: ignore[arg-type]
    assert not (tmp_path / "runs").exists()
    assert fairness.BBQConfig(categories=["all"]).categories[-1] == "Race_x_gender"
