"""The ``openai`` backend: any OpenAI-compatible server (vLLM, llama.cpp, Ollama, ``alignlab serve``).

Spec ``openai:<model>@<base_url>``, the base URL ending in ``/v1``. Plain httpx, no ``openai`` package.
``openai:<model>@<url1>,<url2>,...`` names replicas of one model: requests go to them in turn (``RoundRobin``).

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
- ``ScoreRequest.tokenization="separate"`` is refused: it needs token ids tokenised here, and we have no tokenizer.
- Chat conversations can be scored only by ``alignlab serve`` (extension: ``messages`` + ``prefill`` list on
  ``/completions``); the OpenAI chat API returns no prompt logprobs.
- HTTP (``openai_http``): 429, 5xx, timeouts, dropped connections and 2xx answers of the wrong shape are
  retried with backoff (``Retry-After`` wins), other 4xx fail at once with the server's message. At most
  ``concurrency`` requests are in flight (``$ALIGNLAB_OPENAI_CONCURRENCY``, default 8), each with ``timeout``
  seconds (``$ALIGNLAB_OPENAI_TIMEOUT``, default 60); timeouts lower that limit instead of failing the run.
- A server that takes only one string prompt per request (``transformers serve``: "prompt must be a string")
  is detected on its first refusal of a list; from then on ``score`` sends one prompt per request.
- The API key (default ``$OPENAI_API_KEY``) is sent as a bearer token and nowhere else: not in the
  fingerprint, ``describe``, ``repr`` or error messages (server messages are scrubbed of it).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import httpx

from alignlab.models.base import Backend
from alignlab.models.openai_http import Http, Rejected, RoundRobin, log
from alignlab.models.openai_parse import (
    Echo,
    Malformed,
    NoEchoError,
    chat_text,
    chat_token_logprobs,
    choices_of,
    continuation_score,
    legacy_token_logprobs,
    local_text,
    match_option,
    messages,
    parse_echo,
    top_next_chat,
    top_next_legacy,
    wants_string_prompt,
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

T = TypeVar("T")
SERVER_ID_KEYS = ("id", "owned_by", "root", "parent", "fingerprint")  # not "created": vLLM stamps it per call


class OpenAIBackend(Backend):
    def __init__(self, model: str, base_url: str | Sequence[str], api_key: str | None = None,
                 timeout: float | None = None, max_retries: int = 5, sample_fallback_k: int = 20,
                 client: httpx.Client | None = None, *, concurrency: int | None = None, top_logprobs: int = 20,
                 backoff: float = 0.5, max_backoff: float = 30.0, extensions: bool | None = None) -> None:
        """``base_url``: one server, or several of the same model that take requests in turn (round-robin).
        ``extensions``: use alignlab serve's extension fields (None: when ``/models`` says so).

        ``timeout`` (seconds per request) and ``concurrency`` (requests in flight at most, per server) default to
        ``$ALIGNLAB_OPENAI_TIMEOUT`` and ``$ALIGNLAB_OPENAI_CONCURRENCY``, else 60 and 8.
        """
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        bad = [u for u in urls if not u.startswith(("http://", "https://"))]
        if not urls or bad:
            raise ValueError(f"bad base_url {(bad or [''])[0]!r}: expected http(s)://host:port/v1")
        self.model_name = model
        self.base_urls = [u.rstrip("/") for u in urls]
        self.base_url = ",".join(self.base_urls)  # one URL: the URL itself (fingerprint and messages unchanged)
        self.spec = f"openai:{model}@{self.base_url}"
        api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        servers = [Http(u, api_key, timeout=timeout, concurrency=concurrency, max_retries=max_retries,
                        backoff=backoff, max_backoff=max_backoff, client=client) for u in self.base_urls]
        self.http: Http | RoundRobin = servers[0] if len(servers) == 1 else RoundRobin(servers)
        self.timeout, self.concurrency, self.max_retries = self.http.timeout, self.http.concurrency, max_retries
        self.sample_fallback_k = sample_fallback_k
        self.top_logprobs = top_logprobs
        self.extensions = extensions
        self.string_prompts_only = False  # set once the server refuses a list of prompts
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
        self.http.close()

    def _server_info(self) -> dict[str, Any]:
        """The ``/models`` entry for this model ({} when the server lists none); fetched once."""
        with self._lock:
            if self._info is None:
                data = self.http.request("GET", "/models", allow=(404, 405), parse=_models_entries)
                found = [e for e in data or [] if e.get("id") == self.model_name]
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

    # -- requests ----------------------------------------------------------------------------
    def _choices(self, path: str, body: dict[str, Any], n: int, convert: Callable[[dict[str, Any]], T]) -> list[T]:
        """``n`` converted choices in order, asking again (next seed) when a server returns fewer than asked.

        ``convert`` runs inside the retry loop: a choice it finds malformed makes the request be retried.
        """
        key = "text" if path == "/completions" else "message"
        out: list[T] = []
        for round_ in range(n):
            out += self.http.request("POST", path, {**body, "n": n - len(out), "seed": body.get("seed", 0) + round_},
                                     parse=lambda data: [convert(c) for c in choices_of(data, key)])
            if len(out) >= n:
                break
        return out[:n]

    def _echoes(self, fields: dict[str, Any], count: int) -> list[Echo]:
        """Echoed logprobs of ``count`` prompts (``fields``: a prompt list, or messages + prefill list)."""
        url = f"{self.base_url}/completions"
        body = {"model": self.model_name, "max_tokens": 0, "echo": True, "logprobs": 1, "temperature": 0}

        def echoes(texts: list[str | None]) -> Callable[[Any], list[Echo]]:
            return lambda data: [parse_echo(c, t, url)
                                 for c, t in zip(choices_of(data, "text", len(texts)), texts, strict=True)]

        prompts = fields.get("prompt")
        if prompts is None:
            return self.http.request("POST", "/completions", {**body, **fields}, parse=echoes([None] * count))
        if not self.string_prompts_only:
            try:
                return self.http.request("POST", "/completions", {**body, "prompt": prompts}, parse=echoes(prompts))
            except Rejected as e:
                if not wants_string_prompt(e.status, e.detail):
                    raise
                if not self.string_prompts_only:  # another thread may have found out first
                    self.string_prompts_only = True
                    log.warning("%s takes one string prompt per request (%s): scoring sends one prompt per "
                                "request", url, e.detail)
        return [self.http.request("POST", "/completions", {**body, "prompt": p}, parse=echoes([p]))[0]
                for p in prompts]

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
        return self.http.map(self._generate_one, requests)

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
            samples = self._choices("/completions", body, p.n, lambda c: Generation(
                c["text"], _finish(c), legacy_token_logprobs(c) if p.logprobs else None))
        else:
            assert isinstance(req.prompt, Conversation)
            body.update(self._chat_prompt(req.prompt), **({"logprobs": True} if p.logprobs else {}))
            samples = self._choices("/chat/completions", body, p.n, lambda c: Generation(
                chat_text(c), _finish(c), chat_token_logprobs(c) if p.logprobs else None))
        return GenerateResult(tuple(samples))

    # -- score -------------------------------------------------------------------------------
    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        return self.http.map(self._score_one, requests)

    def _score_one(self, req: ScoreRequest) -> ScoreResult:
        if req.tokenization != "joint":
            raise ModelError(f"{self.spec} cannot score with tokenization={req.tokenization!r}: that needs the "
                             "context and continuation tokenised apart and sent as token ids, and this backend "
                             "has no tokenizer (sends text). Use tokenization 'joint', or an hf:/vllm: model")
        suffixes = ["", *req.continuations]
        fields = self._completion_prompt(req.context, suffixes)
        if fields is None:
            raise ModelError(f"{self.base_url} cannot score a chat conversation: the OpenAI chat API returns "
                             "no prompt logprobs. Use a string prompt or Conversation(format='raw_hh'), or "
                             "serve the model with `alignlab serve`")
        echoes = self._echoes(fields, len(suffixes))
        url = f"{self.base_url}/completions"
        return ScoreResult(tuple(continuation_score(echoes[0], e, url) for e in echoes[1:]))

    # -- next_token --------------------------------------------------------------------------
    def next_token(self, requests: Sequence[NextTokenRequest]) -> list[NextTokenResult]:
        return self.http.map(self._next_token_one, requests)

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
            body = {**base, **fields, "logprobs": self.top_logprobs}
            return self._choices("/completions", body, 1, top_next_legacy)[0]
        assert isinstance(prompt, Conversation)
        body = {**base, **self._chat_prompt(prompt), "logprobs": True,
                "top_logprobs": min(self.top_logprobs, 20)}
        return self._choices("/chat/completions", body, 1, top_next_chat)[0]

    def _sampled_next_token(self, req: NextTokenRequest) -> NextTokenResult:
        k = self.sample_fallback_k
        base = {"model": self.model_name, "max_tokens": 1, "temperature": 1.0, "seed": 0}
        fields = self._completion_prompt(req.prompt)
        if fields is not None:
            texts = self._choices("/completions", {**base, **fields}, k, lambda c: str(c["text"]))
        else:
            assert isinstance(req.prompt, Conversation)
            texts = self._choices("/chat/completions", {**base, **self._chat_prompt(req.prompt)}, k, chat_text)
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


def _finish(choice: dict[str, Any]) -> str:
    return str(choice.get("finish_reason") or "length")


def _models_entries(data: Any) -> list[dict[str, Any]]:
    """The entries of a ``/models`` answer ([] when it lists none); Malformed unless it is a JSON object."""
    if not isinstance(data, dict):
        raise Malformed(f"expected a JSON object, got {type(data).__name__}")
    entries = data.get("data")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
