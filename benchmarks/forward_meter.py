"""Counts what a causal LM really computes: tokens at the input embedding, logit rows at the LM head, and
time inside ``model.forward``. Pure torch, so both benchmark venvs can use it (no alignlab import).

On CUDA the time inside forward comes from CUDA events recorded around each call and read at the end, so the
meter never synchronises the device: a backend that overlaps host work with the device keeps doing so."""

from __future__ import annotations

import resource
import time
from typing import Any

import torch


class ForwardMeter:
    def __init__(self, model: torch.nn.Module) -> None:
        self.tokens = 0       # ids fed to the embedding, padding included
        self.logit_rows = 0   # positions whose vocabulary logits were computed
        self.calls = 0
        self.forward_s = 0.0
        self._t0 = 0.0
        self._cuda = next(model.parameters()).device.type == "cuda"
        self._events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []  # (start, end) per forward, on CUDA
        model.get_input_embeddings().register_forward_hook(self._on_embed)
        model.get_output_embeddings().register_forward_hook(self._on_head)
        model.register_forward_pre_hook(self._on_start)
        model.register_forward_hook(self._on_end)

    def _on_embed(self, _m: Any, args: tuple, _out: Any) -> None:
        self.tokens += args[0].numel()

    def _on_head(self, _m: Any, _args: tuple, out: torch.Tensor) -> None:
        self.logit_rows += out.shape[:-1].numel()

    def _on_start(self, *_: Any) -> None:
        if self._cuda:
            self._events.append((torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)))
            self._events[-1][0].record()
        self._t0 = time.perf_counter()

    def _on_end(self, *_: Any) -> None:
        if self._cuda:
            self._events[-1][1].record()
        else:
            self.forward_s += time.perf_counter() - self._t0
        self.calls += 1

    def _collect(self) -> None:
        if self._events:
            torch.cuda.synchronize()
            self.forward_s += sum(start.elapsed_time(end) for start, end in self._events) / 1000
            self._events.clear()

    def reset(self) -> None:
        self._events.clear()
        self.tokens = self.logit_rows = self.calls = 0
        self.forward_s = 0.0

    def as_dict(self) -> dict[str, float]:
        self._collect()
        return {"tokens_computed": self.tokens, "logit_rows": self.logit_rows, "forward_calls": self.calls,
                "forward_s": self.forward_s}


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
