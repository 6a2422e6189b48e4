"""The FastAPI app of ``alignlab serve``: routes, request checks, API-key check, streaming, errors.

- ``GET /v1/models``: the one served model; its id is the spec, ``owned_by`` is ``"alignlab"``, ``fingerprint``
  the model fingerprint id and ``max_model_len`` its context (hf models).
- ``POST /v1/completions``: ``prompt`` (a string, a list of strings, token ids or a list of token-id lists),
  ``max_tokens`` (0 allowed), ``temperature``, ``top_p``, ``top_k``, ``stop``, ``n``, ``seed``, ``echo``,
  ``logprobs=k`` (the legacy object: ``tokens``, ``token_logprobs`` with None for the first prompt token,
  ``top_logprobs``, ``text_offset``), ``stream`` (+ ``stream_options.include_usage``).
- ``POST /v1/chat/completions``: ``messages`` (roles system, developer (read as system), user, assistant; text
  content), ``temperature``, ``top_p``, ``max_tokens`` / ``max_completion_tokens``, ``stop``, ``n``, ``seed``,
  ``logprobs`` + ``top_logprobs``, ``stream``.
- ``usage`` counts the prompt tokens (once per prompt) and the generated tokens (hf models; 0 otherwise).
- Any other parameter is refused with 400, except at the value that changes nothing (penalties 0, an empty
  ``logit_bias``, ``best_of`` 1, ...) and ``user``, ``store``, ``metadata``, ``parallel_tool_calls`` (ignored).

alignlab extensions: ``prefill`` on chat completions (text forced at the start of the reply; the reply
excludes it), and ``messages`` + ``prefill`` (a string or a list, one prompt each) instead of ``prompt`` on
``/v1/completions``, so a client can score chat conversations rendered with the served chat template.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from alignlab.models.base import Model
from alignlab.models.serve.engine import Cancelled, Engine, Job
from alignlab.models.serve.schema import (
    ApiError,
    ChatBody,
    CompletionBody,
    _Body,
    error_body,
    error_response,
    refuse_unsupported,
    validation_message,
)
from alignlab.models.serve.work import ClientPrompt, Limits, Served, run_chat, run_completion
from alignlab.models.types import Conversation, ModelError


class BearerAuth:
    """401 for a request under ``/v1`` without ``Authorization: Bearer <api_key>`` (the key is never echoed)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app, self.expected = app, f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1"):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not secrets.compare_digest(given, self.expected):
                answer = error_response(401, "invalid or missing API key: send it as 'Authorization: Bearer <key>'")
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


def build_app(model: Model, limits: Limits | None = None, api_key: str | None = None) -> FastAPI:
    """The OpenAI-compatible app over ``model``: one request runs at a time on a worker thread, at most
    ``limits.max_queue`` wait; with ``api_key``, every ``/v1`` route needs it as a bearer token."""
    served = Served(model, limits or Limits())
    engine = Engine(model, served.limits.max_queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            engine.close()

    app = FastAPI(title="alignlab serve", description=__doc__, lifespan=lifespan)
    app.state.engine = engine
    if api_key:
        app.add_middleware(BearerAuth, api_key=api_key)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.param, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = validation_message(list(exc.errors()))
        return error_response(400, message, param)

    @app.exception_handler(ModelError)
    @app.exception_handler(ValueError)  # e.g. a tokenizer without a chat template
    async def _model_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(Exception)
    async def _server_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(500, f"{type(exc).__name__}: {exc}")

    @app.get("/v1/models")
    def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model.spec, "object": "model", "created": 0, "owned_by": "alignlab",
                                            "fingerprint": model.fingerprint_id,
                                            "max_model_len": served.context}]}

    def check(body: _Body, max_tokens: int | None, logprobs: bool) -> int:
        """Checks that need no tokenizer (answered at once, before queueing); returns the seed."""
        if body.model not in (None, model.spec):
            raise ApiError(404, f"model {body.model!r} not found: this server serves {model.spec!r}", "model")
        refuse_unsupported(body)
        n, limit = body.n or 1, served.limits.max_tokens
        if n > served.limits.max_n:
            raise ApiError(400, f"n={n} is more samples than this server gives (--max-n {served.limits.max_n})", "n")
        if limit is not None and max_tokens is not None and max_tokens > limit:
            raise ApiError(400, f"max_tokens={max_tokens} is more than this server generates (--max-tokens-limit "
                                f"{limit})", "max_tokens")
        if served.context is not None and max_tokens is not None and max_tokens > served.context:
            raise ApiError(400, f"max_tokens={max_tokens} is more than this model's context ({served.context} "
                                "tokens, prompt included)", "max_tokens")
        if body.stream and logprobs:
            raise ApiError(400, "logprobs and echo are not supported with stream=True", "stream")
        if body.stream_options is not None and not body.stream:
            raise ApiError(400, "stream_options needs stream=True", "stream_options")
        if logprobs and served.hf is None:
            raise ApiError(400, f"echo or logprobs needs an hf model; this server runs {model.spec!r}", "logprobs")
        return body.seed if body.seed is not None else secrets.randbelow(2 ** 31)

    @app.post("/v1/completions")
    async def completions(body: CompletionBody, request: Request) -> Response:
        seed = check(body, body.max_tokens, bool(body.echo) or body.logprobs is not None)
        work = partial(run_completion, served, body, _completion_prompts(body), seed)
        return await _answer(engine, request, work)

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatBody, request: Request) -> Response:
        asked = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
        seed = check(body, asked, bool(body.logprobs))
        conv = Conversation(tuple(m.message() for m in body.messages), body.prefill)
        return await _answer(engine, request, partial(run_chat, served, body, conv, seed))

    return app


async def _answer(engine: Engine, request: Request, work: Callable[[Job], Any]) -> Response:
    """Run ``work`` on the worker; a JSON answer, or a server-sent event stream once the work says ``start``."""
    job = engine.submit(work)
    try:
        kind, value = await job.next(request)
    except Cancelled:
        return Response(status_code=499)  # nobody is listening
    if kind == "error":
        raise value
    if kind == "cancelled":
        raise ApiError(503, f"request cancelled: {value}")
    if kind == "done":
        return JSONResponse(value)
    return StreamingResponse(_events(job), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _events(job: Job) -> AsyncIterator[str]:
    """The stream's events, ``data: [DONE]`` last; an error midway is sent as an event in OpenAI's error shape.
    Starlette cancels this generator when the client disconnects: the job stops too."""
    try:
        while True:
            kind, value = await job.next(None)
            if kind == "data":
                yield f"data: {json.dumps(value)}\n\n"
                continue
            if kind == "error":
                status = value.status if isinstance(value, ApiError) else 500
                message = value.message if isinstance(value, ApiError) else f"{type(value).__name__}: {value}"
                yield f"data: {json.dumps(error_body(status, message))}\n\n"
            elif kind == "cancelled":
                yield f"data: {json.dumps(error_body(503, f'request cancelled: {value}'))}\n\n"
            yield "data: [DONE]\n\n"
            return
    finally:
        job.cancel("the client disconnected")


def _completion_prompts(body: CompletionBody) -> list[ClientPrompt]:
    if body.messages is not None:
        if body.prompt is not None:
            raise ApiError(400, "give either prompt or messages (alignlab extension), not both", "messages")
        messages = tuple(m.message() for m in body.messages)
        prefills = [body.prefill] if isinstance(body.prefill, str) else body.prefill
        return [Conversation(messages, p) for p in prefills]
    if body.prompt is None:
        raise ApiError(400, "prompt is required", "prompt")
    if isinstance(body.prompt, str):
        return [body.prompt]
    if not body.prompt:
        raise ApiError(400, "prompt is an empty list", "prompt")
    if isinstance(body.prompt[0], int):
        return [list(body.prompt)]  # one prompt as token ids
    return list(body.prompt)  # strings, or prompts as lists of token ids
