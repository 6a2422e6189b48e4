"""A real CLI run SIGKILLed at each point where a crash can hurt, then finished with ``--resume``: the samples and
the summary are exactly those of an uninterrupted run.

The kills are deterministic: ``ALIGNLAB_TEST_KILL_AT=POINT:N`` (``alignlab.runs.run.kill_point``) makes the process
SIGKILL itself the N-th time it reaches POINT. One run goes through every point in turn (each ``--resume`` is
killed at the next one), so the test costs five CLI processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from alignlab import bigbench


def _cli(args: list[str], env: dict[str, str], kill_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**env, **({"ALIGNLAB_TEST_KILL_AT": kill_at} if kill_at else {})}
    return subprocess.run([sys.executable, "-m", "alignlab.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def _killed(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_sigkill_at_every_point_then_resume_gives_the_uninterrupted_run(tmp_path, tiny_dir, shared_data,
                                                                         monkeypatch):
    spec = f"hf:{tiny_dir}"
    monkeypatch.setenv("ALIGNLAB_DATA", str(shared_data))
    monkeypatch.setenv("ALIGNLAB_CACHE", str(tmp_path / "reference-cache"))
    config = bigbench.BigBenchConfig(tasks=["hhh_alignment"], max_examples=12, chunk_size=3)
    reference, _ = bigbench.run(config, spec, out=tmp_path / "reference", report=False)
    expected_samples = _lines(reference.path / "samples.jsonl")
    expected_summary = json.loads((reference.path / "summary.json").read_text(encoding="utf-8"))
    assert len(expected_samples) == 12  # 4 chunks of 3

    env = {**os.environ, "ALIGNLAB_DATA": str(shared_data), "ALIGNLAB_CACHE": str(tmp_path / "cache")}
    _killed(_cli(["bigbench", "hhh_alignment", "--model", spec, "--limit", "12", "--chunk-size", "3",
                  "--out", str(tmp_path / "runs")], env, kill_at="load"))
    (run_dir,) = (tmp_path / "runs").iterdir()
    samples, resume = run_dir / "samples.jsonl", ["bigbench", "--resume", str(run_dir)]

    def status() -> str:
        return json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))["status"]

    assert status() == "running" and not samples.exists()

    _killed(_cli(resume, env, kill_at="chunk:2"))  # chunk 2 computed, not saved
    assert _lines(samples) == expected_samples[:3]

    _killed(_cli(resume, env, kill_at="append:2"))  # chunk 3 half written: one record and a torn one
    raw = samples.read_bytes()
    cut = raw.rfind(b"\n") + 1
    torn = raw[cut:]
    assert torn and not raw.endswith(b"\n")
    assert [json.loads(line) for line in raw[:cut].splitlines()] == expected_samples[:7]

    _killed(_cli(resume, env, kill_at="summary"))  # the torn line set aside, every sample saved, summary half written
    (side,) = run_dir.glob("samples.jsonl.torn-*")
    assert side.read_bytes() == torn
    assert _lines(samples) == expected_samples
    assert not (run_dir / "summary.json").exists() and list(run_dir.glob(".summary.json.*.tmp"))
    assert status() == "running"

    done = _cli(resume, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _lines(samples) == expected_samples  # no sample lost, none twice, none changed
    assert json.loads((run_dir / "summary.json").read_text(encoding="utf-8")) == expected_summary
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "complete" and len(manifest["resumed"]) == 4
    assert [r.get("torn_tail") for r in manifest["resumed"]] == [None, None, side.name, None]
    assert side.read_bytes() == torn  # the torn bytes are still kept
    assert not list(run_dir.glob(".*.tmp"))  # the half-written summary of the killed process is gone
    assert (run_dir / "report.html").exists()
