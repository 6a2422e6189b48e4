"""The Model hands a backend many requests at once when it asks (``max_in_flight``) and still caches each
sub-batch as it completes, so a crash loses at most one sub-batch; the torchrun shard cut is even and contiguous."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from alignlab.models.base import Backend, Model
from alignlab.models.cache import RequestCache
from alignlab.models.distributed import lead, replicate, shards
from alignlab.models.types import NextTokenRequest, NextTokenResult


def _requests(n: int) -> list[NextTokenRequest]:
    return [NextTokenRequest(f"question {i}", ("A", "B")) for i in range(n)]


def _answer(request: NextTokenRequest) -> NextTokenResult:
    p = (int(str(request.prompt).split()[-1]) % 10) / 10
    return NextTokenResult((p, 1 - p), (p, 1 - p))


class Plain(Backend):
    """One call per sub-batch (the default ``stream``); records the size of every call."""

    spec = "scripted:plain"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def fingerprint(self) -> dict[str, Any]:
        return {"backend": self.spec}

    def generate(self, requests):  # pragma: no cover - not used
        raise NotImplementedError

    def score(self, requests):  # pragma: no cover - not used
        raise NotImplementedError

    def next_token(self, requests: Sequence[NextTokenRequest]) -> list[NextTokenResult]:
        self.calls.append(len(requests))
        return [_answer(r) for r in requests]


class InFlight(Plain):
    """Takes up to 10 requests at once and finishes sub-batches out of order (last first, like a server whose short
    requests return early); fails for good once it has finished ``fail_after`` sub-batches."""

    spec = "scripted:in-flight"
    max_in_flight = 10

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        self.fail_after = fail_after
        self.finished = 0
        self.handed: list[int] = []

    def stream(self, method: str, requests: Sequence[Any], sub_batch: int
               ) -> Iterator[tuple[list[int], list[Any]]]:
        assert method == "next_token"
        self.handed.append(len(requests))
        starts = list(range(0, len(requests), sub_batch))[::-1]
        for start in starts:
            if self.fail_after is not None and self.finished >= self.fail_after:
                raise RuntimeError("the server went away")
            self.finished += 1
            positions = list(range(start, min(start + sub_batch, len(requests))))
            yield positions, [_answer(requests[p]) for p in positions]


def test_without_max_in_flight_the_backend_gets_one_call_per_sub_batch(tmp_path):
    backend = Plain()
    results = Model(backend, RequestCache(tmp_path / "c.sqlite"), chunk_size=4).next_token(_requests(10))
    assert backend.calls == [4, 4, 2]
    assert results == [_answer(r) for r in _requests(10)]


def test_in_flight_requests_come_back_in_order_and_each_sub_batch_is_cached(tmp_path):
    backend, cache = InFlight(), RequestCache(tmp_path / "c.sqlite")
    seen: list[int] = []
    results = Model(backend, cache, chunk_size=3).next_token(_requests(23), progress=seen.append)
    assert results == [_answer(r) for r in _requests(23)]  # out-of-order completions put back in place
    assert backend.handed == [10, 10, 3]  # max_in_flight requests handed over at once
    assert seen == [1, 3, 3, 3] * 2 + [3]  # progress (and the cache) per completed sub-batch of chunk_size
    assert len(cache) == 23


def test_a_crash_mid_call_loses_at_most_one_sub_batch(tmp_path):
    cache = RequestCache(tmp_path / "c.sqlite")
    with pytest.raises(RuntimeError, match="went away"):
        Model(InFlight(fail_after=5), cache, chunk_size=3).next_token(_requests(23))
    # 5 sub-batches finished before the failure: all 4 of the first 10 handed over, then the last 1 of the next 10
    assert len(cache) == 11
    again = InFlight()
    results = Model(again, cache, chunk_size=3).next_token(_requests(23))
    assert results == [_answer(r) for r in _requests(23)]
    assert sum(again.handed) == 23 - 11  # nothing finished before the crash is computed again


def test_shards_are_contiguous_and_even():
    assert shards(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert shards([1], 2) == [[1], []]
    assert sum(shards(list(range(64)), 5), []) == list(range(64))


def test_without_torchrun_lead_just_calls_and_nothing_is_replicated(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert lead(lambda: 42) == 42
    assert replicate("embedded", "float32", None, "id") is None
