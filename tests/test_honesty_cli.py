"""``alignlab honesty calibration|ptrue|pik`` end to end on a tiny model, and one embedded-model check."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from alignlab.cli import app


def test_cli_calibration_ptrue_and_pik_on_a_tiny_model(tmp_path, tiny_dir):
    task = tmp_path / "mc.jsonl"
    task.write_text("\n".join(json.dumps({"question": f"Pick {i}", "choices": [str(i), "x", "y"], "answer": 0})
                              for i in range(6)))
    runner = CliRunner()
    spec = f"hf:{tiny_dir}"
    out = runner.invoke(app, ["honesty", "calibration", str(task), "--model", spec, "--out", str(tmp_path / "r"),
                              "--no-cache", "--variant", "true_false"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["honesty", "ptrue", "--task", "arithmetic:add:1", "--questions", "2", "--samples", "2",
                              "--shots", "1", "--max-new-tokens", "3", "--model", spec, "--out", str(tmp_path / "r"),
                              "--no-cache"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["honesty", "pik", "--train-task", "arithmetic:add:1", "--questions", "4",
                              "--samples", "2", "--shots", "1", "--max-new-tokens", "3", "--model", spec,
                              "--head-out", str(tmp_path / "head"), "--out", str(tmp_path / "r"), "--no-cache"])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "head" / "head.json").is_file()
    runs = sorted((tmp_path / "r").iterdir())
    assert len(runs) == 3 and all((r / "report.html").is_file() for r in runs)
    bad = runner.invoke(app, ["honesty", "calibration", str(task), "--variant", "nope", "--model", spec])
    assert bad.exit_code == 2 and "unknown calibration variants" in bad.output


@pytest.mark.embedded
def test_embedded_p_true_prefers_a_right_sum_over_a_wrong_one():
    """On the embedded model (quantized build), P(True) of a correct 1-digit sum beats that of a wrong one."""
    from alignlab.honesty.prompts import p_true_prompt
    from alignlab.honesty.ptrue import p_true
    from alignlab.models.spec import load_model

    model = load_model("embedded", cache=False)
    right = p_true(model, [p_true_prompt(f"What is {a} + {a}?", str(2 * a)) for a in range(2, 8)])
    wrong = p_true(model, [p_true_prompt(f"What is {a} + {a}?", str(2 * a + 3)) for a in range(2, 8)])
    assert all(0 < p < 1 for p in right + wrong)
    assert sum(right) > sum(wrong)


def test_audit_part_registers_and_reports_calibration_and_p_true(tmp_path, tiny_model, tokenizer, shared_data):
    from alignlab.audit import available_studies
    from alignlab.models.base import Model
    from alignlab.models.hf import HFBackend
    from alignlab.runs.run import Run

    study = available_studies()["honesty"]
    model = Model(HFBackend(tiny_model, tokenizer, spec="hf:tiny"))
    summary = study.run(Run.create("audit", {}, root=tmp_path), [model], 4, str(shared_data), None)
    assert [s["id"] for s in summary["sections"]] == ["honesty_calibration", "honesty_ptrue"]
    labels = [label for label, values in study.headline(summary)]
    assert labels[:2] == ["date_understanding ECE (10 equal-count bins)", "logical_deduction ECE (10 equal-count bins)"]
    assert all(set(values) == {"hf:tiny"} for _, values in study.headline(summary)[:2])
