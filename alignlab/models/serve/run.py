"""Running ``alignlab serve``: who may connect, and a uvicorn server that stops within seconds on SIGINT/SIGTERM."""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn

from alignlab.models.base import Model
from alignlab.models.serve.app import build_app
from alignlab.models.serve.engine import Engine
from alignlab.models.serve.work import Limits

GRACE_S = 3  # seconds open connections get to finish once the server stops


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_access(host: str, api_key: str | None, allow_insecure: bool) -> str | None:
    """Refuse (ValueError) to bind a non-loopback ``host`` without an API key unless ``allow_insecure``; returns the
    warning to print when it is allowed that way."""
    if is_loopback(host) or api_key:
        return None
    if not allow_insecure:
        raise ValueError(f"--host {host} is not a loopback address: anyone who reaches it could use the model. Set an "
                         "API key (--api-key or $ALIGNLAB_API_KEY), or pass --allow-insecure to serve without one")
    return (f"warning: serving on {host} without an API key (--allow-insecure): anyone who can reach this port can "
            "use the model")


class _Server(uvicorn.Server):
    """Cancels every request at once when asked to stop, and returns (instead of re-raising the signal)."""

    def __init__(self, config: uvicorn.Config, engine: Engine) -> None:
        super().__init__(config)
        self.engine = engine

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.engine.closed = True  # no lock here: a signal handler may interrupt a holder of the lock
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: Any = None) -> None:
        self.engine.close()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve_model(model: Model, host: str = "127.0.0.1", port: int = 8000, *, api_key: str | None = None,
                limits: Limits | None = None, log_level: str = "info") -> None:
    """Serve ``model`` until SIGINT/SIGTERM (call :func:`check_access` first)."""
    app = build_app(model, limits, api_key)
    server = _Server(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                    timeout_graceful_shutdown=GRACE_S), app.state.engine)
    key_note = " (with its API key)" if api_key else ""
    print(f"serving {model.spec!r}: use the spec openai:{model.spec}@http://{host}:{port}/v1{key_note}",
          file=sys.stderr, flush=True)
    server.run()


def serve(spec: str, host: str = "127.0.0.1", port: int = 8000, dtype: str = "float32", *,
          api_key: str | None = None, allow_insecure: bool = False, limits: Limits | None = None) -> None:
    """Load ``spec`` and serve it until interrupted."""
    from alignlab.models.spec import load_model

    warning = check_access(host, api_key, allow_insecure)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    serve_model(load_model(spec, dtype=dtype, cache=False), host, port, api_key=api_key, limits=limits)
