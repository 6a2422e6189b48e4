"""Backward passes that skip the output layer after the first pass (an exact reuse of its softmax).

The gradient of the summed next-token NLL at the final hidden state ``h`` (the input of the output layer
``logits = h Wᵀ + b``) is ``(p - onehot(y)) W = E - W[y]`` with ``E = softmax(logits) W``. ``E`` depends on the
model and the tokens only, not on the labels, so the covariance pass stores it per training row (with the labels
it drew) and the later passes over the same rows — eigenvalue correction (same sampled labels), pairwise scores
and self-influence (data labels) — run the transformer body and backpropagate ``E - W[y]`` from ``h``: no output
layer forward or backward, no vocabulary-sized softmax. With a vocabulary of 8192 and hidden size 256 that is a
fifth of each pass's multiply-adds; SmolLM2 (49152 x 576), about a quarter.

The cache is kept on the CPU only: on a GPU the output layer is cheap and host copies cost more than they save
(H100, 162M Llama: 107.6 s with every row cached against 102.9 s with a third). There the output layer still
runs without autograd, a few rows at a time, so no vocabulary-sized tensor waits for the backward pass.

Used only where it is exact: the model must compute ``logits = output_layer(base_model(x))`` (checked once per
model on a few tokens: soft-capped or rescaled logits fail the check and keep the plain path), the stored rows
must hold the very same tokens, and the cache must fit ``budget_bytes`` (else it stops collecting).
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from alignlab.influence.data import IGNORE, Batch, sample_labels, summed_loss

_SPLITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


SLAB_BYTES = 64 * 2**20  # rows are copied into slabs of this size (an untouched slab tail is never resident)


class HeadCache:
    """``E`` ``[T, H]`` (float32, CPU), the tokens and the labels of each cached training row.

    Rows are views into a few large slabs, not one allocation per row: thousands of small long-lived
    allocations between a pass's large transient buffers fragmented the heap (peak RSS up by a fifth).
    ``seed`` is the label seed of the sampled-Fisher pass that filled it (None: the labels are the data's).
    """

    def __init__(self, budget_bytes: int, seed: int | None = None) -> None:
        self.budget = budget_bytes
        self.seed = seed
        self.dtype: str | None = None  # dtype of the hidden states it was computed from
        self.rows: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.slab: tuple[torch.Tensor, ...] = ()  # the slab being filled: E [cap, H], ids [cap], labels [cap]
        self.used = 0  # its rows' tokens so far
        self.bytes = 0
        self.full = False  # went over budget: collects no more rows

    def covers(self, batch: Batch, dtype: torch.dtype) -> bool:
        """Every row of ``batch`` is stored, with the same tokens, from hidden states of ``dtype``."""
        if self.dtype != str(dtype) or not all(i in self.rows for i in batch.index):
            return False
        ids = batch.input_ids.cpu()
        return all(torch.equal(self.rows[i][1], ids[r, :len(self.rows[i][1])].int())
                   and int(batch.attention_mask[r].sum()) == len(self.rows[i][1]) for r, i in enumerate(batch.index))

    def add(self, batch: Batch, expected: torch.Tensor, labels: torch.Tensor, dtype: torch.dtype) -> None:
        """Store each row's real tokens of ``expected`` ``[B, T, H]`` and ``labels`` ``[B, T]``."""
        if self.full:
            return
        self.dtype = str(dtype)
        lengths = [int(n) for n in batch.attention_mask.sum(1).tolist()]
        hidden, tokens = expected.shape[-1], sum(lengths)
        size = tokens * (hidden * 4 + 8)
        if self.bytes + size > self.budget:
            self.full = True
            return
        if not self.slab or self.used + tokens > self.slab[0].shape[0]:
            capacity = max(tokens, SLAB_BYTES // (hidden * 4 + 8))
            self.slab = (torch.empty(capacity, hidden), torch.empty(capacity, dtype=torch.int32),
                         torch.empty(capacity, dtype=torch.int32))
            self.used = 0
        e_slab, id_slab, label_slab = self.slab
        for r, i in enumerate(batch.index):
            n, at = lengths[r], self.used
            e_slab[at:at + n] = expected[r, :n]
            id_slab[at:at + n] = batch.input_ids[r, :n]
            label_slab[at:at + n] = labels[r, :n]
            self.rows[i] = (e_slab[at:at + n], id_slab[at:at + n], label_slab[at:at + n])
            self.used += n
        self.bytes += size

    def batch(self, batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``E`` ``[B, T, H]`` (zeros past each row's end) and the stored labels ``[B, T]`` (IGNORE past the end)."""
        width = batch.input_ids.shape[1]
        hidden = next(iter(self.rows.values()))[0].shape[-1]
        expected = torch.zeros(len(batch.index), width, hidden)
        labels = torch.full((len(batch.index), width), IGNORE, dtype=torch.long)
        for r, i in enumerate(batch.index):
            e, _, lab = self.rows[i]
            expected[r, :len(e)] = e
            labels[r, :len(lab)] = lab
        return expected.to(device, non_blocking=True), labels.to(device, non_blocking=True)

    def save(self, path: Path) -> None:
        """One safetensors file: the rows' ``E`` ``[tokens, H]``, ``ids`` and ``labels`` back to back, and ``rows``
        ``[n, 3]`` (row index, offset, length); seed and dtype as metadata."""
        order = sorted(self.rows)
        lengths = [len(self.rows[i][1]) for i in order]
        offsets = torch.tensor([0, *lengths]).cumsum(0)[:-1]
        tensors = {name: torch.cat([self.rows[i][k] for i in order]) for k, name in enumerate(("E", "ids", "labels"))}
        tensors["rows"] = torch.stack([torch.tensor(order), offsets, torch.tensor(lengths)], dim=1)
        tmp = path.with_name(f".{path.name}.tmp")
        save_file(tensors, str(tmp), metadata={"seed": str(self.seed), "dtype": str(self.dtype)})
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> HeadCache:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
        seed = None if meta.get("seed") in (None, "None") else int(meta["seed"])
        cache = cls(budget_bytes=0, seed=seed)
        cache.dtype, cache.full = meta.get("dtype"), True
        for i, at, n in tensors["rows"].tolist():
            cache.rows[i] = (tensors["E"][at:at + n], tensors["ids"][at:at + n], tensors["labels"][at:at + n])
        return cache


def split_model(model: torch.nn.Module, probe: torch.Tensor) -> tuple[Any, torch.nn.Linear] | None:
    """``(body, output layer)`` when ``model(x).logits == output_layer(model.base_model(x).last_hidden_state)``,
    checked once per model on ``probe`` (a few token ids); None otherwise."""
    if model in _SPLITS:
        return _SPLITS[model]
    body, head = getattr(model, "base_model", None), model.get_output_embeddings()
    split = None
    if body is not None and body is not model and isinstance(head, torch.nn.Linear):
        with torch.no_grad():
            full = model(input_ids=probe).logits.float()
            parts = head(body(input_ids=probe).last_hidden_state).float()
        if full.shape == parts.shape and torch.allclose(full, parts, rtol=1e-4, atol=1e-5):
            split = (body, head)
    _SPLITS[model] = split
    return split


def backward_loss(model: torch.nn.Module, batch: Batch, *, sample: bool = False, seed: int = 0,
                  cache: HeadCache | None = None, chunk_elems: int = 2**26) -> None:
    """Backpropagate the batch's summed next-token NLL (labels sampled from the model when ``sample``).

    For a model that splits (:func:`split_model`) the output layer runs without autograd, a few rows at a time
    (at most ``chunk_elems`` logits at once), and ``E - W[y]`` is backpropagated from the hidden state: no
    vocabulary-sized tensor is kept for the backward pass. With a ``cache`` (CPU models only: on a GPU the output
    layer is cheap and host copies cost more than they save), covered rows reuse their stored ``E`` and labels;
    others are stored for the next pass. Other models take the plain autograd loss.
    """
    split = split_model(model, batch.input_ids[:1, :8])
    if split is None:
        summed_loss(model, batch, sample=sample, seed=seed).backward()
        return
    body, head = split
    hidden = body(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
    if cache is not None and hidden.device.type != "cpu":
        cache = None
    labels = F.pad(batch.labels[:, 1:], (0, 1), value=IGNORE)
    weight = head.weight.float()
    if cache is not None and cache.covers(batch, hidden.dtype) and (not sample or cache.seed == seed):
        expected, stored = cache.batch(batch, hidden.device)
        if sample:
            labels = torch.where(labels == IGNORE, labels, stored)
    else:
        expected, labels = _expected(hidden.detach(), head, weight, labels, batch.index if sample else None, seed,
                                     chunk_elems)
        if cache is not None and (cache.seed == (seed if sample else None) or not cache.rows):
            cache.seed = seed if sample else None
            cache.add(batch, expected, labels, hidden.dtype)
    valid = (labels != IGNORE).unsqueeze(-1)
    grad = (expected - weight[labels.clamp(min=0)]).mul_(valid)
    hidden.backward(grad.to(hidden.dtype))


@torch.no_grad()
def _expected(hidden: torch.Tensor, head: torch.nn.Linear, weight: torch.Tensor, labels: torch.Tensor,
              rows: list[int] | None, seed: int, chunk_elems: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``E = softmax(head(hidden)) W`` ``[B, T, H]`` and the labels (drawn per row when ``rows`` is given)."""
    b, t = hidden.shape[:2]
    step = max(1, chunk_elems // max(1, t * weight.shape[0]))
    expected = torch.empty(b, t, weight.shape[1], device=hidden.device)
    labels = labels.clone()
    for lo in range(0, b, step):
        probs = torch.softmax(head(hidden[lo:lo + step]).float(), -1)
        if rows is not None:
            labels[lo:lo + step] = sample_labels(probs, labels[lo:lo + step], rows[lo:lo + step], seed)
        torch.matmul(probs, weight, out=expected[lo:lo + step])
    return expected, labels
