"""`alignlab serve` as the official `openai` SDK (and raw HTTP) uses it, over loopback with a tiny random Llama:
streaming, usage, the developer role, refused parameters, bad requests, token-id prompts."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import openai
import pytest
import uvicorn
from fastapi import FastAPI

from alignlab.models import Conversation, Model
from alignlab.models.hf import HFBackend
from alignlab.models.serve import build_app

PROMPT = "Q: Which animal barks?\nA:"
CHAT = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Name a fruit."}]


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` on a free loopback port in a background thread; yields the /v1 base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def sdk(url: str, timeout: float = 30, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=timeout)


@pytest.fixture(scope="module")
def hf(tiny_model, tokenizer) -> HFBackend:
    return HFBackend(tiny_model, tokenizer, spec="hf:tiny")


@pytest.fixture(scope="module")
def url(hf) -> Iterator[str]:
    with serving(build_app(Model(hf))) as base:
        yield base


@pytest.fixture(scope="module")
def client(url) -> openai.OpenAI:
    return sdk(url)


def complete(client: openai.OpenAI, **kwargs):
    return client.completions.create(**{"model": "hf:tiny", "prompt": PROMPT, "max_tokens": 12, **kwargs})


def chat(client: openai.OpenAI, **kwargs):
    return client.chat.completions.create(**{"model": "hf:tiny", "messages": CHAT, "max_tokens": 12, **kwargs})


# -- streaming ----------------------------------------------------------------------------------------------------
def test_streamed_completion_concatenates_to_the_unstreamed_text(client):
    plain = complete(client, max_tokens=24, temperature=0)
    chunks = list(complete(client, max_tokens=24, temperature=0, stream=True, stream_options={"include_usage": True}))
    pieces = [c.choices[0].text for c in chunks if c.choices]
    assert len([p for p in pieces if p]) > 5  # token by token, not one block
    assert "".join(pieces) == plain.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == plain.choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage == plain.usage

    sampled = complete(client, max_tokens=16, temperature=1.0, seed=7)  # same per-sample seed when streamed
    streamed = complete(client, max_tokens=16, temperature=1.0, seed=7, stream=True)
    assert "".join(c.choices[0].text for c in streamed) == sampled.choices[0].text


def test_a_stop_string_is_never_streamed_even_in_part(client):
    text = complete(client, max_tokens=24, temperature=0).choices[0].text
    stop = text[8:14]
    plain = complete(client, max_tokens=24, temperature=0, stop=[stop]).choices[0]
    pieces = [c.choices[0].text for c in complete(client, max_tokens=24, temperature=0, stop=[stop], stream=True)]
    assert plain.text == text[:text.index(stop)] and plain.finish_reason == "stop"
    assert "".join(pieces) == plain.text


def test_streamed_chat_opens_with_the_role_and_equals_the_unstreamed_reply(client, url):
    plain = chat(client, temperature=0, n=2)
    chunks = list(chat(client, temperature=0, n=2, stream=True))
    for index in (0, 1):
        deltas = [c.choices[0] for c in chunks if c.choices[0].index == index]
        assert deltas[0].delta.role == "assistant"
        assert "".join(d.delta.content or "" for d in deltas) == plain.choices[index].message.content
        assert deltas[-1].finish_reason == plain.choices[index].finish_reason
    raw = httpx.post(f"{url}/chat/completions", json={"messages": CHAT, "max_tokens": 3, "stream": True}, timeout=30)
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = [line for line in raw.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]" and all(e.startswith("data: {") for e in events[:-1])


def test_a_server_over_a_non_hf_backend_streams_whole_samples_and_refuses_token_ids(url, client):
    from alignlab.models.openai_backend import OpenAIBackend

    with serving(build_app(Model(OpenAIBackend("hf:tiny", url, max_retries=0)))) as proxy:
        outer = sdk(proxy)
        spec = outer.models.list().data[0].id
        plain = complete(outer, model=spec, temperature=0).choices[0].text
        assert plain == complete(client, temperature=0).choices[0].text
        assert "".join(c.choices[0].text for c in complete(outer, model=spec, temperature=0, stream=True)) == plain
        with pytest.raises(openai.BadRequestError, match="token-id prompts need an hf model"):
            complete(outer, model=spec, prompt=[1, 2, 3])


# -- usage, roles ----------------------------------------------------------------------------------------------
def test_usage_counts_the_prompts_tokens_and_the_generated_tokens(client, hf):
    prompts = [PROMPT, "Hello there, how"]
    out = complete(client, prompt=prompts, n=2, temperature=1.0, seed=1)
    want_prompt = sum(len(hf.encode(p)) for p in prompts)  # the tokenizer's count, once per prompt (not per sample)
    assert [c.finish_reason for c in out.choices] == ["length"] * 4  # so each sample generated max_tokens tokens
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.total_tokens) == \
        (want_prompt, 4 * 12, want_prompt + 4 * 12)

    reply = chat(client, temperature=0)
    streamed = list(chat(client, temperature=0, stream=True, stream_options={"include_usage": True}))
    rendered = hf.render(Conversation.of(*[(m["role"], m["content"]) for m in CHAT]))
    assert reply.choices[0].finish_reason == "length"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (len(hf.encode(rendered)), 12)
    assert streamed[-1].usage == reply.usage and not streamed[-1].choices
    zero = complete(client, max_tokens=0, echo=True, logprobs=0)
    assert (zero.usage.prompt_tokens, zero.usage.completion_tokens) == (len(hf.encode(PROMPT)), 0)


def test_the_developer_role_is_read_as_system(client):
    developer = [{"role": "developer", "content": CHAT[0]["content"]}, CHAT[1]]
    got, want = chat(client, messages=developer, temperature=0), chat(client, temperature=0)
    assert got.choices[0].message.content == want.choices[0].message.content
    assert got.usage == want.usage


# -- refused parameters and bad requests ---------------------------------------------------------------------
@pytest.mark.parametrize(("route", "fields", "param"), [
    ("completions", {"presence_penalty": 0.5}, "presence_penalty"),
    ("completions", {"frequency_penalty": -1.0}, "frequency_penalty"),
    ("completions", {"logit_bias": {"42": 5}}, "logit_bias"),
    ("completions", {"best_of": 3}, "best_of"),
    ("completions", {"suffix": " end"}, "suffix"),
    ("completions", {"guided_json": {}}, "guided_json"),
    ("chat", {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
    ("chat", {"response_format": {"type": "json_object"}}, "response_format"),
    ("chat", {"reasoning_effort": "low"}, "reasoning_effort"),
])
def test_an_unsupported_parameter_is_refused_by_name(client, route, fields, param):
    call = complete if route == "completions" else chat
    known = {k: v for k, v in fields.items() if k not in ("guided_json", "reasoning_effort")}
    with pytest.raises(openai.BadRequestError) as err:
        call(client, **known, extra_body={k: v for k, v in fields.items() if k not in known})
    assert err.value.body["param"] == param and "not supported" in err.value.body["message"]


def test_parameters_at_their_neutral_values_are_accepted(client):
    neutral = complete(client, temperature=0, presence_penalty=0, frequency_penalty=0, logit_bias={}, best_of=1,
                       user="someone")
    assert neutral.choices[0].text == complete(client, temperature=0).choices[0].text
    assert chat(client, temperature=0, tools=[], response_format={"type": "text"}).choices[0].message.content


@pytest.mark.parametrize(("route", "body", "status", "says"), [
    ("completions", b"{not json", 400, "not valid JSON"),
    ("completions", b"[1, 2]", 400, "JSON object"),
    ("completions", b'{"max_tokens": 2}', 400, "prompt is required"),
    ("completions", b'{"prompt": 5}', 400, "prompt must be a string"),
    ("completions", b'{"prompt": "hi", "logprobs": -1}', 400, "logprobs"),
    ("completions", b'{"prompt": "hi", "max_tokens": -3}', 400, "max_tokens"),
    ("completions", b'{"prompt": "hi", "model": "gpt-4o"}', 404, "'gpt-4o' not found"),
    ("chat/completions", b'{"max_tokens": 2}', 400, "messages is required"),
    ("chat/completions", b'{"messages": []}', 400, "messages"),
    ("chat/completions", b'{"messages": [{"role": "tool", "content": "x"}]}', 400, "role"),
    ("chat/completions", b'{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}', 400, "image_url"),
    ("chat/completions", b'{"messages": [{"role": "user", "content": "hi"}], "stream": true, "logprobs": true}',
     400, "stream"),
])
def test_a_bad_request_gets_a_4xx_in_openais_error_shape_and_the_server_stays_up(url, client, route, body, status,
                                                                                   says):
    answer = httpx.post(f"{url}/{route}", content=body, headers={"content-type": "application/json"}, timeout=30)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert says in error["message"] and error["type"] == "invalid_request_error"
    assert complete(client, max_tokens=2).choices[0].text  # still serving


# -- token-id prompts ----------------------------------------------------------------------------------------------
def test_token_id_prompts_equal_their_text_and_score_the_given_ids(client, hf):
    ids = hf.encode(PROMPT)
    other = hf.encode("Hello there")
    assert complete(client, prompt=ids, temperature=0).choices[0].text == \
        complete(client, prompt=PROMPT, temperature=0).choices[0].text
    both = complete(client, prompt=[ids, other], temperature=0)
    assert [c.text for c in both.choices] == [complete(client, prompt=p, temperature=0).choices[0].text
                                              for p in (PROMPT, "Hello there")]
    assert both.usage.prompt_tokens == len(ids) + len(other)
    # lm-evaluation-harness local-completions: token ids, echo, logprobs, max_tokens 0 or 1
    by_ids = complete(client, prompt=[ids], max_tokens=0, echo=True, logprobs=1).choices[0]
    by_text = complete(client, prompt=PROMPT, max_tokens=0, echo=True, logprobs=1).choices[0]
    assert by_ids.text == PROMPT and by_ids.logprobs.tokens == by_text.logprobs.tokens
    assert by_ids.logprobs.token_logprobs == pytest.approx(by_text.logprobs.token_logprobs, abs=1e-5)
    odd = [other[1], other[0]]  # ids the tokenizer would never produce for their text still score as given
    scored = complete(client, prompt=odd, max_tokens=1, echo=True, logprobs=1).choices[0]
    assert len(scored.logprobs.tokens) == 3 and scored.logprobs.token_logprobs[0] is None
    with pytest.raises(openai.BadRequestError, match="outside the vocabulary"):
        complete(client, prompt=[len(hf.tokenizer) + 5])
