"""The hf backend's batch tokenisation (``hf_tokens.BatchEncoder``) gives the tokenizer's own ids of whole strings:
shared prefixes cut at pre-token boundaries, bases extended by suffixes, special tokens in the text."""

from __future__ import annotations

import random

import pytest

from alignlab.models.hf_tokens import BatchEncoder

WORDS = ["the", " cat", "  ", "\n", "\n\n", "A:", " 12", "345", "!", " über", "naïve", "'s", " ", "\t", "Q", ":"]


def random_text(rng: random.Random, k: int) -> str:
    return "".join(rng.choice(WORDS) for _ in range(k))


@pytest.mark.parametrize("seed", range(6))
def test_shared_prefix_and_extensions_give_whole_string_ids(tokenizer, seed):
    rng = random.Random(seed)
    special = "<|im_start|>" if seed % 2 else ""
    head = random_text(rng, 120) + special  # a shared block, sometimes ending in a special token
    bases = [head + random_text(rng, rng.randint(0, 12)) for _ in range(7)]
    suffixes = [[random_text(rng, rng.randint(0, 3)) for _ in range(3)] for _ in bases]
    encoder = BatchEncoder(tokenizer)
    assert encoder.split_ok  # SmolLM2: byte-level BPE, no normalizer
    reference = tokenizer(bases, add_special_tokens=False).input_ids
    assert encoder(bases) == reference
    assert encoder.heads  # the shared block was tokenised once, apart from the tails
    extended = encoder.pairs(bases, reference, suffixes)
    for base, row, got in zip(bases, suffixes, extended, strict=True):
        assert got == tokenizer([base + s for s in row], add_special_tokens=False).input_ids
    assert encoder.split_ok  # the shortcut held, not a fallback


def test_a_tokenizer_whose_ids_do_not_restart_turns_the_shortcut_off(tokenizer):
    encoder = BatchEncoder(tokenizer)
    texts = ["many words " * 20 + "one two", "many words " * 20 + "three four"]
    real = encoder._batch
    encoder._batch = lambda batch: [[0, *ids] for ids in real(batch)]  # a head that no longer matches
    assert encoder(texts) == [[0, *ids] for ids in tokenizer(texts, add_special_tokens=False).input_ids]
    assert not encoder.split_ok
