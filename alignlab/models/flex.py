"""Packed-row attention without a dense mask: PyTorch FlexAttention with a block mask built from a row plan.

The dense path (``packing_rows.dense_mask``) materialises an ``[n, past + n]`` float mask; at the tens of
thousands of tokens per forward that fill a GPU that is gigabytes per row. Here the mask is a ``BlockMask``
(blocks of 128 x 128 that are all masked are skipped, the rest evaluate :func:`packing_rows.allowed` inside the
kernel). The model runs under the attention implementation ``alignlab_flex`` for the duration of a call
(:func:`flex_attention_of`), registered with transformers' ``AttentionInterface``; compiled on CUDA, eager
elsewhere (exact, slow: for tests).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from alignlab.models.packing_rows import RowPlan, allowed

NAME = "alignlab_flex"


def available() -> bool:
    try:
        import torch.nn.attention.flex_attention  # noqa: F401
        from transformers import AttentionInterface  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _kernel(device_type: str):  # type: ignore[no-untyped-def]
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=True) if device_type == "cuda" else flex_attention


def _attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: Any,
               scaling: float | None = None, dropout: float = 0.0, **_: Any) -> tuple[torch.Tensor, None]:
    if attention_mask is None or not hasattr(attention_mask, "mask_mod"):
        raise RuntimeError(f"{NAME} attention needs a BlockMask (alignlab.models.flex.block_mask)")
    out = _kernel(query.device.type)(query, key, value, block_mask=attention_mask, scale=scaling,
                                     enable_gqa=query.shape[1] != key.shape[1])
    return out.transpose(1, 2).contiguous(), None


@functools.cache
def register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, flex_attention_mask

    AttentionInterface.register(NAME, _attention)
    AttentionMaskInterface.register(NAME, flex_attention_mask)  # calls without a mask of ours get a causal one


@contextlib.contextmanager
def flex_attention_of(model: Any) -> Iterator[None]:
    """Run ``model`` with FlexAttention inside the block, restoring its attention implementation after."""
    register()
    before = model.config._attn_implementation
    model.set_attn_implementation(NAME)
    try:
        yield
    finally:
        model.set_attn_implementation(before)


def block_mask(plan: RowPlan, past: int, device: torch.device) -> Any:
    """The BlockMask of one packed row after ``past`` prefix tokens (a cached prefix every token sees)."""
    from torch.nn.attention.flex_attention import create_block_mask

    pad = -plan.n % 128 + 128  # the kernel may evaluate query indices of a partial last block: keep them in range
    seg_lo, plo, phi = (torch.from_numpy(np.pad(a, (0, pad))).to(device, non_blocking=True)
                        for a in (plan.seg_lo, plan.parent_lo, plan.parent_hi))

    def mask_mod(b: Any, h: Any, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        col = kv - past
        return (col < 0) | allowed(seg_lo, plo, phi, q, col)

    return create_block_mask(mask_mod, None, None, plan.n, past + plan.n, device=device,
                             _compile=torch.device(device).type == "cuda")
