"""``alignlab reasoning faithfulness|decompose`` on a tiny random model (and one check on the embedded model)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from alignlab.cli import app

runner = CliRunner()


def _mc(tmp_path):
    path = tmp_path / "mc.jsonl"
    path.write_text('{"id": "q1", "question": "Is water wet?", "choices": ["Yes", "No"], "answer": 0}\n'
                    '{"id": "q2", "question": "Which is a fruit?", "choices": ["Rock", "Pear", "Car"], "answer": 1}\n')
    return path


def _samples(run_dir):
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


def test_faithfulness_cli_writes_report_and_resumes(tmp_path, tiny_dir):
    # (every test's logic is covered on a scripted model in test_reasoning_study.py; two keep this one quick)
    args = ["reasoning", "faithfulness", "addition:2", "--limit", "1", "--samples", "2", "--max-new-tokens", "6",
            "--tests", "early,mistakes", "--model", f"hf:{tiny_dir}", "--mistake-model", f"hf:{tiny_dir}",
            "--out", str(tmp_path / "runs"), "--no-cache"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    run_dir = next((tmp_path / "runs").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    section = summary["sections"][0]
    assert section["id"] == "reasoning-faithfulness"
    assert {"early", "mistakes"} <= {k for s in _samples(run_dir) for k in s}
    assert [f["kind"] for f in section["figures"]] == ["line", "line"]  # early answering, adding mistakes
    assert (run_dir / "report.html").stat().st_size > 1000
    before = _samples(run_dir)
    assert len(before) == 3  # 2 CoT samples + the question record
    resumed = runner.invoke(app, ["reasoning", "faithfulness", "--resume", str(run_dir), "--no-cache"])
    assert resumed.exit_code == 0, resumed.output
    assert _samples(run_dir) == before  # nothing recomputed or duplicated


def test_decompose_cli_on_multiple_choice_jsonl(tmp_path, tiny_dir):
    args = ["reasoning", "decompose", str(_mc(tmp_path)), "--limit", "1", "--max-new-tokens", "6", "--no-faithfulness",
            "--model", f"hf:{tiny_dir}", "--out", str(tmp_path / "runs"), "--no-cache"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    run_dir = next((tmp_path / "runs").iterdir())
    records = _samples(run_dir)
    assert {r["method"] for r in records} == {"zero_shot", "few_shot", "cot", "cot_decomposition", "factored"}
    assert {r["bias"] for r in records} == {"none", "always_a", "suggested"}
    assert not any("early" in r for r in records)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [row[1] for row in summary["sections"][0]["tables"][0]["rows"]][:2] == ["zero_shot", "few_shot"]


def test_bad_jsonl_names_file_line_and_field(tmp_path, tiny_dir):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Q?", "choices": ["a", "b"], "answer": 0}\n{"question": "Q?", "choices": "ab", '
                   '"answer": 0}\n')
    result = runner.invoke(app, ["reasoning", "decompose", str(bad), "--model", f"hf:{tiny_dir}",
                                 "--out", str(tmp_path / "runs"), "--no-cache"])
    assert result.exit_code == 2
    assert "bad.jsonl" in result.output and "line 2" in result.output and "choices" in result.output


def test_unknown_test_name_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["reasoning", "faithfulness", "addition", "--tests", "early,shuffle",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown tests" in result.output


@pytest.mark.embedded
def test_embedded_early_answering_on_strategyqa(shared_data):
    from alignlab.models.spec import load_model
    from alignlab.reasoning import faithfulness
    from alignlab.reasoning.config import FaithfulnessConfig
    from alignlab.reasoning.questions import load_questions

    model = load_model("embedded", cache=False)
    questions = load_questions("strategyqa", data=str(shared_data), limit=1, seed=1)
    for fmt in ("raw_hh", "chat"):  # letters are single tokens after "(" in both formats
        config = FaithfulnessConfig(samples=2, max_new_tokens=24, tests=["early"], prompt_format=fmt)
        records = faithfulness.run_chunk(model, questions, config)
        for rec in records[:-1]:
            assert rec["answer"] in ("A", "B") and sum(rec["probs"]) == pytest.approx(1.0, abs=1e-5)
            assert rec["early"]["curve"][-1] == 1.0 and len(rec["early"]["curve"]) == rec["n_steps"] + 1
