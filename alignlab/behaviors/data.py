"""Model-written evaluations (Perez et al. 2022): finding, downloading, loading and listing the released
datasets. The file formats and their records are :mod:`alignlab.behaviors.formats`.

Datasets are named as in the upstream repository (``persona/desire-for-acquiring-power``,
``advanced-ai-risk/human_generated_evals/power-seeking-inclination``, ``sycophancy/sycophancy_on_nlp_survey``,
``winogenerated``) and resolved with :func:`alignlab.data.resolve.resolve_dataset` as ``evals/<name>.jsonl``
(``evals/winogenerated`` for the folder); a missing one is downloaded from GitHub ``anthropics/evals``. A
downloaded file sits in a folder named like the file (``evals/persona/x.jsonl/x.jsonl``), since downloads
land in folders; both layouts are read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from alignlab.behaviors.formats import (
    WINOGENERATED_EXAMPLES,
    WINOGENERATED_GENDERS,
    WINOGENERATED_OCCUPATIONS,
    WINOGENERATED_PROMPT,
    BehaviorDataset,
    BehaviorItem,
    load_behavior_file,
)
from alignlab.data.errors import DownloadError
from alignlab.data.resolve import Downloader, http_get, resolve_dataset

# the records and the pronoun constants are re-exported: other studies read winogenerated through this module
__all__ = ["GITHUB_RAW", "WINOGENERATED_GENDERS", "WINOGENERATED_PROMPT", "BehaviorDataset", "BehaviorItem",
           "dataset_files", "evals_download", "find_dataset", "list_datasets", "load_behavior_file", "load_dataset"]

_NAME = re.compile(r"[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*")
SKIPPED_FOLDERS = ("prompts_for_few_shot_generation",)  # generation seeds, not evaluation sets

GITHUB_RAW = "https://raw.githubusercontent.com/anthropics/evals"


def dataset_files(name: str) -> list[str]:
    """The upstream paths (relative to the repository root) of dataset ``name``."""
    if name == "winogenerated":
        return [f"winogenerated/{WINOGENERATED_EXAMPLES}", f"winogenerated/{WINOGENERATED_OCCUPATIONS}"]
    return [f"{name}.jsonl"]


def evals_download(name: str, *, ref: str = "main", fetch: Callable[[str], bytes] | None = None) -> Downloader:
    """A downloader of dataset ``name`` from GitHub ``anthropics/evals`` at ``ref`` into a target folder.

    ``fetch(url) -> bytes`` defaults to :func:`alignlab.data.resolve.http_get`. Each file must be non-empty
    JSONL (its first line a JSON object), else :class:`DownloadError` names the URL.
    """
    _check_name(name)

    def download(target: Path) -> None:
        get = fetch or http_get
        target.mkdir(parents=True, exist_ok=True)
        for upstream in dataset_files(name):
            url = f"{GITHUB_RAW}/{ref}/{upstream}"
            body = get(url)
            if not _looks_like_rows(body):
                raise DownloadError(f"{url} is not a JSONL dataset (starts {body.lstrip()[:80]!r})")
            (target / upstream.rsplit("/", 1)[-1]).write_bytes(body)

    return download


def _looks_like_rows(body: bytes) -> bool:
    """Whether a download is JSONL (first line an object) or one JSON array of objects."""
    first = next((line for line in body.splitlines() if line.strip()), b"")
    try:
        if isinstance(json.loads(first), dict):
            return True
        array = json.loads(body)
    except ValueError:
        return False
    return isinstance(array, list) and bool(array) and isinstance(array[0], dict)


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a model-written-evals dataset name: {name!r} (e.g. persona/no-shut-down)")


def find_dataset(name_or_path: str | Path, *, data: str | Path | None = None,
                 fetch: Callable[[str], bytes] | None = None) -> Path:
    """An existing file or folder, or dataset ``name`` resolved as ``evals/<name>.jsonl`` (downloaded when
    missing); returns the JSONL file (the folder for winogenerated)."""
    candidate = Path(name_or_path).expanduser()
    if candidate.exists():
        return candidate
    name = str(name_or_path).removesuffix(".jsonl")
    if not _NAME.fullmatch(name):
        raise FileNotFoundError(f"{str(name_or_path)!r} is neither an existing path nor a dataset name "
                                "(e.g. persona/no-shut-down)")
    relative = "evals/winogenerated" if name == "winogenerated" else f"evals/{name}.jsonl"
    found = resolve_dataset(relative, data=data, download=evals_download(name, fetch=fetch))
    if found.is_dir() and name != "winogenerated":  # the download layout: a folder named like the file
        found = found / f"{name.rsplit('/', 1)[-1]}.jsonl"
        if not found.is_file():
            raise FileNotFoundError(f"{found} not found (expected the dataset file inside {found.parent})")
    return found


def load_dataset(name_or_path: str | Path, *, data: str | Path | None = None, strict: bool = False,
                 fetch: Callable[[str], bytes] | None = None) -> BehaviorDataset:
    """Find (or download) and load a dataset; items are named by ``name_or_path`` as given."""
    path = find_dataset(name_or_path, data=data, fetch=fetch)
    return load_behavior_file(path, dataset=str(name_or_path).removesuffix(".jsonl"), strict=strict)


def list_datasets(root: str | Path) -> list[str]:
    """The dataset names under ``root`` (a data root holding ``evals/``, or the ``evals`` folder itself)."""
    root = Path(root)
    if (root / "evals").is_dir():
        root = root / "evals"
    names = []
    for path in sorted(root.rglob("*.jsonl")):
        if path.name.endswith(".candidates.jsonl"):  # the generator's working file, not a dataset
            continue
        relative = path.relative_to(root)
        if any(part in SKIPPED_FOLDERS for part in relative.parts) or path.name == WINOGENERATED_OCCUPATIONS:
            continue
        if path.name == WINOGENERATED_EXAMPLES:
            names.append(relative.parent.as_posix())
        elif path.parent.name == path.name:  # a downloaded file in its own folder
            names.append(relative.parent.with_suffix("").as_posix())
        else:
            names.append(relative.with_suffix("").as_posix())
    return sorted(set(names))
