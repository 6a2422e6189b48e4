"""Find a dataset on disk, or download it once into the user cache.

Search order for a dataset named by its path relative to a data root (e.g. ``bigbench/hhh_alignment``):

1. ``data`` (the ``--data PATH`` flag): the dataset itself, or a root that contains ``relative``;
2. ``$ALIGNLAB_DATA/<relative>``;
3. the user cache, ``alignlab.paths.user_cache_dir()/data/<relative>``;
4. ``download(target_dir)`` into the user cache, when a downloader is given (atomic: a temp folder, then a
   rename).

alignlab ships no third-party data: datasets come from the user, a local copy, or their public source.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx

from alignlab.data.errors import DownloadError
from alignlab.paths import user_cache_dir

Downloader = Callable[[Path], None]

TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def resolve_dataset(
    relative: str, *, data: str | Path | None = None, download: Downloader | None = None
) -> Path:
    """Return the path of dataset ``relative``, searching the places above in order."""
    looked: list[str] = []

    if data is not None:
        explicit = _from_explicit_path(relative, Path(data).expanduser())
        if explicit is not None:
            return explicit
        looked.append(f"--data {data} (is a data root without {relative})")

    env_root = os.environ.get("ALIGNLAB_DATA")
    if env_root:
        candidate = Path(env_root).expanduser() / relative
        if candidate.exists():
            return candidate
        looked.append(f"$ALIGNLAB_DATA: {candidate}")
    else:
        looked.append("$ALIGNLAB_DATA: not set")

    cached = user_cache_dir() / "data" / relative
    if cached.exists():
        return cached
    looked.append(f"user cache: {cached}")

    if download is None:
        looked.append("download: none available for this dataset")
        raise FileNotFoundError(_not_found_message(relative, looked))
    try:
        _download_atomically(download, cached)
    except OSError as err:
        looked.append(f"download into {cached}: failed ({err})")
        raise FileNotFoundError(_not_found_message(relative, looked)) from err
    return cached


def locate_dataset(relative: str, *, data: str | Path | None = None) -> tuple[Path | None, str]:
    """Where dataset ``relative`` would resolve from, without downloading: ``(path, place)`` with place one of
    ``--data``, ``$ALIGNLAB_DATA``, ``user cache``, or ``(None, "download on first use")``."""
    if data is not None and Path(data).expanduser().exists():
        explicit = _from_explicit_path(relative, Path(data).expanduser())
        if explicit is not None:
            return explicit, "--data"
    env_root = os.environ.get("ALIGNLAB_DATA")
    if env_root and (Path(env_root).expanduser() / relative).exists():
        return Path(env_root).expanduser() / relative, "$ALIGNLAB_DATA"
    cached = user_cache_dir() / "data" / relative
    if cached.exists():
        return cached, "user cache"
    return None, "download on first use"


def _from_explicit_path(relative: str, data: Path) -> Path | None:
    """The dataset under ``data`` (``data/relative``, or ``data/<tail of relative>`` for a deeper root), else
    ``data`` itself, unless ``data`` is clearly a data root (it holds a parent folder of ``relative``)."""
    if not data.exists():
        raise FileNotFoundError(f"--data {data} does not exist")
    parts = Path(relative).parts
    for start in range(len(parts)):
        candidate = data.joinpath(*parts[start:])
        if candidate.exists():
            return candidate
    if data.is_dir() and any((data / part).is_dir() for part in parts[:-1]):
        return None
    return data


def _download_atomically(download: Downloader, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        download(partial)
        if target.exists():  # another process finished first; keep its copy
            return
        partial.rename(target)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)


def _not_found_message(relative: str, looked: list[str]) -> str:
    places = "\n".join(f"  - {place}" for place in looked)
    return (
        f"dataset '{relative}' not found. Looked in:\n{places}\n"
        f"Fix: pass --data PATH (the dataset, or a folder containing {relative}), "
        f"set ALIGNLAB_DATA to a folder containing {relative}, or run online so it can be downloaded."
    )


def http_get(url: str) -> bytes:
    """GET ``url`` and return the body; raises DownloadError naming the URL on any failure."""
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=True) as client:
            response = client.get(url)
            response.raise_for_status()
            return response.content
    except httpx.HTTPError as err:
        raise DownloadError(f"could not download {url}: {err}") from err


def http_download(url: str, dest: str | Path) -> Path:
    """Stream ``url`` into ``dest`` (a temp file, then a rename); raises DownloadError naming the URL."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    try:
        with (
            httpx.Client(timeout=TIMEOUT, follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            response.raise_for_status()
            with partial.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        partial.replace(dest)
    except httpx.HTTPError as err:
        raise DownloadError(f"could not download {url}: {err}") from err
    finally:
        partial.unlink(missing_ok=True)
    return dest
