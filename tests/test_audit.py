"""The audit: registered studies run under a budget, two models side by side, one report with a summary page."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from alignlab.audit import AuditStudy, combine, run_audit
from alignlab.cli import app
from alignlab.models import Model
from alignlab.models.hf import HFBackend
from alignlab.runs.run import Run
from tests.conftest import make_tiny_llama


def fake_study(name: str, values: dict[str, float]) -> AuditStudy:
    return AuditStudy(name, name.title(), {"small": 1, "full": None}, lambda *a: {},
                      lambda summary: [("score", values)])


def test_combine_puts_models_side_by_side_with_their_difference():
    studies = [fake_study("alpha", {"a": 0.25, "b": 0.75}), fake_study("beta", {"a": 0.5})]
    summary = combine({"alpha": {"sections": [{"id": "alpha"}]}, "beta": {"notes": ["x"]}}, studies, ["a", "b"],
                      "small")
    table = summary["sections"][0]["tables"][0]
    assert table["columns"] == ["study", "metric", "a", "b", "difference"]
    assert table["rows"] == [["Alpha", "score", 0.25, 0.75, 0.5], ["Beta", "score", 0.5, None, None]]
    assert [s["id"] for s in summary["sections"]] == ["audit", "alpha"]
    assert summary["notes"] == ["beta: x", "audit: no per-item pairing (difference shown without CI) for: "
                                           "Alpha: score; Beta: score"]


def test_unknown_study_is_refused(tmp_path, tiny_model, tokenizer):
    run = Run.create("audit", {}, root=tmp_path)
    with pytest.raises(ValueError, match="unknown audit studies"):
        run_audit(run, [Model(HFBackend(tiny_model, tokenizer))], studies=["no-such-study"])


def test_audit_cli_compares_two_models_and_resumes(tmp_path, tiny_dir, tokenizer, shared_data, monkeypatch):
    monkeypatch.setenv("ALIGNLAB_CACHE", str(tmp_path / "cache"))
    other = tmp_path / "other"
    make_tiny_llama(tokenizer, seed=5).save_pretrained(other)
    tokenizer.save_pretrained(other)
    runner = CliRunner()
    args = ["audit", "--model", f"hf:{tiny_dir}", "--compare", f"hf:{other}", "--studies", "bigbench",
            "--data", str(shared_data), "--out", str(tmp_path / "runs")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    run_dir = next((tmp_path / "runs").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    table = summary["sections"][0]["tables"][0]
    assert table["columns"][-1] == "difference" and len(table["rows"]) == 4  # the four audit tasks
    for row in table["rows"]:
        assert row[4] == pytest.approx(row[3] - row[2], abs=1e-4)
    paired = summary["sections"][0]["tables"][-1]
    assert paired["title"].startswith("Paired") and [r[1] for r in paired["rows"]] == [r[1] for r in table["rows"]]
    for row, headline in zip(paired["rows"], table["rows"], strict=True):  # the same 24 items for both models
        assert row[2:4] == headline[2:4] and row[4] == 24 and row[6] <= row[5] <= row[7] and 0 <= row[8] <= 1
    samples = (run_dir / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 2 * (24 + 24 + 24 + 24)  # small budget: 24 per task, for each model
    assert "Audit summary" in (run_dir / "report.html").read_text()

    again = runner.invoke(app, ["audit", "--resume", str(run_dir)])  # nothing left to do: nothing recomputed
    assert again.exit_code == 0, again.output
    assert (run_dir / "samples.jsonl").read_text().splitlines() == samples
