"""`alignlab serve` survives its clients: request limits, the bounded queue (429 + Retry-After), cancellation of
abandoned requests, the API key, the loopback rule, and a prompt exit on SIGTERM (a real subprocess)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import openai
import pytest
from typer.testing import CliRunner

from alignlab.cli import app as cli
from alignlab.models import Model
from alignlab.models.hf import HFBackend
from alignlab.models.serve import Limits, build_app, check_access
from tests.test_serve import PROMPT, sdk, serving

KEY = "sk-serve-test-DO-NOT-LOG-42"


@pytest.fixture(scope="module")
def hf(tiny_model, tokenizer) -> HFBackend:
    return HFBackend(tiny_model, tokenizer, spec="hf:tiny")  # max_position_embeddings: 1024


def wait_until(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def give_up(url: str) -> None:
    with pytest.raises(httpx.TimeoutException):
        httpx.post(url, json={"prompt": "x", "max_tokens": 1000}, timeout=1.5)


def test_max_tokens_prompt_length_and_n_are_limited(hf):
    with serving(build_app(Model(hf), Limits(max_tokens=40, max_n=3))) as url:
        client = sdk(url, timeout=10)
        started = time.monotonic()
        with pytest.raises(openai.BadRequestError, match="--max-tokens-limit 40"):
            client.completions.create(model="hf:tiny", prompt=PROMPT, max_tokens=10 ** 8)
        with pytest.raises(openai.BadRequestError, match="--max-n 3"):
            client.completions.create(model="hf:tiny", prompt=PROMPT, max_tokens=2, n=4)
        assert time.monotonic() - started < 2  # refused at once, nothing generated
        reply = client.chat.completions.create(model="hf:tiny", messages=[{"role": "user", "content": "Hi"}])
        assert reply.usage.completion_tokens <= 40  # the default reply length respects the limit too
    with serving(build_app(Model(hf))) as url:  # no server limit: the context (1024 tokens) is the bound
        client = sdk(url, timeout=10)
        with pytest.raises(openai.BadRequestError, match="context"):
            client.completions.create(model="hf:tiny", prompt=PROMPT, max_tokens=10 ** 8)
        n_prompt = len(hf.encode(PROMPT))
        with pytest.raises(openai.BadRequestError, match=f"prompt has {n_prompt} .* to {1024 - n_prompt} or less"):
            client.completions.create(model="hf:tiny", prompt=PROMPT, max_tokens=1024 - n_prompt + 1)
        with pytest.raises(openai.BadRequestError, match="context"):  # a 400, not a stream that fails
            client.completions.create(model="hf:tiny", prompt=PROMPT, max_tokens=1024 - n_prompt + 1, stream=True)
        with pytest.raises(openai.BadRequestError, match="prompt is 1100 tokens: this model's context is 1024"):
            client.completions.create(model="hf:tiny", prompt=[7] * 1100, max_tokens=0)
        fits = client.completions.create(model="hf:tiny", prompt=[7] * 1000, max_tokens=24, temperature=0)
        assert fits.usage.prompt_tokens == 1000 and fits.choices[0].finish_reason == "length"


def test_a_full_queue_answers_429_with_retry_after_and_a_dropped_stream_frees_the_server(hf):
    app = build_app(Model(hf), Limits(max_queue=1))
    engine = app.state.engine
    with serving(app) as url:
        client = sdk(url, timeout=30)
        stream = client.completions.create(model="hf:tiny", prompt=PROMPT, max_tokens=1000, n=4, stream=True)
        next(iter(stream))  # running
        queued = threading.Thread(target=give_up, args=(f"{url}/completions",), daemon=True)
        queued.start()  # waits in the queue, then its client gives up
        wait_until(lambda: engine.queued() == 1)
        full = httpx.post(f"{url}/completions", json={"prompt": PROMPT, "max_tokens": 2}, timeout=10)
        assert full.status_code == 429 and int(full.headers["Retry-After"]) >= 1
        assert "busy" in full.json()["error"]["message"] and full.json()["error"]["code"] == "rate_limit_exceeded"
        with pytest.raises(openai.RateLimitError):
            client.completions.create(model="hf:tiny", prompt=PROMPT, max_tokens=2)
        queued.join(10)
        wait_until(lambda: engine.queued() == 0, seconds=2)  # the client that gave up holds no place any more
        stream.close()  # the streaming client goes away mid-generation
        started = time.monotonic()
        reply = client.completions.create(model="hf:tiny", prompt=PROMPT, max_tokens=4)
        assert reply.choices[0].text and time.monotonic() - started < 5  # the 4 x 1000 tokens took ~20 s
    assert engine.counts["cancelled"] == 2 and engine.counts["refused"] == 2


def test_a_client_that_times_out_stops_its_generation(hf):
    app = build_app(Model(hf))
    with serving(app) as url:
        with pytest.raises(openai.APITimeoutError):
            sdk(url, timeout=0.5).completions.create(model="hf:tiny", prompt=PROMPT, max_tokens=1000, n=4)
        started = time.monotonic()
        reply = sdk(url).chat.completions.create(model="hf:tiny", messages=[{"role": "user", "content": "Hi"}],
                                                 max_tokens=4)
        assert reply.choices[0].message.content and time.monotonic() - started < 5
        wait_until(lambda: not app.state.engine.busy())
    assert app.state.engine.counts == {"done": 1, "cancelled": 1, "error": 0, "refused": 0}


def test_the_api_key_is_required_and_never_echoed(hf):
    with serving(build_app(Model(hf), api_key=KEY)) as url:
        for key in ("wrong", KEY[:-1]):
            with pytest.raises(openai.AuthenticationError) as err:
                sdk(url, key=key).models.list()
            assert KEY not in str(err.value.body) and "Bearer" in err.value.body["message"]
        assert httpx.post(f"{url}/completions", json={"prompt": "x"}).status_code == 401
        assert [m.id for m in sdk(url, key=KEY).models.list()] == ["hf:tiny"]
        assert sdk(url, key=KEY).completions.create(model="hf:tiny", prompt="x", max_tokens=2).choices


def test_only_loopback_is_served_without_a_key():
    for host in ("127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"):
        assert check_access(host, None, False) is None
    for host in ("0.0.0.0", "192.168.1.5", "::", "example.org"):
        with pytest.raises(ValueError, match="--api-key"):
            check_access(host, None, False)
        assert check_access(host, KEY, False) is None
        assert "without an API key" in check_access(host, None, True)
    result = CliRunner().invoke(cli, ["serve", "hf:/nonexistent/model", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "not a loopback address" in result.output  # refused before loading
    assert "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["serve", "hf:/nonexistent/model", "--max-queue", "-1"])
    assert result.exit_code == 2 and "--max-queue must be at least 0" in result.output


def test_sigterm_stops_a_busy_server_within_seconds_and_the_key_stays_out_of_its_logs(tiny_dir, tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    log = tmp_path / "serve.log"
    env = {**os.environ, "ALIGNLAB_API_KEY": KEY, "ALIGNLAB_THREADS": "1"}
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "alignlab.cli", "serve", f"hf:{tiny_dir}", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until(lambda: proc.poll() is None and _up(url), seconds=60)
        client = sdk(url, key=KEY, timeout=30)
        stream = client.completions.create(model=f"hf:{tiny_dir}", prompt=PROMPT, max_tokens=1000, n=4, stream=True)
        next(iter(stream))  # busy for ~20 s
        proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "Finished server process" in log.read_text(), seconds=2)  # not after uvicorn's grace
        with pytest.raises((openai.APIError, httpx.HTTPError)):
            list(stream)  # ends with an error, not with 4 x 1000 tokens
        assert proc.wait(timeout=15) == 0  # then the interpreter's own teardown (~2 s with torch loaded)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text()
    assert "serving" in text and KEY not in text


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
