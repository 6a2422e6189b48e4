"""Inverse-Hessian-vector products and influence scores (Grosse et al. 2023).

``score(q, z) = ∇f_qᵀ (Ĝ + λI)⁻¹ ∇L_z``; positive = up-weighting z lowers the query's NLL (a proponent).
Scores are unnormalised sums over tokens and sequences.

- IHVP per layer: ``P = Q_S [(Q_Sᵀ V Q_A) ⊘ (Λ + λ)] Q_Aᵀ``, λ = ``damping_factor × mean(Λ)`` unless an absolute
  ``damping`` is given; ``1/(Λ + λ)`` in float64.
- Pairwise scores take the preconditioned query gradients (full or rank r: ``P ≈ L R``) and one forward/backward
  pass over the training batches; per layer ``⟨P_q, G_z⟩ = Σ_t g_tᵀ P_q a_t`` is contracted in the cheaper of two
  orders, chosen once per layer by counting multiply-adds: through the batch's summed gradients
  (``B·T·O·I + Q·B·O·I``; transient, ``[B, O, I]`` under ``max_grad_elems``), or token by token (full rank
  ``Q·B·T·O·I``, rank r ``Q·B·T·r·(O+I)``), which never forms a training gradient and gives per-token scores.
- Self-influence ``⟨G_z, P G_z⟩ = Σ (Q_Sᵀ G_z Q_A)^∘2 ⊘ (Λ + λ)``: one pass, no per-query work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from alignlab.influence.data import Batch
from alignlab.influence.factors import rotate_matrix, rotated_outer, sequence_outer
from alignlab.influence.head import HeadCache, backward_loss
from alignlab.influence.modules import Recorder, TrackedModule
from alignlab.influence.store import Factors

Progress = Callable[[str, int, int], None]


class Preconditioner:
    """``(Ĝ + λI)⁻¹`` per layer from fitted factors; ``damping[name]`` holds the λ actually used."""

    def __init__(self, factors: Factors, damping_factor: float | None = 0.1, damping: float | None = None) -> None:
        if damping is None and damping_factor is None:
            raise ValueError("give a relative damping_factor or an absolute damping")
        self.factors = factors
        self.damping: dict[str, float] = {}
        self.inverse: dict[str, torch.Tensor] = {}
        for t in factors.tracked:
            lam = factors.lam[t.name].double()
            value = float(damping) if damping is not None else float(damping_factor) * float(lam.mean())
            self.damping[t.name] = value
            self.inverse[t.name] = (1.0 / (lam + value)).float()

    def apply(self, name: str, v: torch.Tensor) -> torch.Tensor:
        """``(Ĝ + λI)⁻¹ V`` for ``V`` ``[..., d_out, d_in]``."""
        return self.apply_rotated(name, rotate_matrix(v, self.factors.qs[name], self._qa(name)))

    def apply_rotated(self, name: str, v_rot: torch.Tensor) -> torch.Tensor:
        """``(Ĝ + λI)⁻¹ V`` from ``V`` already in the eigenbasis (``Q_Sᵀ V Q_A``)."""
        return rotate_matrix(v_rot * self.inverse[name], self.factors.qs[name], self._qa(name), back=True)

    def _qa(self, name: str) -> torch.Tensor:
        group = next(t.group for t in self.factors.tracked if t.name == name)
        return self.factors.qa[group]


def rotated_gradients(model: torch.nn.Module, factors: Factors, batches: Sequence[Batch]) -> dict[str, torch.Tensor]:
    """Per-sequence gradients in the eigenbasis, ``Q_Sᵀ G Q_A`` ``[N, d_out, d_in]``, of the summed loss (labels as
    given: data or completion), rotated token by token (:func:`rotated_outer`)."""
    grads: dict[str, list[torch.Tensor]] = {t.name: [] for t in factors.tracked}
    shared: dict[int, torch.Tensor] = {}

    def on_gradient(info: TrackedModule, a: torch.Tensor, g: torch.Tensor) -> None:
        grads[info.name].append(rotated_outer(a, g, factors.qa[info.group], factors.qs[info.name], shared))

    with Recorder(model, list(factors.tracked), on_gradient=on_gradient, scratch=shared) as rec:
        for _ in rec.run(batches, lambda b: backward_loss(model, b)):
            pass
    return {k: torch.cat(v) for k, v in grads.items()}


@dataclass
class QueryGradients:
    """Preconditioned query gradients per layer: full ``[Q, O, I]`` or low rank ``L [Q, O, r]``, ``R [Q, r, I]``."""

    full: dict[str, torch.Tensor] = field(default_factory=dict)
    left: dict[str, torch.Tensor] = field(default_factory=dict)
    right: dict[str, torch.Tensor] = field(default_factory=dict)

    def _some(self) -> torch.Tensor:
        return next(iter(self.full.values())) if self.full else next(iter(self.left.values()))

    @property
    def n_queries(self) -> int:
        return int(self._some().shape[0])

    @property
    def device(self) -> torch.device:
        return self._some().device


def precondition_queries(model: torch.nn.Module, pre: Preconditioner, batches: Sequence[Batch],
                         rank: int | None = None, oversample: int = 10, seed: int = 0) -> QueryGradients:
    """Query gradients of the measurement, preconditioned; rank r kept where ``min(O, I) > r``."""
    grads = rotated_gradients(model, pre.factors, batches)
    out = QueryGradients()
    for name in list(grads):
        p = pre.apply_rotated(name, grads.pop(name))  # free each gradient as soon as it is preconditioned
        if rank is None or min(p.shape[1:]) <= rank:
            out.full[name] = p.contiguous()  # the rotations leave a transposed view; every batch flattens it
        else:
            out.left[name], out.right[name] = (x.contiguous() for x in low_rank(p, rank, oversample, seed))
    return out


def low_rank(p: torch.Tensor, rank: int, oversample: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-r factors ``L = U diag(s)``, ``R = Vᵀ`` of each ``P_q``: exact SVD for small layers, else a seeded
    randomised SVD with ``oversample`` extra columns and 2 power iterations, truncated to r."""
    if p.shape[1] * p.shape[2] <= 4_000_000:
        u, s, vh = torch.linalg.svd(p, full_matrices=False)
    else:
        torch.manual_seed(seed)
        q = min(rank + oversample, *p.shape[1:])
        parts = [torch.svd_lowrank(m, q=q, niter=2) for m in p]
        u = torch.stack([x[0] for x in parts])
        s = torch.stack([x[1] for x in parts])
        vh = torch.stack([x[2].mT for x in parts])
    return u[..., :rank] * s[:, None, :rank], vh[:, :rank]


@dataclass
class PairwiseScores:
    """``total [Q, N]``, ``per_layer[name] [Q, N]`` and, when asked, ``per_token [Q, N, T]`` (training side)."""

    total: torch.Tensor
    per_layer: dict[str, torch.Tensor]
    per_token: torch.Tensor | None = None


def _contract(a: torch.Tensor, g: torch.Tensor, q: QueryGradients, name: str, per_token: bool,
              max_grad_elems: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scores ``[Q, B]`` (and ``[Q, B, T]``) of one layer for one batch, in the cheaper contraction order."""
    b, t, i = a.shape
    o = g.shape[-1]
    if name in q.full:
        p = q.full[name]
        tokens_cost = p.shape[0] * b * t * o * i
    else:
        left, right = q.left[name], q.right[name]
        tokens_cost = left.shape[0] * b * t * left.shape[-1] * (o + i)
    grad_cost = b * t * o * i + (p.shape[0] if name in q.full else left.shape[0]) * b * o * i
    if not per_token and grad_cost < tokens_cost and b * o * i <= max_grad_elems:
        grad = sequence_outer(g, a)
        full = p if name in q.full else left @ right
        return full.flatten(1) @ grad.flatten(1).T, None
    if name in q.full:
        tok = torch.einsum("bto,qoi->qbti", g, p).mul_(a).sum(-1)
    else:
        tok = torch.einsum("bto,qor->qbtr", g, left).mul_(torch.einsum("bti,qri->qbtr", a, right)).sum(-1)
    return tok.sum(-1), tok if per_token else None


def pairwise_scores(model: torch.nn.Module, tracked: Sequence[TrackedModule], batches: Sequence[Batch],
                    queries: QueryGradients, *, per_token: bool = False, max_grad_elems: int = 2**27,
                    progress: Progress | None = None, label: str = "pairwise scores",
                    head: HeadCache | None = None) -> PairwiseScores:
    """Scores of every query against the training batches (rows in batch order) with one pass over them
    (``head``: the fit's output-layer cache, which lets covered rows skip the output layer)."""
    n_rows = sum(int(b.input_ids.shape[0]) for b in batches)
    device = queries.device
    # Filled in place: small score tensors appended batch by batch would stay live between the passes' large
    # transient buffers and fragment the heap (peak RSS of a CPU pass grew by half).
    per_layer = {t.name: torch.zeros(queries.n_queries, n_rows, device=device) for t in tracked}
    width = max(b.input_ids.shape[1] for b in batches)
    per_token_scores = torch.zeros(queries.n_queries, n_rows, width, device=device) if per_token else None
    start = 0

    def on_gradient(info: TrackedModule, a: torch.Tensor, g: torch.Tensor) -> None:
        s, tok = _contract(a.float(), g.float(), queries, info.name, per_token, max_grad_elems)
        per_layer[info.name][:, start:start + s.shape[1]] = s
        if tok is not None:
            per_token_scores[:, start:start + tok.shape[1], :tok.shape[2]] += tok

    with Recorder(model, list(tracked), on_gradient=on_gradient) as rec:
        for k, batch in enumerate(rec.run(batches, lambda b: backward_loss(model, b, cache=head))):
            start += int(batch.input_ids.shape[0])
            if progress:
                progress(label, k + 1, len(batches))
    total = torch.stack(list(per_layer.values())).sum(0)
    return PairwiseScores(total, per_layer, per_token_scores)


def self_influence(model: torch.nn.Module, pre: Preconditioner, batches: Sequence[Batch],
                   progress: Progress | None = None) -> torch.Tensor:
    """``⟨G_z, (Ĝ + λI)⁻¹ G_z⟩`` for every training row (batch order): ``[N]``."""
    factors = pre.factors
    # Filled in place, as in pairwise_scores: no small per-batch tensor outlives its batch.
    out = torch.zeros(sum(int(b.input_ids.shape[0]) for b in batches), device=next(model.parameters()).device)
    start = 0
    shared: dict[int, torch.Tensor] = {}

    def on_gradient(info: TrackedModule, a: torch.Tensor, g: torch.Tensor) -> None:
        rot = rotated_outer(a, g, factors.qa[info.group], factors.qs[info.name], shared)
        out[start:start + rot.shape[0]] += (rot.square() * pre.inverse[info.name]).sum((1, 2))

    with Recorder(model, factors.tracked, on_gradient=on_gradient, scratch=shared) as rec:
        for k, batch in enumerate(rec.run(batches, lambda b: backward_loss(model, b, cache=factors.head))):
            start += int(batch.input_ids.shape[0])
            if progress:
                progress("self-influence", k + 1, len(batches))
    return out
