"""The exclusive lock a process holds on a run directory while it has the run open for writing.

``Run.create`` and ``Run.resume`` take it; ``Run.finish``, ``Run.fail`` and ``Run.close`` release it. It is an
``fcntl.flock`` on ``RUN_DIR/.lock``, so the operating system drops it when the holder exits in any way (SIGKILL
included): a killed run can always be resumed, and a second process that tries to open the same run while the
first one is alive is refused with :class:`RunLockedError`. The lock is per process: several :class:`Run` objects
of one process may hold the same directory (a count is kept; the lock goes when the last one lets go).
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import weakref
from pathlib import Path
from typing import IO

LOCK_NAME = ".lock"

_GUARD = threading.Lock()
_HELD: dict[str, tuple[IO[str], int]] = {}  # real path of the directory -> (open lock file, holders in this process)


class RunLockedError(BlockingIOError, ValueError):
    """Another process has the run directory open. (A ``ValueError`` too, so every CLI prints it as one line.)"""


class RunLock:
    """This process's hold on ``directory``'s lock, taken at construction; :meth:`release` is idempotent and also
    runs when the object is garbage collected or the interpreter exits."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        key = os.path.realpath(directory)
        with _GUARD:
            held = _HELD.get(key)
            handle = held[0] if held else _acquire(self.directory)
            _HELD[key] = (handle, (held[1] if held else 0) + 1)
        self._release = weakref.finalize(self, _let_go, key)

    def release(self) -> None:
        self._release()

    @property
    def held(self) -> bool:
        return self._release.alive


def _acquire(directory: Path) -> IO[str]:
    handle = (directory / LOCK_NAME).open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunLockedError(f"{directory} is open in another alignlab process ({holder}): a run directory takes one "
                             f"writer at a time; wait for that process to end (or stop it), then resume") from None
    except BaseException:
        handle.close()
        raise
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    return handle


def _let_go(key: str) -> None:
    with _GUARD:
        handle, count = _HELD.pop(key)
        if count > 1:
            _HELD[key] = (handle, count - 1)
            return
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
