"""KV-cache naming across transformers 5 releases: ``cache`` (5.24+) or ``past_key_values`` (earlier)."""

from __future__ import annotations

from types import SimpleNamespace

from alignlab.models.compat import output_cache, with_cache


class _Old:
    def forward(self, input_ids, past_key_values=None, use_cache=None): ...


class _New:
    def forward(self, input_ids, cache=None, use_cache=None): ...


def test_cache_argument_follows_the_forward_signature() -> None:
    assert with_cache(_Old(), "kv") == {"past_key_values": "kv"}
    assert with_cache(_New(), "kv") == {"cache": "kv"}


def test_output_cache_reads_either_field(tiny_model) -> None:
    assert output_cache(SimpleNamespace(past_key_values="old")) == "old"
    assert output_cache(SimpleNamespace(cache="new", past_key_values=None)) == "new"
    import torch

    out = tiny_model(torch.tensor([[1, 2, 3]]), use_cache=True)
    assert output_cache(out).get_seq_length() == 3  # the installed transformers, whichever name it uses
