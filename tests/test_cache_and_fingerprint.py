"""Model fingerprints change with everything that changes outputs; the SQLite cache survives SIGKILL."""

from __future__ import annotations

import copy
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from alignlab.models import Model, ScoreRequest
from alignlab.models.cache import RequestCache
from alignlab.models.hf import HFBackend
from tests.conftest import make_tiny_llama

REQUEST = ScoreRequest("The sky is", (" blue", " green"))


class CountingBackend(HFBackend):
    """Counts the requests that reach the model, to tell cache hits from misses."""

    calls = 0

    def score(self, requests):
        CountingBackend.calls += len(requests)
        return super().score(requests)


class RenamedBackend(CountingBackend):
    def fingerprint(self):
        return {**super().fingerprint(), "backend": "hf-renamed"}


def misses(backend: HFBackend, cache: RequestCache) -> int:
    before = CountingBackend.calls
    Model(backend, cache).score([REQUEST])
    return CountingBackend.calls - before


def test_each_fingerprint_field_gives_a_cache_miss(tmp_path, tiny_model, tokenizer):
    cache = RequestCache(tmp_path / "cache.sqlite")
    base = CountingBackend(tiny_model, tokenizer, spec="hf:tiny")
    assert misses(base, cache) == 1
    assert misses(CountingBackend(tiny_model, tokenizer, spec="hf:tiny"), cache) == 0  # same model: a hit

    other_weights = CountingBackend(make_tiny_llama(tokenizer, seed=1), tokenizer, spec="hf:tiny")
    bf16 = CountingBackend(copy.deepcopy(tiny_model).to(torch.bfloat16), tokenizer, spec="hf:tiny")
    other_backend = RenamedBackend(tiny_model, tokenizer, spec="hf:tiny")
    tok_added = copy.deepcopy(tokenizer)
    tok_added.add_tokens(["<extra_token_for_test>"])
    other_tokenizer = CountingBackend(tiny_model, tok_added, spec="hf:tiny")
    tok_template = copy.deepcopy(tokenizer)
    tok_template.chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}"
    other_template = CountingBackend(tiny_model, tok_template, spec="hf:tiny")
    other_bos = CountingBackend(tiny_model, tokenizer, spec="hf:tiny")
    other_bos.add_bos = not other_bos.add_bos

    variants = {"weights": other_weights, "dtype": bf16, "backend": other_backend, "tokenizer": other_tokenizer,
                "chat_template": other_template, "bos_policy": other_bos}
    ids = {base_id := Model(base).fingerprint_id}
    for name, backend in variants.items():
        assert misses(backend, cache) == 1, f"changing {name} must miss the cache"
        ids.add(Model(backend).fingerprint_id)
    assert len(ids) == len(variants) + 1 and base_id in ids


def test_cache_round_trips_results_exactly(tmp_path, tiny_model, tokenizer):
    backend = HFBackend(tiny_model, tokenizer, spec="hf:tiny")
    first = Model(backend, RequestCache(tmp_path / "c.sqlite")).score([REQUEST])[0]
    again = Model(backend, RequestCache(tmp_path / "c.sqlite")).score([REQUEST])[0]  # a fresh connection
    assert again == first


WRITER = textwrap.dedent("""
    import sys, time
    from alignlab.models.types import ContinuationScore, ScoreRequest, ScoreResult
    from alignlab.models.cache import RequestCache

    cache = RequestCache(sys.argv[1])
    chunk = 0
    while True:
        reqs = [ScoreRequest(f"context {chunk}-{i}", (" a",)) for i in range(50)]
        res = [ScoreResult((ContinuationScore(-float(i), (-float(i),), ("a",), True),)) for i in range(50)]
        cache.put_many("fp", reqs, res)
        print(chunk, flush=True)
        chunk += 1
""")


def test_cache_stays_usable_after_sigkill_mid_write(tmp_path):
    path = tmp_path / "killed.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    for _ in range(5):  # let several chunks commit, then kill while it keeps writing
        proc.stdout.readline()
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    cache = RequestCache(path)
    stored = len(cache)
    assert stored >= 250 and stored % 50 == 0  # whole chunks only: each put_many is one transaction
    hit = cache.get_many("fp", [ScoreRequest("context 0-3", (" a",))])[0]
    assert hit.scores[0].logprob == -3.0
    cache.put_many("fp", [REQUEST], [hit])  # still writable
    assert len(cache) == stored + 1


def test_corrupt_cache_file_gets_a_clear_error(tmp_path):
    path = tmp_path / "bad.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(RuntimeError, match="bad.sqlite"):
        RequestCache(path)
