"""Run directories: manifest, append-only samples, torn-line repair, and a CLI run resumed after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from alignlab.runs.run import Run


def test_run_writes_manifest_and_appends_samples(tmp_path):
    run = Run.create("demo", {"x": 1}, root=tmp_path, seed=3, command="alignlab demo")
    run.append([{"key": "a", "v": 1}, {"key": "b", "v": 2}])
    run.append([{"key": "c", "v": 3}])
    manifest = json.loads((run.path / "manifest.json").read_text())
    assert manifest["config"] == {"x": 1} and manifest["seed"] == 3 and manifest["status"] == "running"
    assert "torch" in manifest["versions"] and "python" in manifest["versions"]
    assert run.done_keys() == {"a", "b", "c"}
    run.finish({"title": "t"})
    assert json.loads((run.path / "manifest.json").read_text())["status"] == "complete"


def test_resume_drops_a_torn_last_line_and_keeps_the_rest(tmp_path):
    run = Run.create("demo", {}, root=tmp_path)
    run.append([{"key": "a"}, {"key": "b"}])
    with run.samples_path.open("a") as f:
        f.write('{"key": "c", "text": "half wri')  # a crash mid-write
    again = Run.resume(run.path)
    assert [s["key"] for s in again.samples()] == ["a", "b"]
    again.append([{"key": "c"}])
    assert [s["key"] for s in again.samples()] == ["a", "b", "c"]
    assert len(json.loads((run.path / "manifest.json").read_text())["resumed"]) == 1


def test_resume_names_a_bad_line_in_the_middle(tmp_path):
    run = Run.create("demo", {}, root=tmp_path)
    run.samples_path.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(ValueError, match=r"samples.jsonl, line 2"):
        Run.resume(run.path)


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        Run.resume(tmp_path)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "alignlab.cli", *args]


def test_cli_bigbench_run_killed_with_sigkill_resumes_without_recomputing(tmp_path, tiny_dir, shared_data):
    env = {**os.environ, "ALIGNLAB_DATA": str(shared_data), "ALIGNLAB_CACHE": str(tmp_path / "cache")}
    args = ["bigbench", "hhh_alignment", "--model", f"hf:{tiny_dir}", "--out", str(tmp_path / "runs"),
            "--chunk-size", "8", "--limit", "80"]
    proc = subprocess.Popen(_cli(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    samples = None
    deadline = time.time() + 120
    while time.time() < deadline:
        found = list((tmp_path / "runs").glob("*/samples.jsonl"))
        if found and found[0].read_text().count("\n") >= 8:
            samples = found[0]
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert samples is not None, proc.stdout.read().decode()
    run_dir = samples.parent
    before = [json.loads(line) for line in samples.read_text().splitlines() if line.strip()]
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "running"

    done = subprocess.run(_cli("bigbench", "--resume", str(run_dir)), env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    after = [json.loads(line) for line in samples.read_text().splitlines() if line.strip()]
    keys = [s["key"] for s in after]
    assert len(keys) == len(set(keys)) == 80  # --limit 80 over 4 subtasks: 20 each, every one once
    assert after[:len(before)] == before  # finished samples kept as they were, not recomputed
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {t for t in summary["metrics"]} >= {f"hf:{tiny_dir}|hhh_alignment/harmless"}
    assert (run_dir / "report.html").exists() and (run_dir / "summary.md").exists()


def test_evaluate_in_chunks_skips_items_whose_every_key_is_saved(tmp_path) -> None:
    from types import SimpleNamespace

    run = Run.create("test", {}, root=tmp_path)
    model = SimpleNamespace(spec="m", fingerprint_id="f", fingerprint={}, describe=lambda: {})
    run.append([{"key": "a|x"}, {"key": "a|y"}, {"key": "b|x"}])  # b lacks its second record
    calls: list[list[str]] = []
    seen: list[tuple[str, int, int]] = []

    def evaluate(chunk: list[str]) -> list[dict]:
        calls.append(chunk)
        return [{"key": f"{item}|{k}"} for item in chunk for k in "xy"]

    run.evaluate_in_chunks(model, ["a", "b", "c"], lambda item: (f"{item}|x", f"{item}|y"), evaluate,
                           chunk_size=1, progress=lambda *p: seen.append(p), label="study m")
    assert calls == [["b"], ["c"]]
    assert seen == [("study m", 1, 3), ("study m", 2, 3), ("study m", 3, 3)]
    run.evaluate_in_chunks(model, ["a", "b", "c"], lambda item: f"{item}|x", evaluate)  # one key per item
    assert calls == [["b"], ["c"]]  # everything is done: nothing evaluated again
