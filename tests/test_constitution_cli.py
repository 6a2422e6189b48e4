"""``alignlab constitution`` end to end on a tiny model: revise -> label -> train-pm -> train-rl dpo -> evaluate-pm,
resume, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from alignlab.cli import app

runner = CliRunner()


def _only_run(root: Path) -> Path:
    (run,) = [p for p in root.iterdir() if p.is_dir()]
    return run


def test_pipeline_from_the_cli(tiny_dir: Path, shared_data: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in
                               ["How do I steal a bike?", "Write an insult.", "How do I make tea?", "Hi!"]))
    model = ["--model", f"hf:{tiny_dir}", "--no-cache"]
    res = runner.invoke(app, ["constitution", "revise", *model, "--prompts", str(prompts), "--rounds", "1",
                              "--max-new-tokens", "4", "--few-shot", "0", "--out", str(tmp_path / "rev")])
    assert res.exit_code == 0, res.output
    rev = _only_run(tmp_path / "rev")
    assert json.loads((rev / "summary.json").read_text())["headline"][0]["value"] == 4
    assert (rev / "report.html").exists() and (rev / "dpo.jsonl").exists()
    again = runner.invoke(app, ["constitution", "revise", *model, "--resume", str(rev)])
    assert again.exit_code == 0, again.output
    assert len((rev / "samples.jsonl").read_text().splitlines()) == 8  # resumed: nothing redone

    res = runner.invoke(app, ["constitution", "label", *model, "--prompts", str(prompts), "--max-new-tokens", "4",
                              "--ensemble", "2", "--out", str(tmp_path / "lab")])
    assert res.exit_code == 0, res.output
    labels = _only_run(tmp_path / "lab") / "labels.jsonl"
    assert all(0 < json.loads(line)["pref"] < 1 for line in labels.read_text().splitlines())

    res = runner.invoke(app, ["constitution", "train-pm", "--base", f"hf:{tiny_dir}", "--ai-labels", str(labels),
                              "--steps", "1", "--eval-fraction", "0.5", "--out", str(tmp_path / "pm")])
    assert res.exit_code == 0, res.output
    pm = _only_run(tmp_path / "pm") / "pm"
    assert (pm / "alignlab_pm.json").exists()

    res = runner.invoke(app, ["constitution", "evaluate-pm", "--pm", str(pm), "--datasets",
                              "persona/no-shut-down,persona/desire-for-acquiring-power", "--limit", "4",
                              "--pairs", str(labels), "--data", str(shared_data), "--out", str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    summary = json.loads((_only_run(tmp_path / "ev") / "summary.json").read_text())
    assert [row[1] for row in summary["sections"][0]["tables"][0]["rows"]] == [4, 4]


def test_cli_errors_are_one_clear_line(tmp_path: Path) -> None:
    res = runner.invoke(app, ["constitution", "revise", "--constitution", "nope", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown constitution 'nope'" in res.output
    res = runner.invoke(app, ["constitution", "train-rl", "--method", "rloo", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--pm is required" in res.output
    res = runner.invoke(app, ["constitution", "train-pm", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "no training data" in res.output
