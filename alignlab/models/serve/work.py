"""What ``alignlab serve`` runs on its worker thread for one request: prompts prepared and checked against the
limits, samples generated (streamed or not), and the OpenAI response bodies and stream chunks built."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from alignlab.models.base import Model
from alignlab.models.hf import HFBackend
from alignlab.models.serve.decode import decode_one
from alignlab.models.serve.engine import Job
from alignlab.models.serve.logprobs import chat_logprobs, legacy_logprobs, token_info
from alignlab.models.serve.schema import ApiError, ChatBody, CompletionBody, finish_reason
from alignlab.models.types import Conversation, GenerateParams, GenerateRequest, Generation, Prompt

DEFAULT_COMPLETION_TOKENS = 16  # OpenAI's default max_tokens for /completions
DEFAULT_CHAT_TOKENS = 512
ClientPrompt = str | Conversation | list[int]


@dataclass(frozen=True)
class Limits:
    """``max_tokens``: most new tokens per sample (None: the model's context bounds it); ``max_n``: most samples per
    prompt; ``max_queue``: most requests waiting behind the running one (more get 429)."""

    max_tokens: int | None = None
    max_n: int = 128
    max_queue: int = 32


@dataclass(frozen=True)
class Served:
    model: Model
    limits: Limits

    @property
    def hf(self) -> HFBackend | None:
        return self.model.backend if isinstance(self.model.backend, HFBackend) else None

    @property
    def context(self) -> int | None:
        """The model's context length in tokens (None when the backend does not say)."""
        config = getattr(self.hf.model, "config", None) if self.hf else None
        for name in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
            if isinstance(getattr(config, name, None), int):
                return getattr(config, name)
        return None


@dataclass(frozen=True)
class Item:
    """A prompt ready to run: ``prompt`` (None when given as token ids), its text, its token ids (hf only)."""

    prompt: Prompt | None
    text: str
    ids: list[int] | None


def prepare(s: Served, prompt: ClientPrompt) -> Item:
    hf = s.hf
    if isinstance(prompt, list):
        if hf is None:
            raise ApiError(400, f"token-id prompts need an hf model; this server runs {s.model.spec!r}", "prompt")
        if not prompt:
            raise ApiError(400, "a token-id prompt is empty", "prompt")
        vocab = len(hf.tokenizer)
        bad = next((t for t in prompt if not 0 <= t < vocab), None)
        if bad is not None:
            raise ApiError(400, f"token id {bad} is outside the vocabulary (0 to {vocab - 1})", "prompt")
        text = hf.tokenizer.decode(prompt, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        return Item(None, text, list(prompt))
    if hf is None:
        return Item(prompt, prompt if isinstance(prompt, str) else "", None)
    text = hf.render(prompt)
    ids = hf.encode(text)
    if not ids:
        raise ApiError(400, "empty prompt: the tokenizer adds no BOS token to condition on", "prompt")
    return Item(prompt, text, ids)


def budget(s: Served, items: list[Item], requested: int | None, default: int) -> int:
    """New tokens per sample: ``requested`` if prompt + requested fits the context (else 400), or the default."""
    longest = max((len(i.ids) for i in items if i.ids is not None), default=0)
    context = s.context
    room = None if context is None else context - longest
    if room is not None and room < 0:
        raise ApiError(400, f"the prompt is {longest} tokens: this model's context is {context} tokens", "prompt")
    if requested is None:
        return min(x for x in (default, s.limits.max_tokens, room) if x is not None)
    if room is not None and requested > room:
        raise ApiError(400, f"this model's maximum context length is {context} tokens, but the prompt has {longest} "
                            f"and max_tokens asks for {requested} more: lower max_tokens to {room} or less, or "
                            "shorten the prompt", "max_tokens")
    return requested


def sampling(body: CompletionBody | ChatBody, max_tokens: int, seed: int) -> GenerateParams:
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    return GenerateParams(max_new_tokens=max_tokens, temperature=1.0 if body.temperature is None else body.temperature,
                          top_p=1.0 if body.top_p is None else body.top_p, top_k=body.top_k or 0, stop=stop,
                          n=body.n or 1, seed=seed)


def generate(s: Served, items: list[Item], params: GenerateParams, job: Job,
             streams: Callable[[int], Callable[[str], None]] | None = None) -> list[list[Generation]]:
    """``params.n`` samples per item. Through ``model.generate`` (batched, as the hf backend itself samples), or one
    sample at a time when streamed (``streams(choice index)`` takes the text) or prompted with token ids."""
    if params.max_new_tokens == 0:
        return [[Generation("", "empty")] * params.n for _ in items]
    hf = s.hf
    if hf is not None and (streams is not None or any(i.prompt is None for i in items)):
        out = []
        for i, item in enumerate(items):
            assert item.ids is not None
            out.append([decode_one(hf, item.ids, params, j, item.text, job,
                                   streams(i * params.n + j) if streams else None) for j in range(params.n)])
        return out
    if hf is not None:
        params = replace(params, logprobs=True)  # their number counts the generated tokens for usage
    results = s.model.generate([GenerateRequest(i.prompt, params) for i in items if i.prompt is not None])
    return [list(r.samples) for r in results]


def usage(s: Served, items: list[Item], gens: list[list[Generation]]) -> dict[str, int]:
    """Prompt tokens (once per prompt, however many samples) and generated tokens (end-of-sequence not counted, a
    stop string's tokens counted); 0 off the hf backend (no tokenizer here)."""
    if s.hf is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    prompt = sum(len(i.ids or ()) for i in items)
    tok = s.hf.tokenizer
    done = sum(len(g.token_logprobs) if g.token_logprobs is not None else
               len(tok(g.text, add_special_tokens=False).input_ids) for row in gens for g in row)
    return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}


def _head(kind: str, model: str) -> dict[str, Any]:
    prefix = "cmpl" if kind == "text_completion" else "chatcmpl"
    return {"id": f"{prefix}-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()), "model": model}


def run_completion(s: Served, body: CompletionBody, prompts: list[ClientPrompt], seed: int, job: Job
                   ) -> dict[str, Any] | None:
    items = [prepare(s, p) for p in prompts]
    params = sampling(body, budget(s, items, body.max_tokens, DEFAULT_COMPLETION_TOKENS), seed)
    if body.stream:
        head = _head("text_completion", s.model.spec)

        def chunk(index: int, text: str, finish: str | None) -> dict[str, Any]:
            return {**head, "choices": [{"index": index, "text": text, "logprobs": None, "finish_reason": finish}]}

        return _stream(s, body, items, params, job, head, chunk)
    gens = generate(s, items, params, job)
    choices = []
    for i, (item, samples) in enumerate(zip(items, gens, strict=True)):
        for j, g in enumerate(samples):
            lp = None
            if body.logprobs is not None:
                assert s.hf is not None
                ids = item.ids if item.prompt is None else None
                lp = legacy_logprobs(token_info(s.hf, item.text, g, bool(body.echo), body.logprobs, ids))
            choices.append({"index": i * params.n + j, "text": (item.text if body.echo else "") + g.text,
                            "logprobs": lp, "finish_reason": finish_reason(g)})
    return {**_head("text_completion", s.model.spec), "choices": choices, "usage": usage(s, items, gens)}


def run_chat(s: Served, body: ChatBody, conv: Conversation, seed: int, job: Job) -> dict[str, Any] | None:
    item = prepare(s, conv)
    asked = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    params = sampling(body, budget(s, [item], asked, DEFAULT_CHAT_TOKENS), seed)
    if body.stream:
        head = _head("chat.completion.chunk", s.model.spec)

        def chunk(index: int, text: str | None, finish: str | None) -> dict[str, Any]:
            delta = {"role": "assistant", "content": ""} if text is None else {"content": text} if text else {}
            return {**head, "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]}

        return _stream(s, body, [item], params, job, head, chunk)
    samples = generate(s, [item], params, job)[0]
    choices = []
    for j, g in enumerate(samples):
        lp = None
        if body.logprobs:
            assert s.hf is not None
            lp = chat_logprobs(token_info(s.hf, item.text, g, False, body.top_logprobs or 0))
        choices.append({"index": j, "message": {"role": "assistant", "content": g.text}, "logprobs": lp,
                        "finish_reason": finish_reason(g)})
    return {**_head("chat.completion", s.model.spec), "choices": choices, "usage": usage(s, [item], [samples])}


def _stream(s: Served, body: CompletionBody | ChatBody, items: list[Item], params: GenerateParams, job: Job,
            head: dict[str, Any], chunk: Callable[..., dict[str, Any]]) -> None:
    """Send the answer as stream events: a chunk per piece of text as soon as it is final, a last chunk per choice
    with its finish reason, then (``stream_options.include_usage``) a chunk with the usage and no choices."""
    job.emit("start")
    with_usage = bool(body.stream_options and body.stream_options.include_usage)
    extra = {"usage": None} if with_usage else {}
    chat = head["object"] == "chat.completion.chunk"

    def send(data: dict[str, Any]) -> None:
        job.emit("data", {**data, **extra})

    def opened(index: int) -> Callable[[str], None]:
        if chat:
            send(chunk(index, None, None))
        return lambda text: send(chunk(index, text, None))

    streamed = s.hf is not None and params.max_new_tokens > 0
    gens = generate(s, items, params, job, opened if streamed else None)
    for i, samples in enumerate(gens):
        for j, g in enumerate(samples):
            index = i * params.n + j
            if not streamed:
                opened(index)(g.text)
            send(chunk(index, "", finish_reason(g)))
    if with_usage:
        job.emit("data", {**head, "choices": [], "usage": usage(s, items, gens)})
