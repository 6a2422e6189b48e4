"""``alignlab fairness bbq|winogender|discrimination`` on a tiny random model: runs, reports, resume, bad flags."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from alignlab.fairness.cli import fairness_app


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.delenv("ALIGNLAB_DATA", raising=False)
    monkeypatch.setenv("ALIGNLAB_CACHE", str(tmp_path / "cache"))


def cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(fairness_app, name="fairness")
    return app


def _invoke(args: list[str]):
    return CliRunner().invoke(cli(), ["fairness", *args])


def _run_dir(tmp_path):
    (path,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    return path


def test_bbq_cli_and_resume(tmp_path, tiny_dir, shared_data):
    common = ["--model", f"hf:{tiny_dir}", "--data", str(shared_data), "--out", str(tmp_path / "runs"), "--no-cache"]
    result = _invoke(["bbq", "--categories", "Age", "--limit", "3", "--cot-limit", "1", "--cot-tokens", "4",
                      *common])
    assert result.exit_code == 0, result.output
    run = _run_dir(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    assert {k.split("|")[1] for k in summary["metrics"]} == {"q", "if", "cot"}
    assert (run / "report.html").stat().st_size > 0
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 3 * 2 + 1 and all(s["reasoning"] is not None for s in samples
                                                 if s["intervention"] == "cot")
    again = _invoke(["bbq", "--resume", str(run), "--no-cache"])
    assert again.exit_code == 0, again.output
    assert (run / "samples.jsonl").read_text().count("\n") == len(samples)


def test_winogender_and_discrimination_cli(tmp_path, tiny_dir, shared_data):
    common = ["--model", f"hf:{tiny_dir}", "--data", str(shared_data), "--out", str(tmp_path / "runs"), "--no-cache"]
    result = _invoke(["winogender", "--limit", "4", "--interventions", "q,match-stats", *common])
    assert result.exit_code == 0, result.output
    summary = json.loads((_run_dir(tmp_path) / "summary.json").read_text())
    assert set(summary["metrics"]) == {f"hf:{tiny_dir}|q", f"hf:{tiny_dir}|match-stats"}
    assert summary["metrics"][f"hf:{tiny_dir}|q"]["n_occupations"] == 4
    csv = tmp_path / "students.csv"
    csv.write_text("lsat,gpa\n160,3.4\n150,2.9\n", encoding="utf-8")
    out = tmp_path / "disc"
    result = _invoke(["discrimination", "--source", "csv", "--path", str(csv), "--interventions", "q,if",
                      "--model", f"hf:{tiny_dir}", "--out", str(out), "--no-cache"])
    assert result.exit_code == 0, result.output
    (run,) = list(out.iterdir())
    admissions = json.loads((run / "summary.json").read_text())["metrics"]["admissions"]
    assert admissions[f"hf:{tiny_dir}|q"]["n_students"] == 2 and -1 <= admissions[f"hf:{tiny_dir}|if"][
        "race_gap"] <= 1


def test_bad_flags(tmp_path, tiny_dir):
    common = ["--model", f"hf:{tiny_dir}", "--out", str(tmp_path / "runs"), "--no-cache"]
    result = _invoke(["bbq", "--interventions", "q,match-stats", *common])
    assert result.exit_code == 2 and "interventions" in result.output
    result = _invoke(["discrimination", "--source", "csv", *common])
    assert result.exit_code == 2 and "csv" in result.output
    result = _invoke(["discrimination", "--lsat", "150,high", *common])
    assert result.exit_code == 2 and "comma-separated numbers" in result.output
    result = _invoke(["winogender", "--data", str(tmp_path / "nowhere"), *common])
    assert result.exit_code == 2 and "does not exist" in " ".join(result.output.split())
