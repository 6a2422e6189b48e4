"""Run directories: manifest, append-only samples, torn-tail repair, the directory lock (with real second
processes). A CLI run SIGKILLed at each point and resumed: tests/test_kill_resume.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from alignlab.runs.lock import RunLockedError
from alignlab.runs.run import Run

HOLD = """import sys, time
from alignlab.runs.run import Run
run = Run.resume(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""
TRY = """import sys
from alignlab.runs.lock import RunLockedError
from alignlab.runs.run import Run
try:
    Run.resume(sys.argv[1]).close()
except RunLockedError as err:
    print(err)
    sys.exit(3)
"""


def _try_elsewhere(path: Path) -> subprocess.CompletedProcess[str]:
    """Another process resumes ``path`` (and closes it at once)."""
    return subprocess.run([sys.executable, "-c", TRY, str(path)], capture_output=True, text=True, timeout=60)


@contextmanager
def _held_elsewhere(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holds ``path`` open until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held", proc.communicate()[1]
        yield proc
    finally:
        proc.kill()
        proc.wait()


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


def test_resume_moves_a_torn_last_line_aside_and_keeps_the_rest(tmp_path):
    run = Run.create("demo", {}, root=tmp_path)
    run.append([{"key": "a"}, {"key": "b"}])
    torn = '{"key": "c", "text": "half wri\u00e9'.encode()[:-1]  # a crash mid-write, mid-character too
    with run.samples_path.open("ab") as f:
        f.write(torn)
    run.close()
    again = Run.resume(run.path)
    (side,) = run.path.glob("samples.jsonl.torn-*")
    assert side.read_bytes() == torn
    assert run.samples_path.read_bytes() == b'{"key": "a"}\n{"key": "b"}\n'
    again.append([{"key": "c"}])
    assert [s["key"] for s in again.samples()] == ["a", "b", "c"]
    resumed = json.loads((run.path / "manifest.json").read_text())["resumed"]
    assert len(resumed) == 1 and resumed[0]["torn_tail"] == side.name


@pytest.mark.parametrize("tail", [b'{"key": "c"}', b'{"key": "c", "v": nul\n', b"\0\0\0\0"],
                         ids=["whole-record-without-newline", "bad-last-line", "zeros"])
def test_a_last_line_is_saved_only_with_its_newline_and_as_json(tmp_path, tail):
    run = Run.create("demo", {}, root=tmp_path)
    run.append([{"key": "a"}])
    with run.samples_path.open("ab") as f:
        f.write(tail)
    run.close()
    again = Run.resume(run.path)
    (side,) = run.path.glob("samples.jsonl.torn-*")
    assert side.read_bytes() == tail
    again.append([{"key": "b"}])  # not merged into the torn line
    assert [s["key"] for s in again.samples()] == ["a", "b"]


def test_a_torn_chunk_is_finished_like_an_uninterrupted_run(tmp_path):
    """Items of two records each, chunks of two items: a crash mid-append leaves one whole record of an item and a
    torn one. The resumed run adds exactly the missing records, in order, and sends the items it never computed in
    the uninterrupted run's batches (results can depend on the batch); what was computed comes from the cache."""
    from types import SimpleNamespace

    model = SimpleNamespace(spec="m", fingerprint_id="f", fingerprint={}, describe=lambda: {})
    items = ["a", "b", "c", "d", "e", "f"]
    batches: list[list[str]] = []
    cache: dict[str, dict] = {}

    def evaluate(chunk: list[str]) -> list[dict]:
        batches.append(chunk)
        return [cache.get(f"{item}|{half}", {"key": f"{item}|{half}", "batch": "".join(chunk)})
                for item in chunk for half in "xy"]

    def keys(item: str) -> tuple[str, str]:
        return f"{item}|x", f"{item}|y"

    reference = Run.create("demo", {}, root=tmp_path / "reference")
    reference.evaluate_in_chunks(model, items, keys, evaluate, chunk_size=2)
    expected = reference.samples()
    assert batches == [["a", "b"], ["c", "d"], ["e", "f"]]
    run = Run.create("demo", {}, root=tmp_path / "run")
    cache.update({r["key"]: r for r in expected[:8]})  # computed before the crash: a to d
    run.append(expected[:7])  # saved: a, b, c, d|x
    with run.samples_path.open("a") as f:
        f.write(json.dumps(expected[7])[:9])  # d|y torn
    run.close()
    batches.clear()
    again = Run.resume(run.path)
    again.evaluate_in_chunks(model, items, keys, evaluate, chunk_size=2)
    assert batches == [["d"], ["e", "f"]]  # not [d, e], [f]
    assert again.samples() == expected  # d|x not written twice
    (side,) = run.path.glob("samples.jsonl.torn-*")
    assert side.read_text() == '{"key": "'


def test_resume_names_a_bad_line_in_the_middle(tmp_path):
    run = Run.create("demo", {}, root=tmp_path)
    run.samples_path.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    run.close()
    with pytest.raises(ValueError, match=r"samples.jsonl, line 2"):
        Run.resume(run.path)
    elsewhere = _try_elsewhere(run.path)  # the failed resume let go of the lock
    assert elsewhere.returncode == 1 and "line 2: invalid JSON" in elsewhere.stderr
    assert run.samples_path.read_text().count("\n") == 3 and not list(run.path.glob("samples.jsonl.torn-*"))


def test_a_run_open_in_one_process_is_refused_to_another_until_it_finishes(tmp_path):
    run = Run.create("demo", {}, root=tmp_path)
    manifest = (run.path / "manifest.json").read_bytes()
    refused = _try_elsewhere(run.path)
    assert refused.returncode == 3, refused.stderr
    assert f"{run.path} is open in another alignlab process (pid {os.getpid()} on" in refused.stdout
    assert (run.path / "manifest.json").read_bytes() == manifest and not run.samples_path.exists()
    run.finish({"title": "t"})
    assert _try_elsewhere(run.path).returncode == 0


def test_a_killed_holder_leaves_no_lock(tmp_path):
    Run.create("demo", {}, root=tmp_path).close()
    (path,) = tmp_path.iterdir()
    manifest = (path / "manifest.json").read_bytes()
    with _held_elsewhere(path) as holder:
        with pytest.raises(RunLockedError, match=f"pid {holder.pid} on"):
            Run.resume(path)
        assert (path / "manifest.json").read_bytes() == manifest
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        with Run.resume(path) as run:
            run.append([{"key": "a"}])
    assert json.loads((path / "manifest.json").read_text())["status"] == "running"
    assert _try_elsewhere(path).returncode == 0  # closed: free again


def test_one_process_may_hold_a_run_twice_and_lets_go_after_the_last(tmp_path):
    first = Run.create("demo", {}, root=tmp_path)
    second = Run.resume(first.path)
    first.close()
    first.close()  # idempotent: does not let go of the second's hold
    assert _try_elsewhere(first.path).returncode == 3
    second.fail(RuntimeError("boom"))  # failing closes the run
    assert _try_elsewhere(first.path).returncode == 0
    assert json.loads((first.path / "manifest.json").read_text())["error"] == "RuntimeError: boom"


def test_cli_resume_of_a_run_open_elsewhere_is_one_clear_line(tmp_path):
    from typer.testing import CliRunner

    from alignlab.cli import app

    run = Run.create("bigbench", {"study": {"tasks": ["hhh_alignment"]}, "models": ["hf:x"]}, root=tmp_path)
    run.close()
    manifest = (run.path / "manifest.json").read_bytes()
    with _held_elsewhere(run.path) as holder:
        result = CliRunner().invoke(app, ["bigbench", "--resume", str(run.path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"is open in another alignlab process (pid {holder.pid} on" in " ".join(result.output.split())
    assert (run.path / "manifest.json").read_bytes() == manifest


def test_a_resume_that_writes_nothing_leaves_the_manifest_unchanged(tmp_path):
    """A caller that rejects the resumed run (say, its saved config) before any write leaves no trace."""
    run = Run.create("demo", {}, root=tmp_path)
    run.fail("first attempt")
    manifest = (run.path / "manifest.json").read_bytes()
    Run.resume(run.path).close()
    assert (run.path / "manifest.json").read_bytes() == manifest
    again = Run.resume(run.path)
    assert again.manifest["status"] == "running" and len(again.manifest["resumed"]) == 1
    again.finish({})
    saved = json.loads((run.path / "manifest.json").read_text())
    assert saved["status"] == "complete" and len(saved["resumed"]) == 1


def test_resume_removes_half_written_files_of_dead_processes(tmp_path):
    run = Run.create("demo", {}, root=tmp_path)
    run.close()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale, live = run.path / f".summary.json.{dead.pid}.tmp", run.path / f".report.html.{os.getpid()}.tmp"
    stale.write_text('{"tit')
    live.write_text("<ht")
    Run.resume(run.path).close()
    assert not stale.exists() and live.exists()


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        Run.resume(tmp_path)


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


def test_a_failed_run_finished_by_resume_keeps_no_stale_error(tmp_path):
    first = Run.create("demo", {}, root=tmp_path)
    first.fail(RuntimeError("boom"))
    again = Run.resume(first.path)
    again.finish({"headline": []})
    manifest = json.loads((first.path / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert "error" not in manifest and "failed" not in manifest
