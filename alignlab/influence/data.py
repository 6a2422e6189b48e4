"""Token batches and the two losses influence needs.

- Training sequence z: ``L(z) = -sum_t log p(x_{t+1} | x_<=t)`` over its real tokens (summed, not averaged, so
  ``g[b]`` is sequence b's own gradient).
- Query q = prompt + completion: measurement ``f(q) = -log p(completion | prompt)``, prompt tokens masked.
- Factor passes use labels sampled from the model (true Fisher, as in Grosse et al. 2023) or, with
  ``fisher="empirical"``, the data labels. Sampling is seeded per sequence index, so the labels do not depend on
  the batch size or on how sequences are sharded across processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from alignlab.data.errors import DataError
from alignlab.data.jsonl import json_object, read_lines

IGNORE = -100


@dataclass
class Batch:
    """Right-padded sequences: ``input_ids``/``attention_mask``/``labels`` ``[B, T]`` and their dataset rows."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor  # IGNORE where no loss is taken (prompt, padding)
    index: list[int]

    def to(self, device: str | torch.device) -> Batch:
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device), self.index)


def encode_texts(encode: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each text through the model layer's ``encode`` (its BOS policy), cut to ``max_length``."""
    return [list(encode(t))[:max_length] for t in texts]


def encode_queries(encode: Any, prompts: Sequence[str], completions: Sequence[str],
                   max_length: int) -> tuple[list[list[int]], list[int]]:
    """Ids of prompt+completion and the number of leading prompt tokens (masked out of the measurement)."""
    ids, starts = [], []
    for prompt, completion in zip(prompts, completions, strict=True):
        full = list(encode(prompt + completion))[:max_length]
        head = list(encode(prompt))
        start = 0
        while start < min(len(head), len(full)) and head[start] == full[start]:
            start += 1
        if start >= len(full):
            raise ValueError(f"query completion {completion!r} adds no token after its prompt")
        ids.append(full)
        starts.append(start)
    return ids, starts


def make_batches(seqs: Sequence[Sequence[int]], indices: Sequence[int], batch_size: int, pad_id: int,
                 starts: Sequence[int] | None = None) -> list[Batch]:
    """Batches of the given rows; ``starts[i]`` masks the first tokens of row i out of the loss."""
    out = []
    for lo in range(0, len(indices), batch_size):
        rows = list(indices[lo:lo + batch_size])
        width = max(len(seqs[i]) for i in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        for r, i in enumerate(rows):
            n = len(seqs[i])
            ids[r, :n] = torch.tensor(seqs[i])
            mask[r, :n] = 1
            labels[r, :n] = ids[r, :n]
            if starts is not None:
                labels[r, :starts[i]] = IGNORE
        out.append(Batch(ids, mask, labels, rows))
    return out


def summed_loss(model: torch.nn.Module, batch: Batch, *, sample: bool = False, seed: int = 0) -> torch.Tensor:
    """Summed next-token NLL over the labelled tokens of the batch; ``sample`` draws the labels from the model.

    Labels are shifted left and padded with ``IGNORE`` instead of slicing the logits, so the vocabulary-sized
    logits are never copied; :class:`NextTokenNLL` keeps one vocabulary-sized tensor for the backward pass.
    """
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.float()
    labels = F.pad(batch.labels[:, 1:], (0, 1), value=IGNORE)
    draw = (lambda probs, lab: sample_labels(probs, lab, batch.index, seed)) if sample else None
    return NextTokenNLL.apply(logits, labels, draw)


class NextTokenNLL(torch.autograd.Function):
    """``Σ -log softmax(logits)[label]`` over labels ``!= IGNORE``, with ``draw(probs, labels)`` (optional)
    choosing the labels from the probabilities first.

    Equal to ``F.cross_entropy(..., reduction="sum")``, with less memory traffic: the softmax is computed once,
    serves the label draw, is the only saved tensor, and becomes the gradient in place (``p - onehot``).
    """

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, labels: torch.Tensor, draw: Any = None) -> torch.Tensor:
        flat = logits.view(-1, logits.shape[-1])
        probs = torch.softmax(flat, -1)
        if draw is not None:
            labels = draw(probs.view(logits.shape), labels)
        labels = labels.reshape(-1)
        valid = labels != IGNORE
        index = labels.clamp(min=0).unsqueeze(-1)
        picked = probs.gather(-1, index).squeeze(-1)
        nll = -picked.log()
        tiny = (picked < 1e-30).nonzero().squeeze(-1)  # log of an underflowed probability: from the logits instead
        if len(tiny):
            nll[tiny] = torch.logsumexp(flat[tiny], -1) - flat[tiny].gather(-1, index[tiny]).squeeze(-1)
        ctx.save_for_backward(probs, index, valid)
        ctx.shape = logits.shape
        return nll.masked_fill(~valid, 0.0).sum()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        if getattr(ctx, "consumed", False):
            raise RuntimeError("NextTokenNLL's saved softmax became the gradient: backward runs once per loss")
        ctx.consumed = True
        probs, index, valid = ctx.saved_tensors
        probs.scatter_add_(-1, index, torch.full_like(index, -1, dtype=probs.dtype))
        probs.mul_((grad * valid).unsqueeze(-1).to(probs.dtype))
        return probs.view(ctx.shape), None, None


def row_generator(seed: int, row: int, device: torch.device) -> torch.Generator:
    """The label generator of dataset row ``row``: draws depend on the row, not on batching or sharding."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + row)


def sample_labels(probs: torch.Tensor, labels: torch.Tensor, index: Sequence[int], seed: int) -> torch.Tensor:
    """Labels drawn from ``probs`` ``[B, T, V]`` where a label exists; one seeded generator per dataset row.

    Inverse-CDF sampling: one uniform per token against the running sum of the probabilities. The same
    distribution as ``torch.multinomial``, whose exponential race draws one random number per vocabulary entry
    (~9x slower here, a tenth of a factor pass). A token of probability 0 is never drawn (``right=True``).
    """
    out = labels.clone()
    for r, row in enumerate(index):
        gen = row_generator(seed, row, probs.device)
        cdf = torch.cumsum(probs[r], -1)
        u = torch.rand(cdf.shape[0], 1, generator=gen, device=cdf.device, dtype=cdf.dtype) * cdf[:, -1:]
        drawn = torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_(max=cdf.shape[-1] - 1)
        out[r] = torch.where(labels[r] == IGNORE, labels[r], drawn)
    return out


def read_texts(path: Path, field: str = "text") -> list[str]:
    """Training sequences: JSONL with a ``text`` field per line, or a plain file with one sequence per line."""
    if not path.is_file():
        raise DataError("file not found", path=path)
    texts = []
    jsonl = path.name.endswith((".jsonl", ".jsonl.gz"))
    for number, line in read_lines(path):
        if not line.strip():
            continue
        if not jsonl:
            texts.extend(part for part in line.splitlines() if part.strip())
            continue
        texts.append(_field(json_object(line, path, number), field, path, number))
    if not texts:
        raise DataError("no sequences found", path=path)
    return texts


def read_queries(path: Path) -> list[tuple[str, str]]:
    """Queries: JSONL with ``prompt`` and ``completion`` per line."""
    if not path.is_file():
        raise DataError("file not found", path=path)
    out = []
    for number, line in read_lines(path):
        if line.strip():
            record = json_object(line, path, number)
            out.append((_field(record, "prompt", path, number), _field(record, "completion", path, number)))
    if not out:
        raise DataError("no queries found", path=path)
    return out


def _field(record: dict[str, Any], field: str, path: Path, number: int) -> str:
    value = record.get(field)
    if not isinstance(value, str) or not value:
        raise DataError("missing or empty string", path=path, line=number, field=field)
    return value
