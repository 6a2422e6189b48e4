"""The openai backend against `alignlab serve` over loopback (a tiny random Llama), and against stub servers.

Exact paths must match the hf backend called directly (fp32, 1e-4); failure paths (no logprobs, 5xx/429,
other 4xx, unreachable port) must raise ModelError naming the URL; the API key must never leak.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
import uvicorn
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
from alignlab.models.serve import build_app
from alignlab.models.spec import load_model

SECRET = "sk-test-DO-NOT-LEAK-123"
QUESTION = "Q: Which animal barks?\nA:"
CHAT = Conversation.of(("user", "Name a fruit."), prefill="Sure:")


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port in a background thread; yields the /v1 base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started:
        assert time.time() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


def stub(handler: Callable[[str, dict[str, Any], int], Any], models: list[dict] | None = None) -> FastAPI:
    """A stub server: POST /v1/<path> answers ``handler(path, body, call number)``; calls are recorded."""
    app = FastAPI()
    app.state.calls = []
    if models is not None:
        app.get("/v1/models")(lambda: {"object": "list", "data": models})

    @app.post("/v1/{path:path}")
    async def post(path: str, request: Request) -> Any:
        body = await request.json()
        app.state.calls.append((path, body, dict(request.headers)))
        return handler(path, body, len(app.state.calls))

    return app


@pytest.fixture(scope="module")
def hf(tiny_model, tokenizer) -> HFBackend:
    return HFBackend(tiny_model, tokenizer, spec="hf:tiny")


@pytest.fixture(scope="module")
def url(hf) -> Iterator[str]:
    with serving(build_app(Model(hf, cache=None))) as base:
        yield base


@pytest.fixture
def api(url) -> Iterator[OpenAIBackend]:
    backend = OpenAIBackend("hf:tiny", url, api_key=SECRET, max_retries=0)
    yield backend
    backend.close()


def next_logprobs(hf: HFBackend, text: str) -> torch.Tensor:
    with torch.no_grad():
        return hf.model(torch.tensor([hf.encode(text)])).logits[0, -1].float().log_softmax(-1)


def token_text(hf: HFBackend, text: str, token: int) -> str:
    return hf.tokenizer.decode(hf.encode(text) + [token])[len(text):]


# -- exactness against the hf backend -------------------------------------------------------------
def test_score_equals_the_hf_backend_including_a_boundary_merge(api, hf):
    greedy = hf.generate([GenerateRequest(QUESTION, GenerateParams(max_new_tokens=3))])[0].text
    requests = [
        ScoreRequest(QUESTION, (" a dog", " honey", greedy)),
        ScoreRequest("Is water wet?\nA: ", ("Yes", "No", "Maybe so")),  # trailing space merges into "Yes"
        ScoreRequest(Conversation.of(("user", "Hi"), prefill="Hello", format="raw_hh"), (" there", "!")),
        ScoreRequest(CHAT, (" apple", " pear")),  # chat template applied by the server (alignlab extension)
    ]
    got, want = api.score(requests), hf.score(requests)
    assert any(s.boundary_merge for s in want[1].scores)
    assert want[0].scores[2].is_greedy
    for g, w, req in zip(got, want, requests, strict=True):
        assert g.logprobs == pytest.approx(w.logprobs, abs=1e-4)
        for gs, ws, cont in zip(g.scores, w.scores, req.continuations, strict=True):
            assert list(gs.token_logprobs) == pytest.approx(list(ws.token_logprobs), abs=1e-4)
            assert (gs.boundary_merge, gs.is_greedy, len(gs.tokens)) == (ws.boundary_merge, ws.is_greedy,
                                                                         len(ws.tokens))
            if not gs.boundary_merge:
                assert "".join(gs.tokens) == cont


def test_next_token_equals_the_hf_backend_in_and_outside_the_top_k(api, hf):
    lp = next_logprobs(hf, QUESTION)
    best = token_text(hf, QUESTION, int(lp.argmax()))
    ranks = lp.argsort(descending=True).tolist()
    rare = [o for o in (" A", " B") if ranks.index(hf.encode(QUESTION + o)[-1]) >= api.top_logprobs]
    assert len(rare) == 2  # these two come from the score() fallback, `best` from the top-k
    requests = [NextTokenRequest(QUESTION, (best, *rare)), NextTokenRequest(CHAT, (" A", " B", " C"))]
    for g, w in zip(api.next_token(requests), hf.next_token(requests), strict=True):
        assert list(g.probs) == pytest.approx(list(w.probs), abs=1e-4)
        assert list(g.logprobs) == pytest.approx(list(w.logprobs), abs=1e-4)
        assert not g.approximate
    with pytest.raises(ModelError, match="not exactly one token"):
        api.next_token([NextTokenRequest(QUESTION, (" Yes", " absolutely certainly"))])


def test_standard_chat_api_path_reads_top_logprobs_and_gives_minus_inf_outside(url, hf):
    backend = OpenAIBackend("hf:tiny", url, extensions=False, max_retries=0)
    conv = Conversation.of(("user", "Name a fruit."))
    text = hf.render(conv)
    lp = next_logprobs(hf, text)
    order = lp.argsort(descending=True).tolist()
    first, second, rare = (token_text(hf, text, order[i]) for i in (0, 1, 1000))
    got = backend.next_token([NextTokenRequest(conv, (first, second, rare))])[0]
    pair = lp[order[:2]]
    assert list(got.probs[:2]) == pytest.approx(pair.softmax(0).tolist(), abs=1e-4)
    assert list(got.logprobs[:2]) == pytest.approx(pair.tolist(), abs=1e-4)
    assert (got.probs[2], got.logprobs[2]) == (0.0, -math.inf)
    want = hf.generate([GenerateRequest(conv, GenerateParams(max_new_tokens=6))])[0].text
    assert backend.generate([GenerateRequest(conv, GenerateParams(max_new_tokens=6))])[0].text == want


def test_generate_equals_the_hf_backend_greedy_and_seeded(api, hf):
    greedy = GenerateParams(max_new_tokens=8)
    sampled = GenerateParams(max_new_tokens=6, temperature=1.0, n=3, seed=7)
    requests = [GenerateRequest(QUESTION, greedy), GenerateRequest("Hello", greedy),
                GenerateRequest(Conversation.of(("user", "Hi"), format="raw_hh"), greedy),
                GenerateRequest(CHAT, greedy), GenerateRequest("Tell me", sampled)]
    got, want = api.generate(requests), hf.generate(requests)
    for g, w in zip(got, want, strict=True):
        assert [s.text for s in g.samples] == [s.text for s in w.samples]
    assert len({s.text for s in got[-1].samples}) > 1


def test_generated_token_logprobs_sum_to_the_score_of_the_text(api, hf):
    out = api.generate([GenerateRequest(QUESTION, GenerateParams(max_new_tokens=5, logprobs=True))])[0]
    lps = out.samples[0].token_logprobs
    assert lps is not None and len(lps) >= 1
    score = hf.score([ScoreRequest(QUESTION, (out.text,))])[0].scores[0]
    assert not score.boundary_merge
    assert sum(lps) == pytest.approx(score.logprob, abs=1e-4)


def test_fingerprint_names_the_server_model_and_never_the_key(api, url, hf):
    fp = api.fingerprint()
    served = {"id": "hf:tiny", "owned_by": "alignlab", "fingerprint": Model(hf).fingerprint_id}
    assert fp == {"backend": "openai", "base_url": url, "model": "hf:tiny", "server": served}
    assert api.describe()["prefill"] == "alignlab prefill field"
    text = json.dumps(fp) + json.dumps(api.describe()) + repr(api) + repr(Model(api).describe())
    assert SECRET not in text


def test_server_rejects_a_wrong_model_name_at_once(url):
    backend = OpenAIBackend("gpt-x", url, max_retries=3)
    with pytest.raises(ModelError, match=r"HTTP 404.*'gpt-x' not found"):
        backend.generate([GenerateRequest("Hi", GenerateParams(max_new_tokens=2))])
    assert backend.fingerprint()["server"] == {}


def test_a_non_hf_backend_serves_generation_and_refuses_logprobs(api, url, hf):
    with serving(build_app(Model(api))) as proxy:
        backend = OpenAIBackend(api.spec, proxy, max_retries=0)  # served under its spec
        text = backend.generate([GenerateRequest(QUESTION, GenerateParams(max_new_tokens=5))])[0].text
        assert text == hf.generate([GenerateRequest(QUESTION, GenerateParams(max_new_tokens=5))])[0].text
        with pytest.raises(ModelError, match="HTTP 400.*needs an hf model"):
            backend.score([ScoreRequest(QUESTION, (" a dog",))])


# -- stub servers: missing logprobs, retries, errors ----------------------------------------------
def test_server_without_logprobs_fails_score_and_samples_next_token():
    def complete(path: str, body: dict, call: int) -> dict:  # at most 8 choices, whatever n says
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        texts = [" A" if i % 4 else " B" for _ in prompts for i in range(1, min(body.get("n", 1), 8) + 1)]
        return {"choices": [{"index": i, "text": t, "finish_reason": "length", "logprobs": None}
                            for i, t in enumerate(texts)]}

    app = stub(complete)
    with serving(app) as base:
        backend = OpenAIBackend("m", base, max_retries=0, sample_fallback_k=20)
        with pytest.raises(ModelError, match=rf"{base}/completions.*lacks echo \+ logprobs"):
            backend.score([ScoreRequest("Q:", (" yes",))])
        got = backend.next_token([NextTokenRequest("Q:", (" A", " B", " C"))])[0]
        assert backend.fingerprint()["server"] == {}  # no /v1/models route
    assert got.approximate
    assert got.probs == pytest.approx((0.75, 0.25, 0.0))
    assert got.logprobs == pytest.approx((math.log(15 / 20), math.log(5 / 20), -math.inf))
    sampling = [b for _, b, _ in app.state.calls if b.get("temperature") == 1.0]
    assert [b["n"] for b in sampling] == [20, 12, 4]


def test_503_then_429_then_200_is_retried_and_retry_after_respected():
    def flaky(path: str, body: dict, call: int) -> Any:
        if call == 1:
            return JSONResponse({"error": {"message": "overloaded"}}, 503, headers={"Retry-After": "1"})
        if call == 2:
            return JSONResponse({"error": {"message": "slow down"}}, 429)
        return {"choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}]}

    app = stub(flaky)
    with serving(app) as base:
        backend = OpenAIBackend("m", base, max_retries=3, backoff=0.01)
        start = time.monotonic()
        out = backend.generate([GenerateRequest("Hi", GenerateParams(max_new_tokens=2))])[0]
        elapsed = time.monotonic() - start
    assert out.text == "ok" and len(app.state.calls) == 3
    assert 1.0 <= elapsed < 5


def test_other_4xx_fails_at_once_and_persistent_5xx_after_the_retries():
    app = stub(lambda path, body, call: JSONResponse({"error": {"message": "unknown field 'foo'"}}, 400))
    with serving(app) as base:
        with pytest.raises(ModelError, match=rf"{base}/completions.*HTTP 400.*unknown field 'foo'"):
            OpenAIBackend("m", base, max_retries=5).generate([GenerateRequest("Hi")])
        assert len(app.state.calls) == 1
    down = stub(lambda path, body, call: JSONResponse({"detail": "backend down"}, 502))
    with serving(down) as base:
        with pytest.raises(ModelError, match=rf"{base}/completions.*3 attempts; last: HTTP 502; body: .*backend down"):
            OpenAIBackend("m", base, max_retries=2, backoff=0.01).generate([GenerateRequest("Hi")])
        assert len(down.state.calls) == 3


def test_unreachable_server_raises_model_error_naming_the_url_fast():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    base = f"http://127.0.0.1:{port}/v1"
    backend = OpenAIBackend("m", base, max_retries=2, backoff=0.01, timeout=2)
    start = time.monotonic()
    with pytest.raises(ModelError, match=f"{base}/completions unreachable"):
        backend.generate([GenerateRequest("Hi")])
    with pytest.raises(ModelError, match=f"{base}/models unreachable"):
        Model(backend)
    assert time.monotonic() - start < 5


def test_api_key_is_sent_but_never_shown(monkeypatch):
    def reject(path: str, body: dict, call: int) -> JSONResponse:
        return JSONResponse({"error": {"message": f"invalid key {SECRET}"}}, 401)

    app = stub(reject, models=[{"id": "m", "object": "model", "created": 123, "owned_by": "vllm"}])
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with serving(app) as base:
        backend = OpenAIBackend("m", base, max_retries=0)
        with pytest.raises(ModelError) as err:
            backend.generate([GenerateRequest(CHAT, GenerateParams(max_new_tokens=2))])
        fp, described = backend.fingerprint(), backend.describe()
    assert SECRET not in str(err.value) + json.dumps(fp) + json.dumps(described) + repr(backend)
    assert "invalid key ***" in str(err.value)
    assert fp["server"] == {"id": "m", "owned_by": "vllm"}  # "created" is left out: vLLM stamps it per call
    path, body, headers = app.state.calls[0]
    assert headers["authorization"] == f"Bearer {SECRET}"
    # a vLLM server gets the prefill as a final assistant message it is told to continue
    assert path == "chat/completions" and body["messages"][-1] == {"role": "assistant", "content": "Sure:"}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert described["prefill"] == "final assistant message + continue_final_message"


def test_several_base_urls_take_requests_in_turn_and_score_like_one(url, hf):
    def complete(path: str, body: dict, call: int) -> dict:
        return {"choices": [{"index": 0, "text": f"reply {call}", "finish_reason": "stop"}]}

    first, second = stub(complete), stub(complete)
    with serving(first) as a, serving(second) as b:
        backend = load_model(f"openai:m@{a},{b}/", cache=False).backend
        assert backend.base_urls == [a, b] and backend.spec == f"openai:m@{a},{b}"
        results = backend.generate([GenerateRequest(f"Hi {i}", GenerateParams(max_new_tokens=2)) for i in range(6)])
    assert len(first.state.calls) == len(second.state.calls) == 3 and all(r.text.startswith("reply") for r in results)
    # two URLs of the same alignlab server: the same scores as one
    pair = OpenAIBackend("hf:tiny", [url, url], max_retries=0, concurrency=2)
    request = ScoreRequest(QUESTION, (" Dog", " dog", " The dog"))
    assert pair.score([request] * 3)[2].logprobs == pytest.approx(hf.score([request])[0].logprobs, abs=1e-4)


def test_separate_tokenization_is_refused_by_a_text_only_backend(api):
    with pytest.raises(ModelError, match="cannot score with tokenization='separate'"):
        api.score([ScoreRequest(QUESTION, (" Dog",), "separate")])
