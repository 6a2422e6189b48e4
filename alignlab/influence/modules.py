"""Which layers influence is computed on, which of them share an input, and the hooks that read them.

Every tracked layer is seen as ``y = W a (+ b)`` with ``W`` of shape ``[d_out, d_in]``: ``nn.Linear`` as is,
GPT-2's ``Conv1D`` (weight stored ``[d_in, d_out]``) in the same layout. A bias adds a constant-1 input column,
so ``d_in`` counts it (methods-influence §0). Layers that read the same input tensor (``gate_proj`` and
``up_proj``; ``q/k/v_proj``) form one *group* that shares one activation covariance (methods-influence §1.11).

:class:`Recorder` hooks the tracked layers for one forward/backward pass and hands each call's masked
activations ``a`` ``[B, T, d_in]`` and output gradients ``g`` ``[B, T, d_out]`` to callbacks. A tracked layer
that never fires (fused kernels, ``F.linear`` on the weight) is an error, not a silent zero.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from alignlab.influence.data import Batch

SCOPES = {
    "mlp": r"(^|\.)(mlp|feed_forward|ffn)\.",
    "attention": r"(^|\.)(self_attn|attn|attention)\.",
    "all": r"(^|\.)(mlp|feed_forward|ffn|self_attn|attn|attention)\.",
}
EXCLUDED = ("lm_head", "embed", "wte", "wpe")


@dataclass(frozen=True)
class TrackedModule:
    """One tracked layer: its name, its shape in ``[d_out, d_in]`` layout and its shared-input group."""

    name: str
    d_in: int  # includes the bias column
    d_out: int
    bias: bool
    conv1d: bool
    group: str  # name of the first layer that reads the same input


def is_conv1d(module: nn.Module) -> bool:
    """transformers' ``Conv1D`` (GPT-2): a linear layer whose weight is stored ``[d_in, d_out]``."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def select_modules(model: nn.Module, scope: str = "mlp", pattern: str | None = None) -> list[tuple[str, nn.Module]]:
    """Linear/Conv1D layers whose name matches ``pattern`` (a regex) or the named scope; never embeddings or
    the LM head (vocabulary-sized factors)."""
    if pattern is None and scope not in SCOPES:
        raise ValueError(f"unknown module scope {scope!r}: choose one of {sorted(SCOPES)} or give a pattern")
    regex = re.compile(pattern or SCOPES[scope])
    chosen = [(name, m) for name, m in model.named_modules()
              if (isinstance(m, nn.Linear) or is_conv1d(m)) and regex.search(name)
              and not any(x in name for x in EXCLUDED)]
    if not chosen:
        raise ValueError(f"no Linear/Conv1D layer matches {pattern or scope!r} in {type(model).__name__}")
    return chosen


def describe(name: str, module: nn.Module, group: str) -> TrackedModule:
    bias = getattr(module, "bias", None) is not None
    if is_conv1d(module):
        d_in, d_out = module.weight.shape
    else:
        d_out, d_in = module.weight.shape
    return TrackedModule(name, int(d_in) + int(bias), int(d_out), bias, is_conv1d(module), group)


def find_tracked(model: nn.Module, probe_ids: torch.Tensor, scope: str = "mlp",
                 pattern: str | None = None) -> list[TrackedModule]:
    """Select layers and group those that receive the identical input tensor during one probe forward."""
    chosen = select_modules(model, scope, pattern)
    seen: dict[str, Any] = {}
    alive: list[torch.Tensor] = []  # hold every input so no address is reused within the probe
    handles = []
    for name, module in chosen:
        def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...], _out: Any, name: str = name) -> None:
            x = inputs[0]
            alive.append(x)
            seen.setdefault(name, (x.data_ptr(), tuple(x.shape), x.stride()))
        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(input_ids=probe_ids.to(next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    missing = [name for name, _ in chosen if name not in seen]
    if missing:
        raise RuntimeError(f"tracked layers never ran in a forward pass (fused kernel or direct F.linear?): "
                           f"{missing[:5]}")
    leaders: dict[Any, str] = {}
    has_bias = {name: getattr(m, "bias", None) is not None for name, m in chosen}
    return [describe(name, m, leaders.setdefault((seen[name], has_bias[name]), name)) for name, m in chosen]


Callback = Callable[[TrackedModule, torch.Tensor, torch.Tensor], None]
_LIBC: Any = None


def release_free_memory(growth: float = 1.03, force: bool = False) -> None:
    """Return the allocator's free pages to the OS (glibc ``malloc_trim``) when the resident set has grown.

    Called once per batch. Without any trim glibc keeps freed activation buffers of earlier batches fragmented
    in its heap: peak RSS of a scoring pass grew about 3x. Trimming every batch cost a page fault on every page
    of the next batch's working set (a tenth of the CPU time of a pass went to the kernel), so it trims only
    once RSS exceeds ``growth`` times the working set seen after the last trim, and at the start of every pass
    (``force``: its working set differs from the last pass's). A no-op off Linux/glibc.
    """
    global _LIBC
    if _LIBC is None:
        _LIBC = False
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError):
                _LIBC = ctypes.CDLL("libc.so.6")
    if not _LIBC:
        return
    rss = _resident_bytes()
    if force:
        _LIBC.malloc_trim(0)
        _TRIM["reference"] = None
    elif _TRIM["reference"] is None:
        _TRIM["reference"] = rss  # the working set of the first batch after a trim
    elif rss > growth * _TRIM["reference"]:
        _LIBC.malloc_trim(0)
        _TRIM["reference"] = None


_TRIM: dict[str, int | None] = {"reference": None}


def _resident_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Recorder:
    """Hooks the tracked layers while active.

    ``on_activation(module, a)`` fires in the forward pass for each group leader (a is masked, bias column
    appended); ``on_gradient(module, a, g)`` fires in the backward pass for every layer. Gradients are those of
    the summed loss, so ``g[b]`` is sequence ``b``'s own gradient.
    """

    def __init__(self, model: nn.Module, tracked: list[TrackedModule], *, on_activation: Callable | None = None,
                 on_gradient: Callback | None = None, scratch: dict | None = None) -> None:
        self.model = model
        self.tracked = tracked
        self.on_activation = on_activation
        self.on_gradient = on_gradient
        self.mask: torch.Tensor | None = None  # [B, T, 1], set per batch
        self.fired: set[str] = set()
        self._handles: list[Any] = []
        self._saved_grad: dict[str, bool] = {}
        self._shared: dict[tuple[str, int], torch.Tensor] = {}
        self.scratch = scratch if scratch is not None else {}  # the callbacks' per-batch store, emptied per batch

    def begin(self, mask: torch.Tensor) -> None:
        """Start a batch: its attention mask ``[B, T]`` zeroes padding in ``a`` and ``g``."""
        self.mask = None if bool(mask.all()) else mask.unsqueeze(-1)  # no padding: no masked copies
        self._shared.clear()
        self.scratch.clear()
        release_free_memory()

    def __enter__(self) -> Recorder:
        modules = dict(self.model.named_modules())
        release_free_memory(force=True)
        for info in self.tracked:
            self._handles.append(modules[info.name].register_forward_hook(self._forward_hook(info)))
        # Gradients are needed only w.r.t. the tracked layers' outputs: freeze every weight (saves the
        # weight-gradient GEMMs); the forward hook makes the first tracked outputs leaves that require grad, so
        # backward stops there instead of running through the layers below (and the embeddings).
        for name, p in self.model.named_parameters():
            self._saved_grad[name] = p.requires_grad
            p.requires_grad_(False)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.scratch.clear()
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for name, p in self.model.named_parameters():
            p.requires_grad_(self._saved_grad.get(name, True))

    def _forward_hook(self, info: TrackedModule) -> Callable:
        def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            if not torch.is_grad_enabled():
                return
            key = (info.group, inputs[0].data_ptr())
            a = self._shared.get(key)
            if a is None:  # the group leader (or a layer that reads its own input)
                a = inputs[0].detach()
                if self.mask is not None:
                    a = a * self.mask.to(a.dtype)
                if info.bias:
                    ones = torch.ones_like(a[..., :1]) if self.mask is None else self.mask.to(a.dtype)
                    a = torch.cat([a, ones], dim=-1)
                self._shared[key] = a
            self.fired.add(info.name)
            if self.on_activation is not None and info.group == info.name:
                self.on_activation(info, a)
            if not out.requires_grad:
                out.requires_grad_(True)  # a leaf: nothing below it needs a gradient
            if self.on_gradient is not None:
                def grad_hook(g: torch.Tensor) -> None:
                    g = g.detach()
                    if self.mask is not None:
                        g = g * self.mask.to(g.dtype)
                    self.on_gradient(info, a, g)
                out.register_hook(grad_hook)
        return hook

    def run(self, batches: Sequence[Batch], backward: Callable[[Batch], None]) -> Iterator[Batch]:
        """Each batch moved to the model's device, begun, backpropagated by ``backward(batch)`` (the callbacks
        fire) and checked; yielded afterwards for the caller's per-batch bookkeeping."""
        device = next(self.model.parameters()).device
        for batch in batches:
            batch = batch.to(device)
            self.begin(batch.attention_mask)
            backward(batch)
            self.check_fired()
            yield batch

    def check_fired(self) -> None:
        missing = [t.name for t in self.tracked if t.name not in self.fired]
        if missing:
            raise RuntimeError(f"tracked layers never fired (fused kernel or direct F.linear?): {missing[:5]}")
