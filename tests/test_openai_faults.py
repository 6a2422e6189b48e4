"""The openai backend through a fault-injecting proxy in front of a real `alignlab serve` app (tiny random Llama).

The proxy (loopback only) answers each request with the next entry of a seeded schedule: pass it on, or 429
with Retry-After, 500, 503, hold it past the client timeout, drop the connection (before or in the body), or
pass on a 200 whose body is truncated or of the wrong shape. A run through it must equal the hf backend and a
clean run; a permanent fault must end in an error naming the server, the status and the body; a server that
takes only string prompts works through the fallback; a server that serialises requests slows the run down.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from alignlab.models import (
    Conversation,
    GenerateParams,
    GenerateRequest,
    Model,
    ModelError,
    NextTokenRequest,
    ScoreRequest,
)
from alignlab.models.hf import HFBackend
from alignlab.models.openai_backend import OpenAIBackend
from alignlab.models.openai_http import AdaptiveLimit, concurrency_option, timeout_option
from alignlab.models.openai_parse import wants_string_prompt
from alignlab.models.serve import build_app
from tests.test_openai_backend import CHAT, QUESTION, SECRET, serving, stub

FAULTS = ["429", "500", "503", "delay", "drop", "cut", "truncate", "not-json", "fewer", "no-choices", "no-text"]
CLIENT_TIMEOUT = 1.0  # the "delay" fault holds a request longer than this
FAST = {"backoff": 0.01, "max_backoff": 0.05}


class FaultProxy:
    """A loopback HTTP proxy to ``upstream`` that applies one schedule entry per request ("ok" when it runs
    out, or ``always``); ``seen`` lists (method, path, fault) in arrival order."""

    def __init__(self, upstream: str, schedule: list[str], always: str = "ok") -> None:
        self.upstream, self.schedule, self.always = upstream.rstrip("/"), list(schedule), always
        self.seen: list[tuple[str, str, str]] = []
        self.lock, self.closing = threading.Lock(), threading.Event()
        self.client = httpx.Client(timeout=30)

    def next_fault(self, method: str, path: str) -> str:
        with self.lock:
            fault = self.schedule.pop(0) if self.schedule else self.always
            self.seen.append((method, path, fault))
            return fault

    def upstream_json(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        resp = self.client.request(method, self.upstream + path.removeprefix("/v1"), content=body or None,
                                   headers=headers)
        return resp.status_code, resp.content

    @contextmanager
    def running(self) -> Iterator[str]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self.relay("GET")

            def do_POST(self) -> None:
                self.relay("POST")

            def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                      length: int | None = None) -> None:
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)

            def relay(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy.next_fault(method, self.path)
                self.close_connection = True
                key = self.headers.get("Authorization", "")
                if fault == "drop":
                    return  # close without a response
                if fault == "delay":
                    proxy.closing.wait(CLIENT_TIMEOUT + 0.5)  # bounded; the client has given up by then
                    return
                if fault in ("429", "500", "503"):
                    error = {"error": {"message": f"injected {fault} ({key})", "type": "server_error"}}
                    self.reply(int(fault), json.dumps(error).encode(), {"Retry-After": "1"} if fault == "429" else {})
                    return
                status, data = proxy.upstream_json(method, self.path, body, {
                    "Content-Type": "application/json", **({"Authorization": key} if key else {})})
                if status == 200 and fault != "ok":
                    data = self.damage(fault, data, method)
                self.reply(status, data, length=len(data) + 100 if fault == "cut" else None)

            @staticmethod
            def damage(fault: str, data: bytes, method: str) -> bytes:
                if fault in ("truncate", "cut") or method == "GET" and fault not in ("not-json", "no-choices"):
                    return data[: len(data) // 2]
                if fault == "not-json":
                    return b"<html>502 Bad Gateway</html>"
                if method == "GET":
                    return b"[]"
                parsed = json.loads(data)
                if fault == "fewer":
                    parsed["choices"] = parsed["choices"][:-1]
                elif fault == "no-choices":
                    del parsed["choices"]
                elif fault == "no-text":
                    parsed["choices"][0].pop("text", None)
                    parsed["choices"][0].pop("message", None)
                return json.dumps(parsed).encode()

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/v1"
        finally:
            self.closing.set()
            server.shutdown()
            server.server_close()
            thread.join(5)
            self.client.close()


@pytest.fixture(scope="module")
def hf(tiny_model, tokenizer) -> HFBackend:
    return HFBackend(tiny_model, tokenizer, spec="hf:tiny")


@pytest.fixture(scope="module")
def url(hf) -> Iterator[str]:
    with serving(build_app(Model(hf, cache=None))) as base:
        yield base


def workload() -> dict[str, list[Any]]:
    return {
        "score": [ScoreRequest(QUESTION, (" a dog", " honey")),
                  ScoreRequest("Is water wet?\nA: ", ("Yes", "No")),  # a boundary merge
                  ScoreRequest(Conversation.of(("user", "Hi"), prefill="Hello", format="raw_hh"), (" there", "!")),
                  ScoreRequest(CHAT, (" apple",))],
        "next_token": [NextTokenRequest(QUESTION, (" A", " B", " dog")), NextTokenRequest(CHAT, (" A", " B"))],
        "generate": [GenerateRequest(p, GenerateParams(max_new_tokens=6)) for p in (QUESTION, "Hello", CHAT)],
    }


def run_all(backend: Any, work: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {kind: getattr(backend, kind)(requests) for kind, requests in work.items()}


def flat(results: dict[str, list[Any]]) -> tuple[list[float], list[str], list[Any]]:
    """A workload's numbers (logprobs, probabilities), generated texts, and scored tokens (count, greedy, merge)."""
    scores = [s for r in results["score"] for s in r.scores]
    numbers = [x for s in scores for x in (s.logprob, *s.token_logprobs)]
    numbers += [x for r in results["next_token"] for x in (*r.probs, *r.logprobs)]
    tokens = [(len(s.tokens), s.is_greedy, s.boundary_merge) for s in scores]
    return numbers, [r.text for r in results["generate"]], tokens


def test_a_run_through_seeded_faults_equals_the_hf_backend_and_a_clean_run(url, hf):
    rng = random.Random(17)
    schedule = FAULTS + ["ok"] * len(FAULTS)
    rng.shuffle(schedule)
    work = workload()
    clean = run_all(OpenAIBackend("hf:tiny", url, max_retries=0), work)
    proxy = FaultProxy(url, schedule)
    with proxy.running() as base:
        backend = OpenAIBackend("hf:tiny", base, api_key=SECRET, timeout=CLIENT_TIMEOUT, concurrency=4,
                                max_retries=len(FAULTS) + 1, **FAST)
        start = time.monotonic()
        got = run_all(backend, work)
        elapsed = time.monotonic() - start
    assert {f for _, _, f in proxy.seen} == {*FAULTS, "ok"}  # every fault was served, and then passed
    assert len(proxy.seen) >= 2 * len(FAULTS)
    assert flat(got) == flat(clean)  # exactly: retries resend the same requests
    want = run_all(hf, work)
    assert flat(got)[1:] == flat(want)[1:]
    assert flat(got)[0] == pytest.approx(flat(want)[0], abs=1e-4)
    assert backend.http.timeouts >= 1 and elapsed < 30


def test_a_permanent_fault_fails_naming_server_status_and_body_with_the_key_scrubbed(url):
    request = [GenerateRequest("Hi", GenerateParams(max_new_tokens=2))]
    for fault, want in [("500", r"HTTP 500; body: .*injected 500 \(Bearer \*\*\*\)"),
                        ("truncate", r"HTTP 200 with a malformed body \(not JSON.*\); body: '\{"),
                        ("fewer", r"HTTP 200 with a malformed body \(no choices\); body: .*\"choices\": \[\]"),
                        ("drop", "RemoteProtocolError: Server disconnected")]:
        proxy = FaultProxy(url, [], always=fault)
        with proxy.running() as base:
            backend = OpenAIBackend("hf:tiny", base, api_key=SECRET, max_retries=2, **FAST)
            with pytest.raises(ModelError, match=rf"^{base}/completions .*after 3 attempts; last: {want}") as err:
                backend.generate(request)
        assert SECRET not in str(err.value)
        assert len(proxy.seen) == 3


def test_a_server_that_never_answers_in_time_fails_after_a_bounded_number_of_tries(url):
    proxy = FaultProxy(url, [], always="delay")
    with proxy.running() as base:
        backend = OpenAIBackend("hf:tiny", base, timeout=0.3, concurrency=4, max_retries=1, **FAST)
        with pytest.raises(ModelError, match=r"/completions .*attempts; last: no response within 0.3 s "
                                             r"\(a longer timeout: --timeout or \$ALIGNLAB_OPENAI_TIMEOUT\)$"):
            backend.generate([GenerateRequest("Hi")] * 2)
    assert backend.http.limit.limit == 1
    # each request: at most 2 counted tries plus 3 free ones (4 in flight allowed at first: 4 -> 2 -> 1)
    assert 4 <= len(proxy.seen) <= 2 * (2 + 3)


def test_a_server_that_takes_only_string_prompts_is_detected_once(url, hf):
    def string_only(path: str, body: dict, call: int) -> Any:
        if isinstance(body.get("prompt"), list):
            return JSONResponse({"detail": "prompt must be a string."}, 400)  # as `transformers serve`
        resp = httpx.post(f"{url}/{path}", json=body, timeout=30)
        return JSONResponse(resp.json(), resp.status_code)

    app = stub(string_only)
    requests = workload()["score"][:3]
    with serving(app) as base:
        backend = OpenAIBackend("hf:tiny", base, max_retries=0, concurrency=1)
        got = backend.score(requests)
        again = backend.score(requests[:1])
        nt = backend.next_token([NextTokenRequest(QUESTION, (" A", " B"))])
    assert backend.string_prompts_only
    lists = [b for _, b, _ in app.state.calls if isinstance(b.get("prompt"), list)]
    assert len(lists) == 1  # refused once, remembered
    # one refused list, then one request per prompt (context + each continuation); next_token: its top-k
    # request, then a score of the two options outside the top-k
    assert len(app.state.calls) == 1 + 3 * 3 + 3 + (1 + 3)
    want = hf.score(requests)
    for g, w in zip(got, want, strict=True):
        assert g.logprobs == pytest.approx(w.logprobs, abs=1e-4)
    assert again[0].logprobs == got[0].logprobs
    assert nt[0].probs == pytest.approx(hf.next_token([NextTokenRequest(QUESTION, (" A", " B"))])[0].probs, abs=1e-4)


def test_timeouts_lower_the_concurrency_instead_of_failing_the_run():
    """8 in flight, 0.15 s each, one at a time, 0.5 s timeout: the 4th and later time out; no retries allowed."""
    app = FastAPI()
    app.state.served = []
    busy = asyncio.Lock()

    @app.post("/v1/completions")
    async def complete(request: Request) -> Any:
        body = await request.json()
        async with busy:
            if await request.is_disconnected():
                return JSONResponse({}, 499)  # the client gave up: skip the work
            await asyncio.sleep(0.15)
            app.state.served.append(body["prompt"])
            return {"choices": [{"index": 0, "text": body["prompt"].upper(), "finish_reason": "length"}]}

    prompts = [f"p{i}" for i in range(8)]
    with serving(app) as base:
        backend = OpenAIBackend("m", base, timeout=0.5, concurrency=8, max_retries=0, **FAST)
        out = backend.generate([GenerateRequest(p) for p in prompts])
    assert [r.text for r in out] == [p.upper() for p in prompts]
    assert backend.http.timeouts >= 1 and backend.http.limit.limit < 8
    assert set(app.state.served) == set(prompts)  # some twice: computed for a client that gave up


def test_adaptive_limit_halves_on_overload_and_grows_back_slowly():
    limit = AdaptiveLimit(8)
    assert [limit.acquire() for _ in range(8)] == [8] * 8 and limit.in_flight == 8
    assert [limit.release("overload") for _ in range(4)] == [4, 2, 1, None]
    for _ in range(4):
        limit.release("ok")
    assert limit.limit == 3  # +1 after 1 success at 1, +1 after 2 at 2, 1 of 3 at 3
    assert limit.in_flight == 0


def test_options_come_from_the_environment_and_are_checked(monkeypatch):
    assert (concurrency_option(None), timeout_option(None)) == (8, 60.0)
    monkeypatch.setenv("ALIGNLAB_OPENAI_CONCURRENCY", "3")
    monkeypatch.setenv("ALIGNLAB_OPENAI_TIMEOUT", "2.5")
    backend = OpenAIBackend("m", "http://127.0.0.1:9/v1")
    assert (backend.concurrency, backend.timeout, backend.http.client.timeout.read) == (3, 2.5, 2.5)
    assert OpenAIBackend("m", "http://127.0.0.1:9/v1", timeout=7, concurrency=2).concurrency == 2
    for name, value, match in [("ALIGNLAB_OPENAI_CONCURRENCY", "0", "positive integer"),
                               ("ALIGNLAB_OPENAI_CONCURRENCY", "many", "positive integer"),
                               ("ALIGNLAB_OPENAI_TIMEOUT", "-1", "positive number"),
                               ("ALIGNLAB_OPENAI_TIMEOUT", "soon", "number of seconds")]:
        monkeypatch.setenv(name, value)
        with pytest.raises(ValueError, match=f"{name}='{value}'.*{match}"):
            OpenAIBackend("m", "http://127.0.0.1:9/v1")
        monkeypatch.delenv(name)
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        OpenAIBackend("m", "http://127.0.0.1:9/v1", concurrency=0)


@pytest.mark.parametrize(("status", "message", "want"), [
    (400, "prompt must be a string.", True),
    (422, "[{'type': 'string_type', 'loc': ['body', 'prompt'], 'msg': 'Input should be a valid string'}]", True),
    (400, "'prompt' should be a str", True),
    (400, "unknown field 'foo'", False),
    (400, "model must be a string", False),
    (500, "prompt must be a string", False),
])
def test_string_prompt_refusals_are_recognised(status, message, want):
    assert wants_string_prompt(status, message) is want
