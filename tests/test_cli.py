"""The command line: bad input gets one clear error (file, example, field or URL); a tiny-model run end to end."""

from __future__ import annotations

import json
import socket

from typer.testing import CliRunner

from alignlab.cli import app

runner = CliRunner()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unknown_model_spec_lists_the_valid_forms(tmp_path):
    result = runner.invoke(app, ["bigbench", "hhh_alignment", "--model", "gpt-nonsense", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown model spec 'gpt-nonsense'" in result.output and "openai:<model>@<base_url>" in result.output


def test_unreachable_server_names_the_url(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = runner.invoke(app, ["bigbench", "hhh_alignment", "--model", f"openai:m@{url}", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert url in result.output


def test_malformed_task_file_names_file_and_line(tmp_path, tiny_dir):
    task = tmp_path / "broken"
    task.mkdir()
    (task / "task.json").write_text('{"name": "broken",\n "examples": [\n  {"input": "x",}\n]}')
    result = runner.invoke(app, ["bigbench", str(task), "--model", f"hf:{tiny_dir}", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "task.json" in result.output and "line 3" in result.output


def test_bigbench_cli_on_shared_task_writes_every_run_file(tmp_path, tiny_dir, shared_data, monkeypatch):
    monkeypatch.setenv("ALIGNLAB_CACHE", str(tmp_path / "cache"))
    args = ["bigbench", "simple_ethical_questions", "--model", f"hf:{tiny_dir}", "--limit", "6",
            "--data", str(shared_data), "--out", str(tmp_path / "runs")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    run_dir = next((tmp_path / "runs").iterdir())
    names = {p.name for p in run_dir.iterdir()}
    assert {"manifest.json", "samples.jsonl", "summary.json", "report.html", "summary.md"} <= names
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["models"][0]["fingerprint"]["backend"] == "hf" and manifest["status"] == "complete"
    assert len((run_dir / "samples.jsonl").read_text().splitlines()) == 6


def test_models_lists_the_spec_forms():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0 and "Q4_1" in result.output


def test_threads_option_sets_torch_threads_and_rejects_zero() -> None:
    import torch

    try:
        assert CliRunner().invoke(app, ["--threads", "2", "models"]).exit_code == 0
        assert torch.get_num_threads() == 2
        bad = CliRunner().invoke(app, ["--threads", "0", "models"])
        assert bad.exit_code == 2 and "--threads must be at least 1" in bad.output
    finally:
        torch.set_num_threads(1)
