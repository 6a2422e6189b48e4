"""Finding a BIG-bench task by name or path, and downloading JSON tasks from google/BIG-bench on GitHub."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alignlab.data.errors import DataError, DownloadError
from alignlab.data.resolve import Downloader, http_get

GITHUB_CONTENTS = "https://api.github.com/repos/google/BIG-bench/contents/bigbench/benchmark_tasks"
GITHUB_RAW = "https://raw.githubusercontent.com/google/BIG-bench"
TASK_NAME = re.compile(r"[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)?")
PROGRAMMATIC_REFUSAL = (
    "is a programmatic BIG-bench task (task.py), which runs arbitrary code; alignlab runs JSON tasks only"
)


def bigbench_download(
    task_name: str, *, ref: str = "main", fetch: Callable[[str], bytes] | None = None
) -> Downloader:
    """A downloader that fetches JSON task ``task_name`` (and its subtasks) from GitHub google/BIG-bench.

    ``fetch(url) -> bytes`` defaults to ``alignlab.data.resolve.http_get``. Programmatic tasks are refused.
    """
    if not TASK_NAME.fullmatch(task_name):
        raise ValueError(f"not a BIG-bench task name: {task_name!r}")

    def download(target: Path) -> None:
        get = fetch or http_get
        entries = _list_folder(get, task_name, ref)
        parent = _fetch_task_json(get, task_name, entries, target, ref)
        if "examples" in parent:
            return
        for name, kind in sorted(entries.items()):
            if kind != "dir":
                continue
            sub_entries = _list_folder(get, f"{task_name}/{name}", ref)
            if "task.json" in sub_entries or "task.py" in sub_entries:
                _fetch_task_json(get, f"{task_name}/{name}", sub_entries, target / name, ref)

    return download


def _list_folder(get: Callable[[str], bytes], folder: str, ref: str) -> dict[str, str]:
    """``{entry name: "file" | "dir"}`` of a folder under bigbench/benchmark_tasks (GitHub contents API)."""
    url = f"{GITHUB_CONTENTS}/{folder}?ref={ref}"
    try:
        listing = json.loads(get(url))
        return {entry["name"]: entry["type"] for entry in listing}
    except (ValueError, TypeError, KeyError) as err:
        raise DownloadError(f"unexpected answer from {url}: not a folder listing ({err})") from err


def _fetch_task_json(
    get: Callable[[str], bytes], folder: str, entries: dict[str, str], target: Path, ref: str
) -> dict[str, Any]:
    if "task.json" not in entries:
        if "task.py" in entries:
            raise DataError(f"BIG-bench task {folder} {PROGRAMMATIC_REFUSAL}")
        raise DownloadError(f"BIG-bench folder {folder} has no task.json")
    url = f"{GITHUB_RAW}/{ref}/bigbench/benchmark_tasks/{folder}/task.json"
    body = get(url)
    try:
        task = json.loads(body)
    except ValueError as err:
        raise DownloadError(f"{url} is not valid JSON ({err})") from err
    if not isinstance(task, dict):
        raise DownloadError(f"{url} is not a BIG-bench task (top level is not an object)")
    target.mkdir(parents=True, exist_ok=True)
    (target / "task.json").write_bytes(body)
    return task
