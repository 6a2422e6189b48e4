"""The ``openai`` backend: any OpenAI-compatible server (vLLM, llama.cpp, Ollama, ``alignlab serve``).

Spec ``openai:<model>@<base_url>``, the base URL ending in ``/v1``. Plain httpx, no ``openai`` package.

- Prompts: strings and ``raw_hh`` conversations are rendered here and sent to ``/completions``; chat
  conversations go to ``/chat/completions`` so the server applies its own chat template.
- Prefill: on an ``alignlab serve`` server it is sent as the ``prefill`` extension field (exact). Elsewhere it
  becomes a final assistant message, plus ``continue_final_message`` when the server is vLLM; how each server
  treats that message is its own business, and :meth:`describe` says which way was used.
- ``score``: one ``/completions`` call with ``echo, logprobs=1, max_tokens=0`` over ``[context, context +
  continuation_1, ...]``. The continuation's tokens are those after the longest common token prefix of
  the context's and the full text's echoes; ``logprob = lp(full) - lp(context)`` summed after that prefix,
  which is the plain continuation sum without a boundary merge and exact with one (as ``hf.py``).
- ``next_token``: one greedy token with the top-``top_logprobs`` next tokens (``/chat/completions`` with
  ``logprobs, top_logprobs`` for chat conversations, which chat-only servers also serve); an option outside
  the top-k is scored with ``score`` when the server echoes logprobs (else -inf). A server that returns no
  logprobs at all gets ``sample_fallback_k`` samples at temperature 1, counted, flagged ``approximate``.
- The server's ``/models`` entry (its id, owner, root; not ``created``) joins the fingerprint; ``owned_by``
  tells alignlab and vLLM servers apart.
- Chat conversations can be scored only by ``alignlab serve`` (extension: ``messages`` + ``prefill`` list on
  ``/completions``); the OpenAI chat API returns no prompt logprobs.
- Retries: 429, 5xx, timeouts and connection errors, exponential backoff with jitter (``Retry-After`` wins);
  other 4xx fail at once with the server's message. Requests of a batch run on a small thread pool.
- The API key (default ``$OPENAI_API_KEY``) is sent as a bearer token and nowhere else: not in the
  fingerprint, ``describe``, ``repr`` or error messages (server messages are scrubbed of it).
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx

from alignlab.models.base import Backend
from alignlab.models.openai_parse import (
    NoEchoError,
    chat_token_logprobs,
    continuation_score,
    error_message,
    legacy_token_logprobs,
    local_text,
    match_option,
    messages,
    parse_echo,
    retry_after,
)
from alignlab.models.types import (
    Conversation,
    GenerateRequest,
    GenerateResult,
    Generation,
    ModelError,
    NextTokenRequest,
    NextTokenResult,
    Prompt,
    ScoreRequest,
    ScoreResult,
)

A = TypeVar("A")
B = TypeVar("B")
SERVER_ID_KEYS = ("id", "owned_by", "root", "parent", "fingerprint")  # not "created": vLLM stamps it per call


class OpenAIBackend(Backend):
    def __init__(self, model: str, base_url: str, api_key: str | None = None, timeout: float = 60,
                 max_retries: int = 5, sample_fallback_k: int = 20, client: httpx.Client | None = None, *,
                 workers: int = 8, top_logprobs: int = 20, backoff: float = 0.5, max_backoff: float = 30.0,
                 extensions: bool | None = None) -> None:
        """``extensions``: use alignlab serve's extension fields (None: when ``/models`` says so)."""
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"bad base_url {base_url!r}: expected http(s)://host:port/v1")
        self.model_name = model
        self.base_url = base_url.rstrip("/")
        self.spec = f"openai:{model}@{self.base_url}"
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout = timeout
        self.max_retries = max_retries
        self.sample_fallback_k = sample_fallback_k
        self.workers = workers
        self.top_logprobs = top_logprobs
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.extensions = extensions
        self._client = client or httpx.Client(timeout=timeout)
        self._owns_client = client is None
        self._info: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.spec!r})"

    # -- identity ----------------------------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        info = self._server_info()
        return {"backend": "openai", "base_url": self.base_url, "model": self.model_name,
                "server": {k: info[k] for k in SERVER_ID_KEYS if k in info}}

    def describe(self) -> dict[str, Any]:
        info = self._info or {}
        return {"spec": self.spec, "backend": "openai", "base_url": self.base_url, "model": self.model_name,
                "owned_by": info.get("owned_by"), "prefill": self._prefill_mode()}

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def _server_info(self) -> dict[str, Any]:
        """The ``/models`` entry for this model ({} when the server lists none); fetched once."""
        with self._lock:
            if self._info is None:
                data = self._request("GET", "/models", allow=(404, 405))
                entries = data.get("data") if isinstance(data, dict) else None
                found = [e for e in entries or [] if isinstance(e, dict) and e.get("id") == self.model_name]
                self._info = found[0] if found else {}
        return self._info

    def _alignlab(self) -> bool:
        if self.extensions is not None:
            return self.extensions
        return self._server_info().get("owned_by") == "alignlab"

    def _prefill_mode(self) -> str:
        owner = (self._info or {}).get("owned_by")
        if self.extensions or (self.extensions is None and owner == "alignlab"):
            return "alignlab prefill field"
        if owner == "vllm":
            return "final assistant message + continue_final_message"
        return "final assistant message"

    # -- HTTP with retries -------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict[str, Any] | None = None,
                 allow: tuple[int, ...] = ()) -> dict[str, Any]:
        """JSON of a 2xx answer ({} for a status in ``allow``); retries transient failures."""
        url = self.base_url + path
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        last = ""
        for attempt in range(self.max_retries + 1):
            wait: float | None = None
            try:
                resp = self._client.request(method, url, json=body, headers=headers)
            except httpx.TimeoutException:
                last = "timed out"
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
            else:
                if resp.status_code < 300:
                    try:
                        return resp.json()
                    except ValueError:
                        text = resp.text[:200]
                        raise ModelError(self._scrub(f"{url} returned non-JSON: {text!r}")) from None
                if resp.status_code in allow:
                    return {}
                message = error_message(resp)
                if resp.status_code != 429 and resp.status_code < 500:
                    hint = " (does the base URL end in /v1?)" if resp.status_code == 404 and not \
                        self.base_url.endswith("/v1") else ""
                    raise ModelError(self._scrub(f"{url} rejected the request (HTTP {resp.status_code}): "
                                                 f"{message}{hint}"))
                last = f"HTTP {resp.status_code}: {message}"
                wait = retry_after(resp.headers.get("retry-after"))
            if attempt < self.max_retries:
                time.sleep(wait if wait is not None else self._delay(attempt))
        attempts = self.max_retries + 1
        raise ModelError(self._scrub(f"{url} unreachable or failing after {attempts} attempts: {last}"))

    def _delay(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2 ** attempt) * random.uniform(0.5, 1.0)

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _map(self, fn: Callable[[A], B], items: Sequence[A]) -> list[B]:
        if len(items) <= 1 or self.workers <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(min(self.workers, len(items))) as pool:
            return list(pool.map(fn, items))

    def _choices(self, path: str, body: dict[str, Any], n: int) -> list[dict[str, Any]]:
        """``n`` choices in order, asking again (next seed) when a server returns fewer than asked."""
        out: list[dict[str, Any]] = []
        for round_ in range(n):
            data = self._request("POST", path, {**body, "n": n - len(out),
                                                "seed": body.get("seed", 0) + round_})
            got = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
            if not got:
                raise ModelError(f"{self.base_url}{path} returned no choices")
            out.extend(got)
            if len(out) >= n:
                break
        return out[:n]

    # -- prompt bodies -----------------------------------------------------------------------
    def _completion_prompt(self, prompt: Prompt, suffixes: Sequence[str] | None = None
                           ) -> dict[str, Any] | None:
        """``/completions`` prompt fields (one prompt per suffix); None if only the chat API takes it."""
        text = local_text(prompt)
        if text is not None:
            return {"prompt": text if suffixes is None else [text + s for s in suffixes]}
        if not self._alignlab():
            return None
        assert isinstance(prompt, Conversation)
        prefill = prompt.prefill if suffixes is None else [prompt.prefill + s for s in suffixes]
        return {"messages": messages(prompt), "prefill": prefill}

    def _chat_prompt(self, conv: Conversation) -> dict[str, Any]:
        body: dict[str, Any] = {"messages": messages(conv)}
        if conv.prefill and self._alignlab():
            body["prefill"] = conv.prefill
        elif conv.prefill:
            body["messages"].append({"role": "assistant", "content": conv.prefill})
            if self._server_info().get("owned_by") == "vllm":
                body.update(continue_final_message=True, add_generation_prompt=False)
        return body

    # -- generate ----------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResult]:
        return self._map(self._generate_one, requests)

    def _generate_one(self, req: GenerateRequest) -> GenerateResult:
        p = req.params
        body: dict[str, Any] = {"model": self.model_name, "max_tokens": p.max_new_tokens,
                                "temperature": p.temperature, "top_p": p.top_p, "seed": p.seed}
        if p.stop:
            body["stop"] = list(p.stop)
        if p.top_k > 0:
            body["top_k"] = p.top_k  # not in OpenAI's API; vLLM, llama.cpp and alignlab serve take it
        text = local_text(req.prompt)
        if text is not None:
            body.update(prompt=text, **({"logprobs": 1} if p.logprobs else {}))
            samples = [Generation(c.get("text") or "", c.get("finish_reason") or "length",
                                  legacy_token_logprobs(c) if p.logprobs else None)
                       for c in self._choices("/completions", body, p.n)]
        else:
            assert isinstance(req.prompt, Conversation)
            body.update(self._chat_prompt(req.prompt), **({"logprobs": True} if p.logprobs else {}))
            samples = [Generation((c.get("message") or {}).get("content") or "",
                                  c.get("finish_reason") or "length",
                                  chat_token_logprobs(c) if p.logprobs else None)
                       for c in self._choices("/chat/completions", body, p.n)]
        return GenerateResult(tuple(samples))

    # -- score -------------------------------------------------------------------------------
    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        return self._map(self._score_one, requests)

    def _score_one(self, req: ScoreRequest) -> ScoreResult:
        suffixes = ["", *req.continuations]
        fields = self._completion_prompt(req.context, suffixes)
        if fields is None:
            raise ModelError(f"{self.base_url} cannot score a chat conversation: the OpenAI chat API returns "
                             "no prompt logprobs. Use a string prompt or Conversation(format='raw_hh'), or "
                             "serve the model with `alignlab serve`")
        url = f"{self.base_url}/completions"
        data = self._request("POST", "/completions", {"model": self.model_name, **fields, "max_tokens": 0,
                                                      "echo": True, "logprobs": 1, "temperature": 0})
        choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
        texts = fields["prompt"] if "prompt" in fields else [None] * len(suffixes)
        echoes = [parse_echo(c, t, url) for c, t in zip(choices, texts, strict=False)]
        if len(echoes) != len(suffixes):
            raise ModelError(f"{url} returned {len(choices)} choices for a list of {len(suffixes)} prompts")
        return ScoreResult(tuple(continuation_score(echoes[0], e, url) for e in echoes[1:]))

    # -- next_token --------------------------------------------------------------------------
    def next_token(self, requests: Sequence[NextTokenRequest]) -> list[NextTokenResult]:
        return self._map(self._next_token_one, requests)

    def _next_token_one(self, req: NextTokenRequest) -> NextTokenResult:
        top = self._top_next_tokens(req.prompt)
        if top is None:
            return self._sampled_next_token(req)
        lps = [top.get(o) for o in req.options]
        missing = [i for i, lp in enumerate(lps) if lp is None]
        if missing and self._completion_prompt(req.prompt) is not None:
            try:
                scored = self._score_one(ScoreRequest(req.prompt, tuple(req.options[i] for i in missing)))
            except NoEchoError:
                scored = None
            for i, s in zip(missing, scored.scores if scored else [], strict=scored is not None):
                if len(s.tokens) != 1 or s.boundary_merge:
                    raise ModelError(f"next_token option {req.options[i]!r} is not exactly one token after "
                                     f"this prompt for {self.spec}; use score() for multi-token answers")
                lps[i] = s.logprob
        values = [-math.inf if lp is None else lp for lp in lps]
        if all(v == -math.inf for v in values):
            raise ModelError(f"{self.base_url}: none of the options {list(req.options)} is among the "
                             f"server's top-{self.top_logprobs} next tokens, and the server cannot score "
                             "them (no echo)")
        top_value = max(values)
        weights = [math.exp(v - top_value) for v in values]
        return NextTokenResult(tuple(w / sum(weights) for w in weights), tuple(values))

    def _top_next_tokens(self, prompt: Prompt) -> dict[str, float] | None:
        """Top next-token logprobs after ``prompt`` by token text; None when the server gives no logprobs."""
        base = {"model": self.model_name, "max_tokens": 1, "temperature": 0, "seed": 0}
        fields = self._completion_prompt(prompt)
        if fields is not None:
            choice = self._choices("/completions", {**base, **fields, "logprobs": self.top_logprobs}, 1)[0]
            tops = (choice.get("logprobs") or {}).get("top_logprobs") or []
            return dict(tops[0]) if tops and tops[0] else None
        assert isinstance(prompt, Conversation)
        body = {**base, **self._chat_prompt(prompt), "logprobs": True,
                "top_logprobs": min(self.top_logprobs, 20)}
        choice = self._choices("/chat/completions", body, 1)[0]
        content = (choice.get("logprobs") or {}).get("content") or []
        if not content or not content[0].get("top_logprobs"):
            return None
        out: dict[str, float] = {}
        for entry in [*content[0]["top_logprobs"], content[0]]:
            out.setdefault(entry["token"], entry["logprob"])
        return out

    def _sampled_next_token(self, req: NextTokenRequest) -> NextTokenResult:
        k = self.sample_fallback_k
        base = {"model": self.model_name, "max_tokens": 1, "temperature": 1.0, "seed": 0}
        fields = self._completion_prompt(req.prompt)
        if fields is not None:
            texts = [c.get("text") or "" for c in self._choices("/completions", {**base, **fields}, k)]
        else:
            assert isinstance(req.prompt, Conversation)
            choices = self._choices("/chat/completions", {**base, **self._chat_prompt(req.prompt)}, k)
            texts = [(c.get("message") or {}).get("content") or "" for c in choices]
        counts = [0] * len(req.options)
        for text in texts:
            hit = match_option(text, req.options)
            if hit is not None:
                counts[hit] += 1
        if not sum(counts):
            raise ModelError(f"{self.base_url} returns no logprobs, and none of {k} samples at temperature 1 "
                             f"matched an option of {list(req.options)} (got e.g. {texts[:3]})")
        return NextTokenResult(tuple(c / sum(counts) for c in counts),
                               tuple(math.log(c / k) if c else -math.inf for c in counts), approximate=True)
