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
from alignlab.data.jsonl import json_object

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
    """Summed next-token NLL over the labelled tokens of the batch; ``sample`` draws the labels from the model."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1].float()
    labels = batch.labels[:, 1:]
    if sample:
        labels = sample_labels(logits.detach(), labels, batch.index, seed)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE,
                           reduction="sum")


def sample_labels(logits: torch.Tensor, labels: torch.Tensor, index: Sequence[int], seed: int) -> torch.Tensor:
    """Labels drawn from softmax(logits) where a label exists; one generator per dataset row."""
    probs = torch.softmax(logits, dim=-1)
    out = labels.clone()
    for r, row in enumerate(index):
        gen = torch.Generator(device=logits.device).manual_seed(seed * 1_000_003 + row)
        drawn = torch.multinomial(probs[r], 1, generator=gen).squeeze(-1)
        out[r] = torch.where(labels[r] == IGNORE, labels[r], drawn)
    return out


def read_texts(path: Path, field: str = "text") -> list[str]:
    """Training sequences: JSONL with a ``text`` field per line, or a plain file with one sequence per line."""
    if not path.is_file():
        raise DataError("file not found", path=path)
    texts = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if path.suffix != ".jsonl":
            texts.append(line)
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
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
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
