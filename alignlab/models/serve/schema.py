"""Request bodies of ``alignlab serve``, the parameters it refuses, and errors in OpenAI's shape."""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from alignlab.models.types import Generation, Message

ERROR_CODES = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}


class ApiError(Exception):
    """An answer other than 200: status, a message for the client, the parameter at fault, extra headers."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.headers = status, message, param, headers or {}


def error_body(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": ERROR_CODES.get(status)}}


def error_response(status: int, message: str, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param), status, headers=headers)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]]
    name: None = None

    def message(self) -> Message:
        """The message, ``developer`` read as ``system`` (OpenAI's newer name for it)."""
        if isinstance(self.content, str):
            text = self.content
        else:
            kinds = {str(part.get("type")) for part in self.content} - {"text"}
            if kinds:
                raise ApiError(400, f"content parts of type {sorted(kinds)} are not supported: only 'text'",
                               "messages")
            text = "".join(str(part.get("text", "")) for part in self.content)
        return Message("system" if self.role == "developer" else self.role, text)


class StreamOptions(_Strict):
    include_usage: bool = False


class _Body(_Strict):
    model: str | None = None
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)  # not OpenAI's; vLLM and llama.cpp take it too
    n: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    user: str | None = None  # an end-user id: accepted, ignored
    # accepted only at the value that changes nothing (see NEUTRAL)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    response_format: dict[str, Any] | None = None


class CompletionBody(_Body):
    prompt: str | list[str] | list[int] | list[list[int]] | None = None
    messages: list[ChatMessage] | None = None  # extension: a conversation rendered with the chat template
    prefill: str | list[str] = ""  # extension, with messages: one prompt per prefill when a list
    max_tokens: int | None = Field(None, ge=0)
    echo: bool | None = False
    logprobs: int | None = Field(None, ge=0, le=20)
    best_of: int | None = None
    suffix: str | None = None


class ChatBody(_Body):
    messages: list[ChatMessage] = Field(min_length=1)
    prefill: str = ""  # extension: text forced at the start of the reply (the reply excludes it)
    max_tokens: int | None = Field(None, ge=0)
    max_completion_tokens: int | None = Field(None, ge=0)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    functions: list[Any] | None = None
    function_call: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None  # meaningless without tools: accepted, ignored
    store: bool | None = None  # OpenAI's own storage: accepted, ignored
    metadata: dict[str, str] | None = None


NEUTRAL: dict[str, Any] = {
    "presence_penalty": lambda v: v == 0,
    "frequency_penalty": lambda v: v == 0,
    "logit_bias": lambda v: not v,
    "response_format": lambda v: v.get("type") == "text",
    "best_of": lambda v: v == 1,
    "suffix": lambda v: v == "",
    "tools": lambda v: not v,
    "functions": lambda v: not v,
    "tool_choice": lambda v: v in ("none", "auto"),
    "function_call": lambda v: v in ("none", "auto"),
}


def refuse_unsupported(body: _Body) -> None:
    """400 for a parameter set to a value this server would otherwise silently ignore."""
    for name, neutral in NEUTRAL.items():
        value = getattr(body, name, None)
        if value is not None and not neutral(value):
            raise ApiError(400, f"{name}={value!r} is not supported by alignlab serve", name)


UNION_TYPES = {"prompt": "a string, a list of strings, a list of token ids, or a list of token-id lists",
               "stop": "a string or a list of strings", "prefill": "a string or a list of strings",
               "content": "a string or a list of content parts"}


def validation_message(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """One line for the first pydantic error, and the parameter it names."""
    first = errors[0] if errors else {}
    loc = [str(x) for x in first.get("loc", ())[1:]]
    names = [x for x in loc if "[" not in x and x not in ("str", "int", "float", "bool")]
    param = ".".join(names) or None
    kind = first.get("type")
    if kind == "json_invalid":
        return f"the body is not valid JSON: {first.get('ctx', {}).get('error', first.get('msg'))}", None
    if param is None and kind in ("model_attributes_type", "dict_type"):
        return "the body must be a JSON object, sent with Content-Type: application/json", None
    if kind == "extra_forbidden":
        return f"{param} is not supported by alignlab serve", param
    if kind == "missing":
        return f"{param} is required", param
    if len(names) < len(loc) and names and names[-1] in UNION_TYPES:  # a union: pydantic names one member
        return f"{param} must be {UNION_TYPES[names[-1]]}", param
    return f"{param or 'body'}: {first.get('msg', 'invalid request')}", param


def finish_reason(gen: Generation) -> str:
    return {"eos": "stop", "empty": "length"}.get(gen.finish_reason, gen.finish_reason)
