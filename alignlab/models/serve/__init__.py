"""``alignlab serve``: an OpenAI-compatible HTTP server over any model spec.

The routes and parameters are listed in ``app.py`` (and at ``/docs`` on a running server).

Limits and cancellation: one request runs at a time on a worker thread; at most ``max_queue`` wait behind it,
and more get 429 with ``Retry-After``. ``max_tokens`` must fit the model's context after the prompt (and the
``--max-tokens-limit``), ``n`` is capped. A request whose client disconnects (or times out) stops at its next
forward pass; SIGINT/SIGTERM cancels running and queued requests and exits within seconds. With an API key,
every ``/v1`` route needs ``Authorization: Bearer <key>``.

Generation goes through ``model.generate``; streamed samples and token-id prompts are decoded one sample at a time
exactly as the hf backend decodes (``decode.py``). Logprobs come from one forward pass on the hf backend
(``logprobs.py``); other backends serve plain generation and answer 400 to logprob and token-id requests.
"""

from __future__ import annotations

from alignlab.models.serve.app import build_app
from alignlab.models.serve.run import check_access, serve, serve_model
from alignlab.models.serve.work import Limits

__all__ = ["Limits", "build_app", "check_access", "serve", "serve_model"]
