"""Token ids of many strings at once, for the hf backend: the host side of scoring, kept cheap.

- One fast-tokenizer batch call per call, each distinct string once; short strings (answer options) stay cached
  across calls.
- A prefix every string of a call shares (a few-shot block of ~300 tokens, repeated in each of the 2000 x 5
  strings of an MC run) is tokenised once: the strings are cut at a pre-token boundary of that prefix (the start
  of its second-to-last pre-token, moved back out of any special token), the head's ids computed once and the
  tails batch-tokenised. A regex pre-tokenizer without lookbehind finds the same pre-tokens before that
  boundary in every string, and BPE works within pre-tokens, so the ids are those of the whole string. This is
  used only for tokenizers with no normalizer and a byte-level pre-tokenizer (GPT-2, SmolLM, Llama 3, Qwen
  styles), and each call checks its first and last strings against a whole-string tokenisation; a mismatch
  turns the shortcut off for good.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

CACHE_SIZE, CACHE_CHARS = 16384, 256  # strings kept across calls, and the longest kept
MIN_SHARED_CHARS = 128  # a shorter shared prefix is not worth a cut


class BatchEncoder:
    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.cache: dict[str, list[int]] = {}
        self.heads: dict[str, list[int]] = {}
        self.split_ok = _splittable(tokenizer)
        self.added = [t for t in getattr(tokenizer, "get_added_vocab", dict)() if t]

    def __call__(self, texts: Sequence[str]) -> list[list[int]]:
        """The ids of each text, without special tokens. The lists may be shared: do not mutate them."""
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        fresh = dict(zip(missing, self._encode(missing), strict=True)) if missing else {}
        if len(self.cache) > CACHE_SIZE:
            self.cache.clear()
        self.cache.update((t, ids) for t, ids in fresh.items() if len(t) <= CACHE_CHARS)
        return [fresh[t] if t in fresh else self.cache[t] for t in texts]

    def pairs(self, bases: Sequence[str], base_ids: Sequence[list[int]], suffixes: Sequence[Sequence[str]]
              ) -> list[list[list[int]]]:
        """The ids of ``base + s`` (tokenised as one string) for every suffix ``s`` of each base, given the bases'
        own ids: only the end of each base, from its last pre-token boundaries on, is tokenised again."""
        flat = [b + x for b, xs in zip(bases, suffixes, strict=True) for x in xs]
        if not self.split_ok or not flat:
            out = iter(self(flat))
            return [[next(out) for _ in xs] for xs in suffixes]
        shared = self._cut(os.path.commonprefix(list(bases))) if len(bases) > 1 else 0
        restarts = [shared + self._last_boundary(b[shared:]) for b in bases]
        tails = iter(self._batch([b[r:] for b, r in zip(bases, restarts, strict=True)]
                                 + [b[r:] + x for b, r, xs in zip(bases, restarts, suffixes, strict=True) for x in xs]))
        heads = [ids[:len(ids) - len(next(tails))] for ids in base_ids]
        out = [[head + next(tails) for _ in xs] for head, xs in zip(heads, suffixes, strict=True)]
        got = [ids for row in out for ids in row]
        if self._checked([flat[0], flat[-1]]) != [got[0], got[-1]]:
            self.split_ok = False
            return self.pairs(bases, base_ids, suffixes)
        return out

    def _last_boundary(self, text: str) -> int:
        """The start of the second-to-last pre-token of ``text`` (of the last one when there is one)."""
        pieces = self.tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str(text)
        return self._outside_added(text, pieces[-2][1][0]) if len(pieces) > 1 else 0

    def _batch(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None and hasattr(backend, "encode_batch_fast") and not backend.truncation \
                and not backend.padding:
            return [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=False)]
        return self._checked(texts)

    def _checked(self, texts: list[str]) -> list[list[int]]:
        """The tokenizer's own ids of whole strings (the reference the shortcuts are checked against)."""
        return self.tokenizer(texts, add_special_tokens=False).input_ids

    def _encode(self, texts: list[str]) -> list[list[int]]:
        cut = self._cut(os.path.commonprefix(texts)) if self.split_ok and len(texts) > 1 else 0
        if not cut:
            return self._batch(texts)
        head_text = texts[0][:cut]
        if head_text not in self.heads:
            self.heads = {head_text: self._batch([head_text])[0]}  # keep the last one: a run's few-shot block
        head = self.heads[head_text]
        out = [head + tail for tail in self._batch([t[cut:] for t in texts])]
        if self._checked([texts[0], texts[-1]]) != [out[0], out[-1]]:
            self.split_ok = False  # this tokenizer does not restart at pre-token boundaries: never cut again
            return self._batch(texts)
        return out

    def _cut(self, prefix: str) -> int:
        """Where strings sharing ``prefix`` can be cut (0: nowhere worth it)."""
        if len(prefix) < MIN_SHARED_CHARS:
            return 0
        pieces = self.tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str(prefix)
        if len(pieces) < 3:
            return 0
        cut = self._outside_added(prefix, pieces[-2][1][0])
        return cut if cut >= MIN_SHARED_CHARS else 0

    def _outside_added(self, text: str, cut: int) -> int:
        """``cut``, moved back to the start of any special token written in ``text`` that it would split."""
        for token in self.added:
            start = text.rfind(token, max(0, cut - len(token) + 1), cut + len(token))
            while start >= 0 and start < cut < start + len(token):
                cut = start
                start = text.rfind(token, max(0, cut - len(token) + 1), cut + len(token))
        return cut


def _splittable(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or backend.normalizer is not None or backend.pre_tokenizer is None:
        return False
    spec = repr(backend.pre_tokenizer)
    return "ByteLevel" in spec and "add_prefix_space=True" not in spec and "Metaspace" not in spec
