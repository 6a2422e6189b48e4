"""``alignlab redteam generate|attack|score|map`` on a tiny random model: exit codes, files, bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.test_redteam_pipeline import write_attacks_file


@pytest.fixture
def attacks_file(tmp_path):
    return write_attacks_file(tmp_path / "attacks.jsonl")


def test_cli_attack_score_map_generate(tmp_path, tiny_dir, shared_data, attacks_file):
    from alignlab.cli import app

    spec = f"hf:{tiny_dir}"
    runner = CliRunner()
    common = ["--out", str(tmp_path / "runs"), "--no-cache"]
    result = runner.invoke(app, ["redteam", "attack", "--source", f"jsonl:{attacks_file}", "--target",
                                 "plain,prompted", "--model", spec, "--attacker", spec, "--scorer", f"judge:{spec}",
                                 "--limit", "2", "--max-new-tokens", "4", "--calibration-pairs", "2", "--data",
                                 str(shared_data), "--projection", "pca", *common])
    assert result.exit_code == 0, result.output
    run_dir = next((tmp_path / "runs").glob("redteam-*"))
    assert (run_dir / "report.html").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["thresholds"]) == {f"judge:{spec}"}

    bad = runner.invoke(app, ["redteam", "attack", "--target", "nonsense", *common])
    assert bad.exit_code == 2 and "unknown target type 'nonsense'" in bad.output

    transcripts = tmp_path / "attempts.jsonl"
    transcripts.write_text(json.dumps({"transcript": "\n\nHuman: hi\n\nAssistant: hello", "model_type": "plain lm",
                                       "tags": ["none"], "task_description": "say hi"}) + "\n" + "\xff oops\n",
                           encoding="latin-1")
    scored = runner.invoke(app, ["redteam", "score", str(transcripts), "--scorer", f"judge:{spec}",
                                 "--calibration-pairs", "2", "--data", str(shared_data), *common])
    assert scored.exit_code == 0, scored.output
    score_dir = next((tmp_path / "runs").glob("redteam-score-*"))
    score_summary = json.loads((score_dir / "summary.json").read_text())
    assert list(score_summary["metrics"]) == [f"judge:{spec}|plain lm"]
    assert any("not UTF-8" in n for n in score_summary["notes"])

    mapped = runner.invoke(app, ["redteam", "map", str(run_dir), "--labeler", spec, "--projection", "pca",
                                 "--clusters", "1", *common])
    assert mapped.exit_code == 0, mapped.output
    assert sum(json.loads(line)["kind"] == "map" for line in (run_dir / "samples.jsonl").open()) == 2
    remapped = json.loads((run_dir / "summary.json").read_text())["sections"][0]["tables"]
    clusters = next(t for t in remapped if t["title"].startswith("Attack clusters"))
    assert len(clusters["rows"]) == 1 and clusters["rows"][0][1] == 2  # one k-means cluster holding both attacks

    manifest = (run_dir / "manifest.json").read_text()
    generated = runner.invoke(app, ["redteam", "generate", "--method", "few-shot", "--pool", str(run_dir),
                                    "--attacker", spec, "--scorer", f"judge:{spec}", "--limit", "3", *common])
    assert generated.exit_code == 0, generated.output
    assert (run_dir / "manifest.json").read_text() == manifest  # the pool run is only read
    gen_dir = next((tmp_path / "runs").glob("redteam-generate-*"))
    lines = (gen_dir / "attacks.jsonl").read_text().splitlines()
    assert 1 <= len(lines) <= 3 and all(json.loads(x)["source"] == "few-shot" for x in lines)
