"""The one door to a language model: :class:`Model` wraps a :class:`Backend` with a persistent cache.

Studies call ``model.generate / score / next_token`` with lists of requests. The wrapper looks every
request up in the cache, sends only the misses to the backend, stores each sub-batch of ``chunk_size`` results as
soon as it completes (so a crash loses at most one sub-batch), and reports progress through an optional callback.

A backend that wants many requests in flight (a GPU batcher, vLLM, a server) sets ``max_in_flight`` and overrides
:meth:`Backend.stream` to yield each sub-batch as it completes; the others get one call per sub-batch. Under
``torchrun`` the leader's model splits its misses across the ranks' replicas (:mod:`alignlab.models.distributed`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from alignlab.models.types import (
    GenerateParams,
    GenerateRequest,
    GenerateResult,
    NextTokenRequest,
    NextTokenResult,
    Prompt,
    Request,
    Result,
    ScoreRequest,
    ScoreResult,
)

Progress = Callable[[int], None]  # called with the number of requests just completed
R = TypeVar("R", bound=Request)
T = TypeVar("T", bound=Result)


class Backend(abc.ABC):
    """What a backend implements. Every method receives a batch and returns results in the same order."""

    spec: str = ""

    @abc.abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes the model's outputs: weights, dtype, backend, tokenizer, template, BOS."""

    @abc.abstractmethod
    def generate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResult]: ...

    @abc.abstractmethod
    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]: ...

    @abc.abstractmethod
    def next_token(self, requests: Sequence[NextTokenRequest]) -> list[NextTokenResult]: ...

    #: how many requests :class:`Model` hands to :meth:`stream` at once; None: one sub-batch (``chunk_size``)
    max_in_flight: int | None = None

    def stream(self, method: str, requests: Sequence[Request], sub_batch: int
               ) -> Iterator[tuple[list[int], list[Any]]]:
        """Compute ``requests`` (up to ``max_in_flight``) with ``method`` (``"generate"``, ``"score"`` or
        ``"next_token"``), yielding ``(positions, results)`` for each completed sub-batch of at most ``sub_batch``
        requests, in any order. The default calls ``method`` once per consecutive sub-batch; a backend that keeps
        many requests in flight overrides it to yield each sub-batch as soon as it is done."""
        call = getattr(self, method)
        for start in range(0, len(requests), sub_batch):
            chunk = requests[start:start + sub_batch]
            yield list(range(start, start + len(chunk))), call(chunk)

    def describe(self) -> dict[str, Any]:
        """Human-facing facts for reports: name, parameter count when known, notes."""
        return {"spec": self.spec}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (servers, files)."""


class Model:
    """A backend plus the request cache. This is what studies receive."""

    def __init__(self, backend: Backend, cache: Any | None = None, chunk_size: int = 64) -> None:
        from alignlab.models.fingerprint import fingerprint_id

        self.backend = backend
        self.cache = cache
        self.chunk_size = chunk_size
        self.fingerprint = backend.fingerprint()
        self.fingerprint_id = fingerprint_id(self.fingerprint)
        self.replicas: Any | None = None  # the workers' copies under torchrun (models.distributed.Replicas)

    @property
    def spec(self) -> str:
        return self.backend.spec

    def describe(self) -> dict[str, Any]:
        return {**self.backend.describe(), "fingerprint": self.fingerprint_id}

    # -- the three request types -------------------------------------------------------------
    def generate(self, requests: Sequence[GenerateRequest], progress: Progress | None = None
                 ) -> list[GenerateResult]:
        return self._run(list(requests), "generate", progress)

    def score(self, requests: Sequence[ScoreRequest], progress: Progress | None = None) -> list[ScoreResult]:
        return self._run(list(requests), "score", progress)

    def next_token(self, requests: Sequence[NextTokenRequest], progress: Progress | None = None
                   ) -> list[NextTokenResult]:
        return self._run(list(requests), "next_token", progress)

    # -- single-request conveniences ---------------------------------------------------------
    def generate_one(self, prompt: Prompt, **params: Any) -> GenerateResult:
        return self.generate([GenerateRequest(prompt, GenerateParams(**params))])[0]

    def score_one(self, context: Prompt, continuations: Sequence[str]) -> ScoreResult:
        return self.score([ScoreRequest(context, tuple(continuations))])[0]

    def next_token_one(self, prompt: Prompt, options: Sequence[str]) -> NextTokenResult:
        return self.next_token([NextTokenRequest(prompt, tuple(options))])[0]

    # -- cache + sub-batches -----------------------------------------------------------------
    def _run(self, requests: list[R], method: str, progress: Progress | None) -> list[T]:
        results: list[T | None] = [None] * len(requests)
        if self.cache is not None:
            for i, hit in enumerate(self.cache.get_many(self.fingerprint_id, requests)):
                results[i] = hit
        missing = [i for i, r in enumerate(results) if r is None]
        if progress and len(missing) < len(requests):
            progress(len(requests) - len(missing))
        for positions, out in self._sub_batches(method, [requests[i] for i in missing]):
            idx = [missing[p] for p in positions]
            if self.cache is not None:
                self.cache.put_many(self.fingerprint_id, [requests[i] for i in idx], out)
            for i, res in zip(idx, out, strict=True):
                results[i] = res
            if progress:
                progress(len(idx))
        return results  # type: ignore[return-value]

    def _sub_batches(self, method: str, requests: list[R]) -> Iterator[tuple[list[int], list[Any]]]:
        """``(positions, results)`` of each completed sub-batch, from the workers' replicas too under torchrun."""
        if self.replicas is None or self.replicas.closed:
            yield from self._stream(method, requests)
            return
        from alignlab.models.distributed import shards, world_size

        world = world_size()
        per_round = world * self._in_flight()
        for start in range(0, len(requests), per_round):
            parts = shards(list(range(start, min(start + per_round, len(requests)))), world)
            outs = self.replicas.run(method, [[requests[i] for i in part] for part in parts],
                                     lambda mine: self.compute(method, mine))
            for part, out in zip(parts, outs, strict=True):
                if part:
                    yield part, self._checked(out, len(part))

    def _stream(self, method: str, requests: Sequence[R]) -> Iterator[tuple[list[int], list[Any]]]:
        span = self._in_flight()
        stream = getattr(self.backend, "stream", None)  # a duck-typed backend gets the default
        for start in range(0, len(requests), span):
            chunk = requests[start:start + span]
            parts = stream(method, chunk, self.chunk_size) if stream else Backend.stream(self.backend, method, chunk,
                                                                                         self.chunk_size)
            for positions, out in parts:
                yield [start + p for p in positions], self._checked(out, len(positions))

    def _in_flight(self) -> int:
        return getattr(self.backend, "max_in_flight", None) or self.chunk_size

    @staticmethod
    def _checked(out: list[Any], expected: int) -> list[Any]:
        if len(out) != expected:
            raise RuntimeError(f"backend returned {len(out)} results for {expected} requests")
        return out

    def compute(self, method: str, requests: Sequence[R]) -> list[Any]:
        """The backend's results for ``requests`` in order, without the cache (a torchrun worker's share)."""
        results: list[Any] = [None] * len(requests)
        for positions, out in self._stream(method, list(requests)):
            for p, res in zip(positions, out, strict=True):
                results[p] = res
        return results

    def close(self) -> None:
        if self.replicas is not None:
            self.replicas.close()
        self.backend.close()
