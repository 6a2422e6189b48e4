"""A run is a directory: ``manifest.json``, ``samples.jsonl``, ``summary.json``, ``report.html``.

Samples are appended (and fsynced) as each chunk completes, each with a unique ``key``; ``Run.resume``
reopens the directory and a study skips every key already in ``samples.jsonl``. A line is saved once its
newline is written: a torn last line (a crash mid-write) is moved on reopen to ``samples.jsonl.torn-<time>``
and its sample is computed again (its requests are still in the request cache, so that costs nothing).
JSON files are replaced atomically. While a run is open, its process holds an exclusive lock on the directory
(:mod:`alignlab.runs.lock`): a second process is refused; a killed process leaves no lock behind.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import secrets
import signal
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import IO, Any, TypeVar

from alignlab.runs.lock import RunLock

PACKAGES = ("alignlab", "torch", "transformers", "accelerate", "safetensors", "numpy", "scipy", "sacrebleu",
            "rouge-score", "httpx", "trl", "peft", "datasets", "scikit-learn", "pysbd", "umap-learn", "kronfluence",
            "vllm")
T = TypeVar("T")
_KILL_AT = os.environ.get("ALIGNLAB_TEST_KILL_AT")  # a test hook, see kill_point
_KILL_HITS: dict[str, int] = {}


def package_versions() -> dict[str, str]:
    """Versions of Python and of the installed packages that can change results."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def kill_point(name: str, tear: Callable[[], None] | None = None) -> None:
    """Test hook (tests/test_kill_resume.py), inert unless ``ALIGNLAB_TEST_KILL_AT`` is set: with
    ``ALIGNLAB_TEST_KILL_AT=NAME:N`` the process SIGKILLs itself the N-th time (default 1st) it reaches point
    ``NAME`` (``load``, ``chunk``, ``append``, ``summary``), after calling ``tear`` (a half-done write)."""
    if _KILL_AT is None:
        return
    point, _, nth = _KILL_AT.partition(":")
    if point != name:
        return
    _KILL_HITS[name] = _KILL_HITS.get(name, 0) + 1
    if _KILL_HITS[name] == int(nth or 1):
        if tear is not None:
            tear()
        os.kill(os.getpid(), signal.SIGKILL)


def _write_synced(out: IO[bytes], data: bytes) -> None:
    out.write(data)
    out.flush()
    os.fsync(out.fileno())


def _write_json(path: Path, data: Any, *, kill: str = "") -> None:
    """Write JSON atomically (a temporary file, fsynced, then renamed over ``path``)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    text = (json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8")
    with tmp.open("wb") as out:
        if _KILL_AT and kill:
            kill_point(kill, lambda: _write_synced(out, text[:len(text) // 2]))
        _write_synced(out, text)
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Run:
    """One run directory. Create with :meth:`create`, reopen with :meth:`resume`; both lock the directory until
    :meth:`finish`, :meth:`fail` or :meth:`close` (or the process ends). ``Run(path, {})`` reads without locking."""

    def __init__(self, path: Path, manifest: dict[str, Any], lock: RunLock | None = None, *,
                 writer: bool = True) -> None:
        self.path = path
        self.manifest = manifest
        self._lock = lock
        self._unsaved = False  # a resume not yet written to manifest.json (see resume)
        self.writer = writer  # False on ranks > 0 of a command every rank runs: rank 0 alone writes the run

    @classmethod
    def _follow(cls, shared: tuple[str, dict[str, Any]]) -> Run:
        """The run rank 0 opened, as another rank sees it: same path and manifest, writes nothing."""
        return cls(Path(shared[0]), shared[1], writer=False)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Let go of the directory's lock (idempotent); the run stays as it is on disk."""
        if self._lock is not None:
            self._lock.release()

    @property
    def samples_path(self) -> Path:
        return self.path / "samples.jsonl"

    @classmethod
    def create(cls, study: str, config: dict[str, Any], *, root: str | os.PathLike[str] = "runs", seed: int = 0,
               command: str | None = None) -> Run:
        """A new run directory ``<root>/<study>-<time>-<hex>``, locked; under a launch where every rank runs the
        command (``accelerate launch``), rank 0 creates it and the others follow it without writing."""
        from alignlab.models.distributed import on_rank0

        return on_rank0(lambda: cls._create(study, config, root=root, seed=seed, command=command), cls._follow,
                        lambda run: (str(run.path), run.manifest))

    @classmethod
    def _create(cls, study: str, config: dict[str, Any], *, root: str | os.PathLike[str], seed: int,
                command: str | None) -> Run:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path(root) / f"{study}-{stamp}-{secrets.token_hex(2)}"
        path.mkdir(parents=True)
        lock = RunLock(path)
        manifest = {"study": study, "created": _now(), "command": command or " ".join(sys.argv), "seed": seed,
                    "config": config, "models": [], "versions": package_versions(), "status": "running"}
        _write_json(path / "manifest.json", manifest)
        return cls(path, manifest, lock)

    @classmethod
    def resume(cls, path: str | os.PathLike[str], *, study: str | None = None) -> Run:
        """Reopen a run directory; with ``study``, refuse (before changing anything) a run of another study.

        Refuses a directory another process has open (:class:`~alignlab.runs.lock.RunLockedError`). Under the lock,
        a torn tail of ``samples.jsonl`` is moved aside and stale temporary files are removed; the manifest on disk
        is marked ``running`` (with a ``resumed`` entry) only when the run first writes (a model recorded, samples
        appended, finished or failed), so a resume the caller then rejects leaves the manifest unchanged. Under a
        launch where every rank runs the command, rank 0 reopens it and the others follow it without writing.
        """
        from alignlab.models.distributed import on_rank0

        return on_rank0(lambda: cls._resume(path, study=study), cls._follow, lambda run: (str(run.path), run.manifest))

    @classmethod
    def _resume(cls, path: str | os.PathLike[str], *, study: str | None) -> Run:
        path = Path(path)
        manifest = cls.read_manifest(path)
        if study is not None and manifest.get("study") != study:
            raise ValueError(f"{path} is a {manifest.get('study')!r} run, not {study!r}: resume it with its own "
                             f"command")
        run = cls(path, manifest, RunLock(path))
        entry = {"at": _now(), "command": " ".join(sys.argv), "versions": package_versions()}
        try:
            run.manifest = manifest = cls.read_manifest(path)  # as the last holder of the lock left it
            torn = run._repair_samples()
            run._remove_stale_temporaries()
        except BaseException:
            run.close()
            raise
        if torn is not None:
            entry["torn_tail"] = torn.name
        manifest.setdefault("resumed", []).append(entry)
        manifest["status"] = "running"
        run._unsaved = True
        return run

    @staticmethod
    def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
        """A run directory's manifest, read without changing anything; a clear error when it is not a run."""
        manifest_path = Path(path) / "manifest.json"
        if not Path(path).is_dir():
            raise FileNotFoundError(f"{path}: no such run directory")
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{manifest_path} not found: {path} is not a run directory")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{manifest_path}: not valid JSON ({err})") from err
        if not isinstance(manifest, dict) or not isinstance(manifest.get("config"), dict):
            raise ValueError(f"{manifest_path}: not an alignlab run manifest (no 'config' object)")
        return manifest

    def record_model(self, model: Any) -> None:
        """Add a model's spec, fingerprint and description to the manifest (once per fingerprint)."""
        entry = {"spec": model.spec, "fingerprint_id": model.fingerprint_id, "fingerprint": model.fingerprint,
                 "description": model.describe()}
        known = {(m["spec"], m["fingerprint_id"]) for m in self.manifest["models"]}
        if not self.writer:
            return
        if (entry["spec"], entry["fingerprint_id"]) not in known:
            self.manifest["models"].append(entry)
            self._save_manifest()
        elif self._unsaved:
            self._save_manifest()

    def append(self, records: list[dict[str, Any]]) -> None:
        """Append sample records (each with a unique ``key``) and fsync."""
        if not records or not self.writer:
            return
        if self._unsaved:
            self._save_manifest()
        data = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records).encode("utf-8")
        with self.samples_path.open("ab") as out:
            if _KILL_AT:
                kill_point("append", lambda: _write_synced(out, data[:len(data) // 2]))
            _write_synced(out, data)

    def samples(self) -> list[dict[str, Any]]:
        if not self.samples_path.exists():
            return []
        with self.samples_path.open(encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]

    def done_keys(self) -> set[str]:
        return {s["key"] for s in self.samples() if "key" in s}

    def evaluate_in_chunks(self, model: Any, items: Sequence[T], key: Callable[[T], str | tuple[str, ...]],
                           evaluate: Callable[[list[T]], list[dict[str, Any]]], *, chunk_size: int = 32,
                           progress: Callable[[str, int, int], None] | None = None, label: str | None = None) -> None:
        """Evaluate the items not done yet, ``chunk_size`` per call, appending each chunk's records as it finishes
        (so a crash loses at most one chunk); records ``model`` in the manifest first. An item is done when its
        ``key`` (or each of its keys, for an item that writes several records) is in the samples. Chunks are cut
        from ``items`` as an uninterrupted run cuts them, less the done items, so a resumed run sends the model the
        same batches (batched results can differ in the last bits with the batch). ``label`` names the progress bar
        (default: the model spec)."""
        self.record_model(model)
        done = self.done_keys()

        def pending(item: T) -> bool:
            keys = key(item)
            return any(k not in done for k in ((keys,) if isinstance(keys, str) else keys))

        chunks = [[item for item in items[start:start + chunk_size] if pending(item)]
                  for start in range(0, len(items), chunk_size)]
        label = label or model.spec
        finished = len(items) - sum(map(len, chunks))
        if progress:
            progress(label, finished, len(items))
        for chunk in filter(None, chunks):
            records = evaluate(chunk)
            kill_point("chunk")
            # an item redone because one of its records was lost adds only the missing ones: keys stay unique
            self.append([r for r in records if r.get("key") not in done])
            finished += len(chunk)
            if progress:
                progress(label, finished, len(items))

    def finish(self, summary: dict[str, Any], *, close: bool = True) -> None:
        """Write ``summary.json`` and mark the run ``complete``; then, unless ``close=False``, :meth:`close`."""
        if not self.writer:
            return
        _write_json(self.path / "summary.json", summary, kill="summary")
        self.manifest["status"] = "complete"
        self.manifest["finished"] = _now()
        for stale in ("error", "failed"):  # left by an earlier attempt that --resume has now finished
            self.manifest.pop(stale, None)
        self._save_manifest()
        if close:
            self.close()

    def fail(self, error: BaseException | str) -> None:
        """Mark the run ``failed`` with the error (its samples stay; ``--resume`` can still finish it); close it."""
        if not self.writer:
            return
        self.manifest["status"] = "failed"
        self.manifest["error"] = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self.manifest["failed"] = _now()
        self._save_manifest()
        self.close()

    def _save_manifest(self) -> None:
        _write_json(self.path / "manifest.json", self.manifest)
        self._unsaved = False

    def _repair_samples(self) -> Path | None:
        """Move a torn tail (a last line without its newline, or not JSON) to ``samples.jsonl.torn-<time>`` and
        truncate the file after the last whole line; returns that side file. A bad line before it is an error."""
        if not self.samples_path.exists():
            return None
        raw = self.samples_path.read_bytes()
        lines = raw.split(b"\n")  # the last element is what follows the last newline: b"" when nothing is torn
        good_end = 0
        for number, line in enumerate(lines[:-1], start=1):
            try:
                if line.strip():
                    json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                if number == len(lines) - 1 and not lines[-1]:  # the last line: part of the torn tail
                    break
                raise ValueError(f"{self.samples_path}, line {number}: invalid JSON ({err}); the lines before it "
                                 f"are intact, fix or remove it to resume") from err
            good_end += len(line) + 1
        if good_end == len(raw):
            return None
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        side = self.path / f"samples.jsonl.torn-{stamp}"
        number = 1
        while side.exists():
            number += 1
            side = self.path / f"samples.jsonl.torn-{stamp}-{number}"
        with side.open("xb") as out:  # kept first, so the bytes survive a crash during the repair
            _write_synced(out, raw[good_end:])
        with self.samples_path.open("r+b") as samples:
            samples.truncate(good_end)
            os.fsync(samples.fileno())
        return side

    def _remove_stale_temporaries(self) -> None:
        """Remove ``.NAME.PID.tmp`` files (half-written JSON of an atomic write) whose process is gone."""
        for tmp in self.path.glob(".*.tmp"):
            found = re.fullmatch(r"\..+\.(\d+)\.tmp", tmp.name)
            if found and int(found.group(1)) != os.getpid() and not _alive(int(found.group(1))):
                tmp.unlink(missing_ok=True)
