"""HTTP for the ``openai`` backend: retries, malformed answers, an adaptive in-flight limit, clear errors.

- Retried: 429, 5xx, timeouts, dropped connections, and 2xx answers whose body is not the JSON shape the
  caller asked for (truncated JSON, fewer choices than prompts, missing fields), with exponential backoff and
  jitter (``Retry-After`` wins). Other 4xx fail at once with the server's message (:class:`Rejected`).
- At most ``concurrency`` requests are in flight (default ``$ALIGNLAB_OPENAI_CONCURRENCY``, else 8), each with
  ``timeout`` seconds (default ``$ALIGNLAB_OPENAI_TIMEOUT``, else 60). A timeout, 429 or 503 halves the limit
  (down to 1); ``limit`` successes in a row raise it by one, up to ``concurrency``. A timeout of a request sent
  while more than one was allowed is blamed on our own concurrency: it is retried without using up an attempt
  (at most ``concurrency.bit_length()`` times per request), so a server that serialises requests slows the run
  down instead of failing it.
- The error after the last attempt names the URL, the HTTP status and the last response body (truncated).
  The API key is sent as a bearer token and scrubbed from every message.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx

from alignlab.models.openai_parse import Malformed, error_message, retry_after
from alignlab.models.types import ModelError

A = TypeVar("A")
B = TypeVar("B")
CONCURRENCY_ENV = "ALIGNLAB_OPENAI_CONCURRENCY"
TIMEOUT_ENV = "ALIGNLAB_OPENAI_TIMEOUT"
DEFAULT_CONCURRENCY = 8
DEFAULT_TIMEOUT = 60.0
BODY_CHARS = 300  # of a response body quoted in an error
log = logging.getLogger("alignlab.openai")


class Rejected(ModelError):
    """A 4xx answer (not 429): the request itself is wrong; never retried."""

    def __init__(self, message: str, status: int, detail: str) -> None:
        super().__init__(message)
        self.status, self.detail = status, detail


def concurrency_option(value: int | None) -> int:
    """``value``, else ``$ALIGNLAB_OPENAI_CONCURRENCY``, else 8; a positive integer."""
    value = _from_env(value, CONCURRENCY_ENV, DEFAULT_CONCURRENCY, int, "a positive integer", "a positive integer")
    if value < 1:
        raise ValueError(f"concurrency must be at least 1, got {value}")
    return value


def timeout_option(value: float | None) -> float:
    """``value``, else ``$ALIGNLAB_OPENAI_TIMEOUT``, else 60; seconds, positive."""
    value = _from_env(value, TIMEOUT_ENV, DEFAULT_TIMEOUT, float, "a number of seconds",
                      "a positive number of seconds")
    if not value > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {value}")
    return float(value)


def _from_env(value: Any, env: str, default: Any, parse: Any, unreadable: str, not_positive: str) -> Any:
    """``value`` when given, else ``$env`` parsed (refused, naming the variable, when unreadable or not above 0),
    else ``default``."""
    if value is not None:
        return value
    raw = os.environ.get(env, "").strip()
    try:
        parsed = parse(raw) if raw else default
    except ValueError:
        raise ValueError(f"{env}={raw!r}: expected {unreadable}") from None
    if not parsed > 0:
        raise ValueError(f"{env}={raw!r}: expected {not_positive}")
    return parsed


class AdaptiveLimit:
    """At most ``limit`` holders at once: halved (down to 1) on overload, +1 after ``limit`` successes in a row."""

    def __init__(self, maximum: int) -> None:
        self.maximum = self.limit = maximum
        self.in_flight = self.streak = 0
        self._cond = threading.Condition()

    def acquire(self) -> int:
        """Wait for a slot; returns the limit in force when it was granted."""
        with self._cond:
            # bounded: every holder releases within one request timeout
            while self.in_flight >= self.limit:
                self._cond.wait(1.0)
            self.in_flight += 1
            return self.limit

    def release(self, outcome: str | None = None) -> int | None:
        """``outcome``: "ok", "overload" or None (neither). Returns the new limit when overload lowered it."""
        with self._cond:
            self.in_flight -= 1
            lowered = None
            if outcome == "overload":
                self.streak = 0
                if self.limit > 1:
                    self.limit = lowered = max(1, self.limit // 2)
            elif outcome == "ok":
                self.streak += 1
                if self.streak >= self.limit and self.limit < self.maximum:
                    self.limit, self.streak = self.limit + 1, 0
            self._cond.notify_all()
            return lowered


class Http:
    """JSON requests to one OpenAI-compatible base URL, retried and limited as the module docstring says."""

    def __init__(self, base_url: str, api_key: str | None, *, timeout: float | None = None,
                 concurrency: int | None = None, max_retries: int = 5, backoff: float = 0.5,
                 max_backoff: float = 30.0, client: httpx.Client | None = None) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.timeout = timeout_option(timeout)
        self.concurrency = concurrency_option(concurrency)
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.limit = AdaptiveLimit(self.concurrency)
        self.timeouts = 0  # requests that timed out, all told
        self._lock = threading.Lock()
        pool = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        self.client = client or httpx.Client(timeout=self.timeout, limits=pool)
        self._owns_client = client is None

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def scrub(self, text: str) -> str:
        return text.replace(self.api_key, "***") if self.api_key else text

    def map(self, fn: Callable[[A], B], items: Sequence[A]) -> list[B]:
        """``fn`` over ``items`` on up to ``concurrency`` threads (the limit gates the requests they make)."""
        if len(items) <= 1 or self.concurrency <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(min(self.concurrency, len(items))) as pool:
            return list(pool.map(fn, items))

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, allow: tuple[int, ...] = (),
                parse: Callable[[Any], Any] | None = None) -> Any:
        """``parse(json)`` of a 2xx answer (the JSON itself without ``parse``; None for a status in ``allow``).

        ``parse`` raises :class:`Malformed` for a body of the wrong shape, which is retried like a 5xx.
        """
        url = self.base_url + path
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        last, counted, free = "", 0, 0
        for _ in range(self.max_retries + 1 + self.concurrency.bit_length()):  # attempts + free retries
            wait: float | None = None
            granted = self.limit.acquire()
            outcome: str | None = None
            timed_out = False
            try:
                resp = self.client.request(method, url, json=body, headers=headers)
            except httpx.TimeoutException:
                outcome, timed_out, last = "overload", True, f"no response within {self.timeout:g} s"
                with self._lock:
                    self.timeouts += 1
            except httpx.RequestError as e:  # refused or dropped connections, broken encodings
                last = f"{type(e).__name__}: {e}"
            else:
                if resp.status_code < 300:
                    try:
                        result = self._parsed(resp, parse)
                    except Malformed as e:
                        last = f"HTTP {resp.status_code} with a malformed body ({e}); body: {self._body(resp)}"
                    else:
                        outcome = "ok"
                        return result
                elif resp.status_code in allow:
                    outcome = "ok"
                    return None
                elif resp.status_code != 429 and resp.status_code < 500:
                    raise self._rejected(url, resp)
                else:
                    last = f"HTTP {resp.status_code}; body: {self._body(resp)}"
                    wait = retry_after(resp.headers.get("retry-after"))
                    outcome = "overload" if resp.status_code in (429, 503) else None
            finally:
                lowered = self.limit.release(outcome)
                if lowered is not None:
                    log.warning("%s: %s; at most %d requests in flight now", self.base_url, last, lowered)
            if timed_out and granted > 1 and free < self.concurrency.bit_length():
                free += 1  # our own concurrency is the likely cause: the limit is lower now, try again
            else:
                counted += 1
                if counted > self.max_retries:
                    break
            time.sleep(wait if wait is not None else self._delay(counted))
        hint = f" (a longer timeout: --timeout or ${TIMEOUT_ENV})" if timed_out else ""
        raise ModelError(self.scrub(f"{url} unreachable or failing after {counted + free} attempts; last: {last}"
                                    f"{hint}"))

    @staticmethod
    def _parsed(resp: httpx.Response, parse: Callable[[Any], Any] | None) -> Any:
        try:
            data = resp.json()
        except ValueError as e:  # truncated or not JSON at all, or not UTF-8
            raise Malformed(f"not JSON: {e}") from None
        return parse(data) if parse else data

    def _delay(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2 ** max(attempt - 1, 0)) * random.uniform(0.5, 1.0)

    def _body(self, resp: httpx.Response) -> str:
        text = resp.text
        cut = f"... ({len(text)} chars)" if len(text) > BODY_CHARS else ""
        return repr(text[:BODY_CHARS]) + cut if text else "(empty)"

    def _rejected(self, url: str, resp: httpx.Response) -> Rejected:
        message = error_message(resp)
        hint = " (does the base URL end in /v1?)" if resp.status_code == 404 and \
            not self.base_url.endswith("/v1") else ""
        return Rejected(self.scrub(f"{url} rejected the request (HTTP {resp.status_code}): {message}{hint}"),
                        resp.status_code, self.scrub(message))


class RoundRobin:
    """Several servers of one model behind one :class:`Http` interface: each request goes to the next server in
    turn (its retries stay on that server), ``map`` keeps ``concurrency`` requests in flight per server."""

    def __init__(self, servers: Sequence[Http]) -> None:
        if not servers:
            raise ValueError("RoundRobin needs at least one server")
        self.servers = list(servers)
        self.timeout, self.concurrency = self.servers[0].timeout, self.servers[0].concurrency
        self._turn = itertools.count()

    @property
    def timeouts(self) -> int:
        return sum(s.timeouts for s in self.servers)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        return self.servers[next(self._turn) % len(self.servers)].request(*args, **kwargs)

    def map(self, fn: Callable[[A], B], items: Sequence[A]) -> list[B]:
        workers = min(self.concurrency * len(self.servers), len(items))
        if workers <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(fn, items))

    def close(self) -> None:
        for server in self.servers:
            server.close()
