"""The one worker thread behind ``alignlab serve``: every model call runs there, one request at a time, fed by a
bounded queue; a request whose client went away (or a server shutting down) stops at its next forward pass.

A request handler submits a :class:`Job` (its work, run on the worker) and reads the job's events (``start``,
``data``, ``done``, ``error``, ``cancelled``) on the event loop, polling for a client disconnect meanwhile. On the
hf backend a forward pre-hook, present only while a job runs and only on the worker thread, raises
:class:`Cancelled` inside ``model(...)``, so even a batched ``generate`` stops within one decoding step.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.requests import Request

from alignlab.models.base import Model
from alignlab.models.hf import HFBackend
from alignlab.models.serve.schema import ApiError

POLL_S = 0.1  # how often a waiting handler checks whether its client is still there


class Cancelled(Exception):
    """A job stopped: its client disconnected, or the server is shutting down."""


class Job:
    """One request's work for the worker thread, and the events it sends back to the event loop."""

    def __init__(self, work: Callable[[Job], Any], loop: asyncio.AbstractEventLoop) -> None:
        self.work, self.loop = work, loop
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.stop = threading.Event()
        self.why = ""

    def cancel(self, why: str) -> None:
        if not self.stop.is_set():
            self.why = why
            self.stop.set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if the job was cancelled (called on the worker between steps)."""
        if self.stop.is_set():
            raise Cancelled(self.why)

    def emit(self, kind: str, value: Any = None) -> None:
        """Send an event to the handler (from the worker thread)."""
        with contextlib.suppress(RuntimeError):  # RuntimeError: the event loop is gone, the server stopped
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))

    async def next(self, request: Request | None) -> tuple[str, Any]:
        """The next event. With ``request``, a client that disconnects meanwhile cancels the job."""
        getter = asyncio.ensure_future(self.events.get())
        try:
            while True:
                done, _ = await asyncio.wait({getter}, timeout=POLL_S)
                if done:
                    return getter.result()
                if request is not None and await request.is_disconnected():
                    self.cancel("the client disconnected")
                    raise Cancelled(self.why)
        finally:
            if not getter.done():
                getter.cancel()


class Engine:
    """The worker thread and its queue: at most ``max_queue`` requests wait behind the running one."""

    def __init__(self, model: Model, max_queue: int) -> None:
        self.model, self.max_queue = model, max_queue
        self._jobs: deque[Job] = deque()
        self._cv = threading.Condition()
        self._current: Job | None = None
        self._thread: threading.Thread | None = None
        self.closed = False
        self.seconds = 1.0  # moving average of a job's duration, for Retry-After
        self.counts = {"done": 0, "cancelled": 0, "error": 0, "refused": 0}

    def submit(self, work: Callable[[Job], Any]) -> Job:
        """Queue ``work``; 429 with Retry-After when the queue is full, 503 once the server is stopping."""
        job = Job(work, asyncio.get_running_loop())
        with self._cv:
            if self.closed:
                raise ApiError(503, "the server is shutting down")
            live = [j for j in [*self._jobs, self._current] if j is not None and not j.stop.is_set()]
            waiting = len(live)  # a cancelled job holds no place: it ends as soon as the worker reaches it
            if waiting > self.max_queue:
                self.counts["refused"] += 1
                retry = min(60, max(1, math.ceil(self.seconds * waiting)))
                raise ApiError(429, f"the server is busy: {waiting} requests are running or queued "
                                    f"(--max-queue {self.max_queue}); retry in {retry} s",
                               headers={"Retry-After": str(retry)})
            self._jobs.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="alignlab-serve-worker", daemon=True)
                self._thread.start()
            self._cv.notify()
        return job

    def busy(self) -> bool:
        with self._cv:
            return self._current is not None or bool(self._jobs)

    def queued(self) -> int:
        """Requests waiting behind the running one (not those cancelled meanwhile)."""
        with self._cv:
            return sum(not j.stop.is_set() for j in self._jobs)

    def close(self) -> None:
        """Stop: refuse new requests and cancel the running and queued ones (they answer 503)."""
        with self._cv:
            self.closed = True
            for job in [*self._jobs, *([self._current] if self._current else [])]:
                job.cancel("the server is shutting down")
            self._cv.notify_all()

    def _serve(self) -> None:
        while True:
            with self._cv:
                while not self._jobs and not self.closed:
                    self._cv.wait()
                if not self._jobs:
                    return
                job = self._current = self._jobs.popleft()
            started = time.monotonic()
            try:
                job.check()
                with self._watch(job):
                    result = job.work(job)
                job.emit("done", result)
                self.counts["done"] += 1
            except Cancelled as exc:
                job.emit("cancelled", str(exc))
                self.counts["cancelled"] += 1
            except Exception as exc:  # the handler turns it into the answer
                job.emit("error", exc)
                self.counts["error"] += 1
            finally:
                with self._cv:
                    self._current = None
                self.seconds = 0.7 * self.seconds + 0.3 * (time.monotonic() - started)

    @contextmanager
    def _watch(self, job: Job) -> Iterator[None]:
        """While ``job`` runs, every forward pass of an hf model on this thread first checks for cancellation."""
        backend = self.model.backend
        if not isinstance(backend, HFBackend):
            yield
            return
        worker = threading.get_ident()

        def check(module: Any, args: Any) -> None:
            if threading.get_ident() == worker:
                job.check()

        handle = backend.model.register_forward_pre_hook(check)
        try:
            yield
        finally:
            handle.remove()
