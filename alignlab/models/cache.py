"""Persistent request cache: SQLite in WAL mode, keyed by model fingerprint + canonical request.

Each ``put_many`` is one transaction, so a process killed with SIGKILL leaves every committed chunk readable
and no half-written row (SQLite's journal rolls back the rest on the next open). Several processes may share
one file: WAL lets readers run beside one writer, and ``busy_timeout`` waits out a writer's lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alignlab.models.types import canonical_json, from_jsonable, to_jsonable

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL DEFAULT (julianday('now'))
)
"""


def request_key(fingerprint_id: str, request: Any) -> str:
    """sha256 of the fingerprint id and the request's canonical JSON."""
    return hashlib.sha256(f"{fingerprint_id}\n{canonical_json(request)}".encode()).hexdigest()


class RequestCache:
    """``get_many`` / ``put_many`` over a SQLite file; results round-trip through ``to_jsonable``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as db:
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=60)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.DatabaseError as err:
                raise RuntimeError(f"request cache {self.path} is unreadable ({err}); delete it to start afresh"
                                   ) from err
            self._local.db = db
        return db

    def get_many(self, fingerprint_id: str, requests: Sequence[Any]) -> list[Any | None]:
        """The cached result of each request, or None."""
        keys = [request_key(fingerprint_id, r) for r in requests]
        found: dict[str, Any] = {}
        db = self._connect()
        for start in range(0, len(keys), 500):
            batch = keys[start:start + 500]
            marks = ",".join("?" * len(batch))
            for key, response in db.execute(f"SELECT key, response FROM responses WHERE key IN ({marks})", batch):
                found[key] = from_jsonable(json.loads(response))
        return [found.get(k) for k in keys]

    def put_many(self, fingerprint_id: str, requests: Sequence[Any], results: Sequence[Any]) -> None:
        """Store results in one transaction."""
        rows = [(request_key(fingerprint_id, req), fingerprint_id, canonical_json(req),
                 json.dumps(to_jsonable(res), ensure_ascii=False)) for req, res in zip(requests, results, strict=True)]
        with self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO responses (key, fingerprint, request, response) "
                           "VALUES (?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        return self._connect().execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
