"""The released red-team attempts of Ganguli et al. 2022 (MIT): found locally, or downloaded once from the
Hugging Face dataset ``Anthropic/hh-rlhf`` (``red-team-attempts/red_team_attempts.jsonl.gz``, one JSON array)."""

from __future__ import annotations

from pathlib import Path

from alignlab.data.resolve import http_download, resolve_dataset

RELATIVE = "hh-rlhf/red-team-attempts"
FILE = "red_team_attempts.jsonl.gz"
URL = f"https://huggingface.co/datasets/Anthropic/hh-rlhf/resolve/main/red-team-attempts/{FILE}"


def red_team_attempts_path(data: str | Path | None = None) -> Path:
    """The attempts file: ``--data`` (the file or a root holding ``hh-rlhf/red-team-attempts``), then
    ``$ALIGNLAB_DATA``, the user cache, then a download into the user cache."""
    found = resolve_dataset(RELATIVE, data=data, download=lambda folder: http_download(URL, folder / FILE) and None)
    if found.is_file():
        return found
    for name in (FILE, "red_team_attempts.jsonl", "red_team_attempts.json"):
        if (found / name).is_file():
            return found / name
    raise FileNotFoundError(f"{found} holds no {FILE} (or an unzipped red_team_attempts.jsonl)")
