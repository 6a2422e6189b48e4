"""The ``hf`` backend: any transformers causal LM, on CPU or CUDA, fp32 or bf16.

- ``score`` and ``next_token`` pack token trees into few forward passes (see ``packing.py``): a shared
  context runs once for all its continuations, a prefix shared by every request runs once per call, and
  logits are computed only where a token is scored. On a GPU a forward takes tens of thousands of tokens,
  attention uses FlexAttention block masks instead of a dense mask (``flex.py``), and the next row is built on
  a worker thread while the device runs this one.
- Tokenisation is batched (``hf_tokens.py``): one fast-tokenizer call per batch of distinct strings, a shared
  few-shot block tokenised once, a context's continuations tokenised from its last pre-token boundaries only.
- ``ScoreRequest.tokenization``: ``"joint"`` tokenises ``context + continuation`` as one string; a token merge
  across the boundary is handled exactly: ``logprob = log p(context + continuation) - log p(context)``.
  ``"separate"`` appends the continuation's own ids (tokenised alone, no special tokens) to the context's, as
  BIG-bench's HF model does.
- ``generate`` is in ``hf_generate.py``.
- BOS policy: a BOS token is prepended when the tokenizer adds one by default and the text does not
  already start with it (chat templates often write it themselves).
"""

from __future__ import annotations

import contextlib
import gc
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from alignlab.models.base import Backend
from alignlab.models.fingerprint import files_hash, tensors_hash, text_hash
from alignlab.models.flex import available as flex_available
from alignlab.models.hf_tokens import BatchEncoder
from alignlab.models.packing import PrefixStore, Tree, common_prefix_len, iter_trees
from alignlab.models.render import render
from alignlab.models.types import (
    ContinuationScore,
    GenerateRequest,
    GenerateResult,
    ModelError,
    NextTokenRequest,
    NextTokenResult,
    Prompt,
    ScoreRequest,
    ScoreResult,
)

Finish = Callable[[int, Any], Any]  # (request index, its tree's output) -> the request's result
FLEX_GPU_TOKENS, DENSE_GPU_TOKENS = 32768, 4096  # default tokens per scoring forward on a GPU
MAX_IN_FLIGHT_GPU = 4096
GPU_GENERATE_ROWS = 256  # rows (samples) per generation batch on a GPU; 32 on a CPU
GPU_GENERATE_TOKENS, GPU_GENERATE_TOKENS_MAX = 16384, 131072  # a GPU generation batch's token budget: floor, cap
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Python's cycle collector off while a call builds its token lists (tens of thousands of acyclic lists, which
    made it re-scan everything alive again and again: most of the host time of a 2000-question call). Back on after."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def completed_sub_batches(steps: Iterator[tuple[list[int], Callable[[int], Any]]], total: int, sub_batch: int
                          ) -> Iterator[tuple[list[int], list[Any]]]:
    """``(positions, results)`` of each sub-batch of ``sub_batch`` consecutive requests once it is complete.
    ``steps`` yields, after each unit of work, the positions it finished and ``result(i)`` of any finished i."""
    left = [min(sub_batch, total - start) for start in range(0, total, sub_batch)]
    for done, result in steps:
        for k in sorted({i // sub_batch for i in done}):
            left[k] -= sum(i // sub_batch == k for i in done)
            if left[k] == 0:
                part = list(range(k * sub_batch, min(total, (k + 1) * sub_batch)))
                yield part, [result(i) for i in part]


def generate_token_budget(model: Any, *, free_bytes: int | None = None, share: float = 0.3) -> int:
    """Prompt + new tokens over one generation batch on a GPU: ``share`` of the free device memory over the KV
    cache's bytes per token (layers x 2 x key/value heads x head size x element size), kept between
    ``GPU_GENERATE_TOKENS`` (the floor) and ``GPU_GENERATE_TOKENS_MAX``."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or (config.hidden_size // heads if heads else None)
    layers = getattr(config, "num_hidden_layers", None)
    if not (layers and kv_heads and head_dim):
        return GPU_GENERATE_TOKENS
    if free_bytes is None:
        device = next(model.parameters()).device
        if device.type != "cuda":
            return GPU_GENERATE_TOKENS
        free_bytes = torch.cuda.mem_get_info(device)[0]
    per_token = 2 * layers * kv_heads * head_dim * next(model.parameters()).element_size()
    return int(max(GPU_GENERATE_TOKENS, min(GPU_GENERATE_TOKENS_MAX, share * free_bytes / per_token)))


class HFBackend(Backend):
    def __init__(self, model: Any, tokenizer: Any, *, spec: str = "hf:<in-memory>", weights_id: str | None = None,
                 max_batch_tokens: int | None = None, min_shared_prefix: int = 4, note: str | None = None,
                 attention: str = "auto", prefetch: bool | None = None, attn_implementation: str | None = None
                 ) -> None:
        """``attention``: ``"dense"`` (a float mask per row; the CPU default), ``"flex"`` (FlexAttention block masks;
        the CUDA default when available) or ``"auto"``. ``max_batch_tokens``: tokens per scoring forward (512 on
        CPU, 32768 on a GPU with flex, 4096 without). ``prefetch``: build the next row on a worker thread while
        the device runs this one (default: on a GPU). ``attn_implementation``: the kernel the spec asked for by name
        (it keys the fingerprint, so its results are cached apart)."""
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.spec = spec
        on_gpu = next(model.parameters()).device.type != "cpu"
        if attention not in ("auto", "dense", "flex"):
            raise ValueError(f"attention must be auto, dense or flex, got {attention!r}")
        if attention == "auto":
            attention = "flex" if on_gpu and flex_available() else "dense"
        self.attention = attention
        self.prefetch = on_gpu if prefetch is None else prefetch
        self.max_in_flight = MAX_IN_FLIGHT_GPU if on_gpu else None  # Model hands a GPU this many requests at once
        gpu_budget = FLEX_GPU_TOKENS if attention == "flex" else DENSE_GPU_TOKENS
        self.max_batch_tokens = max_batch_tokens or (gpu_budget if on_gpu else 512)  # scoring rows (packing.py)
        # prompt + new tokens, and rows, over one generation batch (hf_generate.py)
        self.max_generate_tokens = generate_token_budget(model) if on_gpu else 4608
        self.max_generate_rows = GPU_GENERATE_ROWS if on_gpu else 32
        self.prefix_store = PrefixStore()
        self.min_shared_prefix = min_shared_prefix
        self.note = note
        self._weights_id = weights_id or tensors_hash(model.state_dict())
        probe = tokenizer("a").input_ids
        bos = tokenizer.bos_token_id
        self.add_bos = bos is not None and len(probe) > 0 and probe[0] == bos
        self._encoder = BatchEncoder(tokenizer)
        self.attn_requested = attn_implementation

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, dtype: str = "float32", device: str = "auto",
                        spec: str | None = None, revision: str | None = None, device_map: str | None = None,
                        attn_implementation: str | None = None, trust_remote_code: bool = False,
                        **kwargs: Any) -> HFBackend:
        """Load a transformers causal LM. ``revision`` pins a Hub branch/tag/commit, ``device_map="auto"`` lets
        accelerate spread a model over every GPU (and the CPU) instead of moving it to ``device``,
        ``attn_implementation`` picks the attention kernel, ``trust_remote_code`` runs the repo's own code (with a
        warning). Other ``kwargs`` (``max_batch_tokens``, ``note``...) go to the constructor."""
        import warnings

        from transformers import AutoModelForCausalLM, AutoTokenizer

        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}: choose one of {sorted(DTYPES)}")
        if trust_remote_code:
            warnings.warn(f"trust_remote_code=True: loading {name_or_path} runs Python code from the model's "
                          "repository on this machine; use it only for a repository you trust (pin revision=)",
                          UserWarning, stacklevel=2)
        hub: dict[str, Any] = {"trust_remote_code": trust_remote_code, **({"revision": revision} if revision else {})}
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **hub)
        load: dict[str, Any] = {"dtype": DTYPES[dtype], **hub}
        if attn_implementation:
            load["attn_implementation"] = attn_implementation
        if device_map:
            load["device_map"] = device_map
        model = AutoModelForCausalLM.from_pretrained(name_or_path, **load)
        if not device_map:
            model.to(pick_device(device))
        path = Path(name_or_path)
        if path.is_dir():
            weights = files_hash(sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin")))
        else:
            weights = f"revision:{getattr(model.config, '_commit_hash', None) or revision or 'unknown'}"
        return cls(model, tokenizer, spec=spec or f"hf:{name_or_path}", weights_id=weights,
                   attn_implementation=attn_implementation, **kwargs)

    # -- identity ----------------------------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        tok = self.tokenizer
        vocab = tok.get_vocab()
        return {
            "backend": "hf",
            "weights": self._weights_id,
            "dtype": str(next(self.model.parameters()).dtype).removeprefix("torch."),
            "tokenizer": text_hash("\n".join(f"{k}\t{v}" for k, v in sorted(vocab.items(), key=lambda kv: kv[1]))),
            "tokenizer_class": type(tok).__name__,
            "chat_template": text_hash(getattr(tok, "chat_template", None)),
            "bos_policy": f"add_bos={self.add_bos}",
            # a kernel asked for by name (?attn_implementation=) keys its own cache; the default keeps older keys
            **({"attn_implementation": self.attn_requested} if self.attn_requested else {}),
        }

    def describe(self) -> dict[str, Any]:
        n_params = sum(p.numel() for p in self.model.parameters())
        return {"spec": self.spec, "backend": "hf", "parameters": n_params,
                "dtype": str(next(self.model.parameters()).dtype).removeprefix("torch."),
                "device": str(next(self.model.parameters()).device), "note": self.note,
                "attn_implementation": getattr(self.model.config, "_attn_implementation", None)}

    # -- tokenisation ------------------------------------------------------------------------
    def render(self, prompt: Prompt) -> str:
        return render(prompt, self.tokenizer)

    def encode(self, text: str) -> list[int]:
        return self._with_bos(text, self.tokenizer(text, add_special_tokens=False).input_ids)

    def _with_bos(self, text: str, ids: list[int]) -> list[int]:
        if not self.add_bos:
            return ids
        bos_text = self.tokenizer.bos_token
        if not (bos_text and text.startswith(bos_text)):
            return [self.tokenizer.bos_token_id, *ids]
        return ids

    # -- score -------------------------------------------------------------------------------
    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        return self._all(self._score_plan, requests)

    def next_token(self, requests: Sequence[NextTokenRequest]) -> list[NextTokenResult]:
        return self._all(self._next_token_plan, requests)

    def _all(self, plan: Callable[[Any], tuple[list[Tree], Finish]], requests: Sequence[Any]) -> list[Any]:
        with paused_gc():
            trees, finish = plan(requests)
            outputs: list[Any] = []
            for _, outputs in self._iter(trees):  # noqa: B007 - the last value holds every output
                pass
            return [finish(i, out) for i, out in enumerate(outputs)]

    def stream(self, method: str, requests: Sequence[Any], sub_batch: int) -> Iterator[tuple[list[int], list[Any]]]:
        """Many requests in flight on a GPU (``max_in_flight``): one packing (or one set of generation batches) over
        all of them, so each forward fills the device, and each sub-batch handed on as soon as its last request is
        done."""
        if method not in ("score", "next_token", "generate") or len(requests) <= sub_batch:
            yield from super().stream(method, requests, sub_batch)
            return
        if method == "generate":
            from alignlab.models.hf_generate import generate_stream

            def generations() -> Iterator[tuple[list[int], Callable[[int], Any]]]:
                generated: dict[int, Any] = {}
                for done, results in generate_stream(self, list(requests)):
                    generated.update(zip(done, results, strict=True))
                    yield done, generated.__getitem__

            yield from completed_sub_batches(generations(), len(requests), sub_batch)
            return
        with paused_gc():
            trees, finish = (self._score_plan if method == "score" else self._next_token_plan)(requests)
        scored = ((done, lambda i, outputs=outputs: finish(i, outputs[i]))
                  for done, outputs in self._iter(trees, ordered=True))
        yield from completed_sub_batches(scored, len(requests), sub_batch)

    def _iter(self, trees: list[Tree], ordered: bool = False) -> Iterator[tuple[list[int], list[Any]]]:
        def run(attention: str) -> Iterator[tuple[list[int], list[Any]]]:
            return iter_trees(self.model, trees, max_tokens=self.max_batch_tokens, min_prefix=self.min_shared_prefix,
                              store=self.prefix_store, attention=attention, prefetch=self.prefetch, ordered=ordered)

        if self.attention != "flex":
            yield from run(self.attention)
            return
        rows = run("flex")
        try:
            first = next(rows, None)
        except Exception as err:  # noqa: BLE001 - an unsupported kernel must not stop an audit; results are equal
            warnings.warn(f"{self.spec}: FlexAttention failed ({type(err).__name__}: {err}); scoring with dense "
                          f"masks and rows of at most {DENSE_GPU_TOKENS} tokens from now on", stacklevel=2)
            self.attention, self.max_batch_tokens = "dense", min(self.max_batch_tokens, DENSE_GPU_TOKENS)
            yield from run("dense")
            return
        if first is not None:
            yield first
            yield from rows

    def _score_plan(self, requests: Sequence[ScoreRequest]) -> tuple[list[Tree], Finish]:
        texts = [self.render(req.context) for req in requests]
        bare = self._encoder(texts)
        joint = [i for i, req in enumerate(requests) if req.tokenization == "joint"]
        joint_ids = self._encoder.pairs([texts[i] for i in joint], [bare[i] for i in joint],
                                        [requests[i].continuations for i in joint])
        fulls: dict[int, list[list[int]]] = {
            i: [self._with_bos(texts[i] + c, ids) for c, ids in zip(requests[i].continuations, row, strict=True)]
            for i, row in zip(joint, joint_ids, strict=True)}
        alone = iter(self._encoder([c for req in requests if req.tokenization == "separate"
                                    for c in req.continuations]))
        trees, plans = [], []
        for i, (req, text, ids) in enumerate(zip(requests, texts, bare, strict=True)):
            ctx = self._with_bos(text, ids)
            if req.tokenization == "separate":  # BIG-bench: the continuation's own ids after the context's
                fulls[i] = [ctx + next(alone) for _ in req.continuations]
            tree, plan = self._score_tree(ctx, fulls[i])
            trees.append(tree)
            plans.append(plan)
        return trees, lambda i, out: self._assemble(plans[i], out)

    @staticmethod
    def _score_tree(ctx: list[int], fulls: list[list[int]]) -> tuple[Tree, dict[str, Any]]:
        splits = [common_prefix_len(ctx, f) for f in fulls]
        stem_len = min([len(ctx), *splits])
        if stem_len == 0:
            raise ModelError("cannot score: the context is empty (or merges into the first continuation token) "
                             "and the tokenizer adds no BOS token to condition on")
        tail = ctx[stem_len:]
        branches = [tail] + [f[stem_len:] for f in fulls]
        plan = {"stem_len": stem_len, "ctx_len": len(ctx), "splits": splits, "fulls": fulls}
        return Tree(ctx[:stem_len], branches), plan

    def _assemble(self, plan: dict[str, Any], out: Any) -> ScoreResult:
        stem_len = plan["stem_len"]
        tail_lp = sum(out.branch_logprobs[0])
        scores = []
        for i, full in enumerate(plan["fulls"]):
            lps, greedy = out.branch_logprobs[i + 1], out.branch_greedy[i + 1]
            merged = plan["splits"][i] < plan["ctx_len"]
            start = (plan["splits"][i] if merged else plan["ctx_len"]) - stem_len
            own = full[stem_len + start:]
            scores.append(ContinuationScore(
                logprob=float(sum(lps) - tail_lp),
                token_logprobs=tuple(lps[start:]),
                tokens=self._token_names(own),
                is_greedy=all(greedy[start:]),
                boundary_merge=merged,
            ))
        return ScoreResult(tuple(scores))

    def _token_names(self, ids: list[int]) -> tuple[str, ...]:
        fast = getattr(self.tokenizer, "backend_tokenizer", None)  # what convert_ids_to_tokens does, minus its loop
        return tuple(map(fast.id_to_token, ids)) if fast is not None else \
            tuple(self.tokenizer.convert_ids_to_tokens(ids))

    # -- next_token --------------------------------------------------------------------------
    def _next_token_plan(self, requests: Sequence[NextTokenRequest]) -> tuple[list[Tree], Finish]:
        texts = [self.render(req.prompt) for req in requests]
        bare = self._encoder(texts)
        with_options = self._encoder.pairs(texts, bare, [req.options for req in requests])
        trees, option_ids = [], []
        for req, text, ids, fulls in zip(requests, texts, bare, with_options, strict=True):
            ids = self._with_bos(text, ids)
            if not ids:
                raise ModelError("next_token needs a non-empty prompt (or a tokenizer that adds BOS)")
            option_ids.append([self._single_token(ids, self._with_bos(text + opt, full), opt)
                               for opt, full in zip(req.options, fulls, strict=True)])
            trees.append(Tree(ids, [], want_last=True))

        def finish(i: int, out: Any) -> NextTokenResult:
            lp = out.last_logprobs[option_ids[i]]
            probs = (lp - torch.logsumexp(lp, 0)).exp()
            return NextTokenResult(tuple(probs.tolist()), tuple(lp.tolist()))
        return trees, finish

    def _single_token(self, ids: list[int], full: list[int], option: str) -> int:
        if len(full) != len(ids) + 1 or full[:len(ids)] != ids:
            raise ModelError(f"next_token option {option!r} is not exactly one token after this prompt for "
                             f"{self.spec}; use score() for multi-token answers")
        return full[-1]

    # -- generate ----------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResult]:
        from alignlab.models.hf_generate import generate_batch

        return generate_batch(self, list(requests))
