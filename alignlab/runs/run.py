"""A run is a directory: ``manifest.json``, ``samples.jsonl``, ``summary.json``, ``report.html``.

Samples are appended (and fsynced) as each chunk completes, each with a unique ``key``; ``Run.resume``
reopens the directory and a study skips every key already in ``samples.jsonl``. A line torn by a crash
is dropped on reopen (its requests are still in the request cache, so redoing it costs nothing).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import secrets
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

PACKAGES = ("alignlab", "torch", "transformers", "accelerate", "safetensors", "numpy", "scipy", "sacrebleu",
            "rouge-score", "httpx", "trl", "peft", "datasets", "scikit-learn", "pysbd", "umap-learn", "kronfluence",
            "vllm")
T = TypeVar("T")


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


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class Run:
    """One run directory. Create with :meth:`create`, reopen with :meth:`resume`."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest

    @property
    def samples_path(self) -> Path:
        return self.path / "samples.jsonl"

    @classmethod
    def create(cls, study: str, config: dict[str, Any], *, root: str | os.PathLike[str] = "runs", seed: int = 0,
               command: str | None = None) -> Run:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path(root) / f"{study}-{stamp}-{secrets.token_hex(2)}"
        path.mkdir(parents=True)
        manifest = {"study": study, "created": _now(), "command": command or " ".join(sys.argv), "seed": seed,
                    "config": config, "models": [], "versions": package_versions(), "status": "running"}
        _write_json(path / "manifest.json", manifest)
        return cls(path, manifest)

    @classmethod
    def resume(cls, path: str | os.PathLike[str], *, study: str | None = None) -> Run:
        """Reopen a run directory; with ``study``, refuse (before changing anything) a run of another study."""
        path = Path(path)
        manifest_path = path / "manifest.json"
        manifest = cls.read_manifest(path)
        if study is not None and manifest.get("study") != study:
            raise ValueError(f"{path} is a {manifest.get('study')!r} run, not {study!r}: resume it with its own "
                             f"command")
        run = cls(path, manifest)
        run._repair_samples()
        manifest.setdefault("resumed", []).append({"at": _now(), "command": " ".join(sys.argv),
                                                   "versions": package_versions()})
        manifest["status"] = "running"
        _write_json(manifest_path, manifest)
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
        if (entry["spec"], entry["fingerprint_id"]) not in known:
            self.manifest["models"].append(entry)
            _write_json(self.path / "manifest.json", self.manifest)

    def append(self, records: list[dict[str, Any]]) -> None:
        """Append sample records (each with a unique ``key``) and fsync."""
        if not records:
            return
        with self.samples_path.open("a", encoding="utf-8") as out:
            out.write("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records))
            out.flush()
            os.fsync(out.fileno())

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
        ``key`` (or each of its keys, for an item that writes several records) is in the samples. ``label`` names
        the progress bar (default: the model spec)."""
        self.record_model(model)
        done = self.done_keys()

        def pending(item: T) -> bool:
            keys = key(item)
            return any(k not in done for k in ((keys,) if isinstance(keys, str) else keys))

        todo = [item for item in items if pending(item)]
        label = label or model.spec
        finished = len(items) - len(todo)
        if progress:
            progress(label, finished, len(items))
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start:start + chunk_size]
            self.append(evaluate(chunk))
            finished += len(chunk)
            if progress:
                progress(label, finished, len(items))

    def finish(self, summary: dict[str, Any]) -> None:
        _write_json(self.path / "summary.json", summary)
        self.manifest["status"] = "complete"
        self.manifest["finished"] = _now()
        _write_json(self.path / "manifest.json", self.manifest)

    def fail(self, error: BaseException | str) -> None:
        """Mark the run ``failed`` with the error (its samples stay; ``--resume`` can still finish it)."""
        self.manifest["status"] = "failed"
        self.manifest["error"] = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self.manifest["failed"] = _now()
        _write_json(self.path / "manifest.json", self.manifest)

    def _repair_samples(self) -> None:
        """Drop a torn last line (a crash mid-write); any other bad line is an error naming it."""
        if not self.samples_path.exists():
            return
        raw = self.samples_path.read_bytes()
        lines = raw.split(b"\n")
        good_end = 0
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                good_end += len(line) + 1
                continue
            try:
                json.loads(line)
            except json.JSONDecodeError as err:
                if number >= len(lines) - 1:  # the last (torn) line
                    break
                raise ValueError(f"{self.samples_path}, line {number}: invalid JSON ({err.msg})") from err
            good_end += len(line) + 1
        good_end = min(good_end, len(raw))
        if good_end < len(raw):
            with self.samples_path.open("r+b") as f:
                f.truncate(good_end)
