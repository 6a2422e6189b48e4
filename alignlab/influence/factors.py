"""EK-FAC factors (Grosse et al. 2023; George et al. 2018): covariances, eigenbases, corrected eigenvalues.

Per tracked layer, with per-token activations ``a`` and output gradients ``g``:

1. ``A = E_tok[a aᵀ]`` (one per shared-input group), ``S = E_tok[g gᵀ]``  — pass 1 over the data.
2. ``A = Q_A diag(e_A) Q_Aᵀ``, ``S = Q_S diag(e_S) Q_Sᵀ`` in float64 after a finiteness check.
3. ``Λ = E_seq[(Q_Sᵀ G Q_A)^∘2]`` with ``G = Σ_t g_t a_tᵀ`` each sequence's gradient — pass 2. The rotation is
   applied to the tokens first (``ã = a Q_A``, ``g̃ = g Q_S``, ``G̃ = g̃ᵀ ã``) when that is cheaper than rotating G
   (``T·(O² + I²) <= O·I·(O + I)``), which holds unless sequences are very long.

With ``block_size`` set, A and S are accumulated and eigendecomposed as block-diagonal matrices (the paper's
memory reduction for wide layers): eigenvectors are stored ``[n_blocks, b, b]``; ``n_blocks == 1`` is the exact
method. Damping is chosen at query time (``scores.py``) from Λ, so one fit serves any damping.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import numpy as np
import torch

from alignlab.influence import distributed as dist
from alignlab.influence.config import FactorConfig
from alignlab.influence.data import Batch
from alignlab.influence.head import HeadCache, backward_loss
from alignlab.influence.modules import Recorder, TrackedModule

Progress = Callable[[str, int, int], None]


def n_blocks(dim: int, block_size: int | None) -> int:
    """Blocks for a side of width ``dim``: the fewest equal blocks no wider than ``block_size``. A width with no
    such divisor up to twice the minimum count (e.g. 768 + a bias column = 769, a prime) stays one full block."""
    if block_size is None or dim <= block_size:
        return 1
    least = -(-dim // block_size)
    return next((n for n in range(least, 2 * least + 1) if dim % n == 0), 1)


def sequence_outer(g: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Per-sequence gradients ``G_b = Σ_t g_t a_tᵀ``: ``[B, O, I]`` from ``g`` ``[B, T, O]``, ``a`` ``[B, T, I]``.

    One batched GEMM on a GPU; on the CPU one GEMM per sequence into the output (``bmm`` on the transposed ``g``
    ran 1.4x slower for ``O > I``, and ``einsum`` made permuted copies).
    """
    if g.device.type != "cpu":
        return torch.bmm(g.transpose(1, 2), a)
    out = g.new_empty(g.shape[0], g.shape[2], a.shape[2])
    for b in range(g.shape[0]):
        torch.mm(g[b].T, a[b], out=out[b])
    return out


def rotate(x: torch.Tensor, q: torch.Tensor, transpose: bool = False) -> torch.Tensor:
    """``x @ Q`` (or ``x @ Qᵀ``) on the last axis, ``Q`` block-diagonal given as ``[n_blocks, b, b]``."""
    if q.shape[0] == 1:
        return x @ (q[0].T if transpose else q[0])
    blocks = x.unflatten(-1, (q.shape[0], q.shape[1]))
    return torch.einsum("...nb,ncb->...nc" if transpose else "...nb,nbc->...nc", blocks, q).flatten(-2)


def rotate_matrix(v: torch.Tensor, qs: torch.Tensor, qa: torch.Tensor, back: bool = False) -> torch.Tensor:
    """``Q_Sᵀ V Q_A`` for ``V`` ``[..., d_out, d_in]``; ``back=True`` gives ``Q_S V Q_Aᵀ``."""
    v = rotate(v, qa, transpose=back)
    return rotate(v.transpose(-1, -2), qs, transpose=back).transpose(-1, -2)


def rotated_outer(a: torch.Tensor, g: torch.Tensor, qa: torch.Tensor, qs: torch.Tensor,
                  shared: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
    """Each sequence's gradient in the eigenbasis, ``Q_Sᵀ G_b Q_A`` ``[B, O, I]``, from ``a`` ``[B, T, I]`` and
    ``g`` ``[B, T, O]``: the tokens are rotated first (``g̃ᵀ ã``) unless rotating ``G_b`` is cheaper (long
    sequences). ``shared`` keeps ``ã`` by tensor identity, so the layers of a shared-input group rotate it once."""
    t, o, i = a.shape[1], g.shape[-1], a.shape[-1]
    if t * (o * o + i * i) > o * i * (o + i):
        return rotate_matrix(sequence_outer(g.float(), a.float()), qs, qa)
    shared = {} if shared is None else shared
    if id(a) not in shared:
        shared[id(a)] = rotate(a.float(), qa)
    return sequence_outer(rotate(g.float(), qs), shared[id(a)])


def add_squares(acc: torch.Tensor, x: torch.Tensor) -> None:
    """``acc += Σ_b x_b ∘ x_b`` in place, one fused multiply-add per sequence (``x.square().sum(0)`` allocated
    two batch-sized temporaries and took twice as long)."""
    for row in x:
        acc.addcmul_(row, row)


def accumulate_outer(acc: torch.Tensor, x: torch.Tensor) -> None:
    """``acc += Σ_tokens x xᵀ`` on ``acc``'s ``[nb, b, b]`` diagonal blocks, from ``x`` ``[..., nb·b]``.

    A full factor forms only its upper triangle (BLAS ``syrk`` on the CPU, row panels on a GPU);
    :func:`eigendecompose` mirrors it, so partial sums stay valid for all-reduce and checkpoints.
    """
    nb, b = acc.shape[0], acc.shape[1]
    flat = x.reshape(-1, nb, b).float()
    if nb > 1:
        acc += torch.einsum("knb,knc->nbc", flat, flat)
        return
    rows = flat[:, 0]
    (_syrk_upper if acc.device.type == "cpu" else _panels_upper)(acc[0], rows)


def _panels_upper(acc: torch.Tensor, rows: torch.Tensor) -> None:
    """``acc += rowsᵀ rows`` on the upper triangle, one row panel at a time (``X_iᵀ X[:, i:]``): about 56% of a
    full GEMM's multiply-adds (GPUs, which have no fast ``syrk`` in torch)."""
    b = acc.shape[0]
    panel = max(128, b // 8)
    if b < 2 * panel:
        acc.addmm_(rows.T, rows)
        return
    for lo in range(0, b, panel):
        acc[lo:lo + panel, lo:].addmm_(rows[:, lo:lo + panel].T, rows[:, lo:])


def _syrk_upper(acc: torch.Tensor, rows: torch.Tensor) -> None:
    """CPU: ``acc += rowsᵀ rows`` on the upper triangle with BLAS ``ssyrk`` (half a GEMM's multiply-adds; 1.3x
    faster than the row panels). A C-ordered ``acc`` is its transpose in Fortran order, so its upper triangle
    is ssyrk's ``lower``; ``rows.T`` is Fortran-ordered without a copy."""
    from scipy.linalg.blas import ssyrk

    x = rows.contiguous().numpy()
    with _blas_threads():
        out = ssyrk(1.0, x.T, beta=1.0, c=acc.numpy().T, trans=0, lower=1, overwrite_c=1)
    if not np.shares_memory(out, acc.numpy()):  # never expected: SciPy copied instead of updating in place
        acc.copy_(torch.from_numpy(out.T))


_CONTROLLER: list = []


def _blas_threads() -> contextlib.AbstractContextManager:
    """SciPy's BLAS limited to torch's thread count (the controller is built once: ~1 ms each time otherwise)."""
    from threadpoolctl import ThreadpoolController

    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=torch.get_num_threads(), user_api="blas")


def eigendecompose(cov: torch.Tensor, count: float, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues ``[nb, b]`` and eigenvectors ``[nb, b, b]`` of a covariance sum, in float64.

    Normalise by the token count, symmetrise, and fail with a clear message on NaN/Inf (a bf16/fp16 overflow or
    an untracked huge layer) instead of the solver's opaque error.
    """
    c = cov.double() / max(count, 1.0)
    c = c.triu() + c.triu(1).transpose(-1, -2)  # exactly symmetric, from the upper triangle that was accumulated
    if not torch.isfinite(c).all():
        raise FloatingPointError(f"{name}: covariance has NaN/Inf entries; fit factors with --dtype float32 "
                                 "(half-precision activations overflow) or track fewer layers")
    values, vectors = _eigh(c)
    return values.float(), vectors.float()


def _eigh(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.linalg.eigh`` of each block; on the CPU LAPACK's divide-and-conquer ``syevd`` through SciPy,
    limited to torch's thread count (1.3x faster than torch's own CPU eigh for a 1024-wide float64 block)."""
    if c.device.type != "cpu":
        return torch.linalg.eigh(c)
    import scipy.linalg

    with _blas_threads():
        pairs = [scipy.linalg.eigh(block.numpy(), driver="evd", check_finite=False) for block in c]
    return (torch.from_numpy(np.stack([w for w, _ in pairs])), torch.from_numpy(np.stack([v for _, v in pairs])))


def _backward(model: torch.nn.Module, batch: Batch, config: FactorConfig, head: HeadCache | None) -> None:
    backward_loss(model, batch, sample=config.fisher == "sampled", seed=config.seed, cache=head)


def covariance_pass(model: torch.nn.Module, tracked: Sequence[TrackedModule], batches: Sequence[Batch],
                    config: FactorConfig, progress: Progress | None = None, head: HeadCache | None = None
                    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], float]:
    """Pass 1: summed ``A`` per group and ``S`` per layer (block-diagonal if asked), and the token count.
    ``head`` collects (or serves) the output layer's softmax term per row for the later passes."""
    device = next(model.parameters()).device
    acts: dict[str, torch.Tensor] = {}
    grads: dict[str, torch.Tensor] = {}
    for t in tracked:
        nb_in, nb_out = n_blocks(t.d_in, config.block_size), n_blocks(t.d_out, config.block_size)
        acts.setdefault(t.group, torch.zeros(nb_in, t.d_in // nb_in, t.d_in // nb_in, device=device))
        grads[t.name] = torch.zeros(nb_out, t.d_out // nb_out, t.d_out // nb_out, device=device)

    def on_activation(info: TrackedModule, a: torch.Tensor) -> None:
        accumulate_outer(acts[info.group], a.detach())

    def on_gradient(info: TrackedModule, _a: torch.Tensor, g: torch.Tensor) -> None:
        accumulate_outer(grads[info.name], g)

    tokens = torch.zeros((), device=device, dtype=torch.float64)
    with Recorder(model, list(tracked), on_activation=on_activation, on_gradient=on_gradient) as rec:
        for i, batch in enumerate(rec.run(batches, lambda b: _backward(model, b, config, head))):
            tokens += batch.attention_mask.sum()
            if progress:
                progress("covariances", i + 1, len(batches))
    totals = {f"A/{k}": v for k, v in acts.items()} | {f"S/{k}": v for k, v in grads.items()} | {"n": tokens}
    dist.sum_tensors(totals)
    return acts, grads, float(tokens)


def correction_pass(model: torch.nn.Module, tracked: Sequence[TrackedModule], batches: Sequence[Batch],
                    qa: dict[str, torch.Tensor], qs: dict[str, torch.Tensor], config: FactorConfig,
                    progress: Progress | None = None, head: HeadCache | None = None
                    ) -> tuple[dict[str, torch.Tensor], float]:
    """Pass 2: summed ``(Q_Sᵀ G Q_A)^∘2`` per layer over sequences, and the sequence count."""
    device = next(model.parameters()).device
    lam = {t.name: torch.zeros(t.d_out, t.d_in, device=device) for t in tracked}
    rotated: dict[int, torch.Tensor] = {}

    def on_gradient(info: TrackedModule, a: torch.Tensor, g: torch.Tensor) -> None:
        add_squares(lam[info.name], rotated_outer(a, g, qa[info.group], qs[info.name], rotated))

    sequences = torch.zeros((), device=device, dtype=torch.float64)
    with Recorder(model, list(tracked), on_gradient=on_gradient, scratch=rotated) as rec:
        for i, batch in enumerate(rec.run(batches, lambda b: _backward(model, b, config, head))):
            sequences += len(batch.index)
            if progress:
                progress("eigenvalue correction", i + 1, len(batches))
    totals = {f"L/{k}": v for k, v in lam.items()} | {"n": sequences}
    dist.sum_tensors(totals)
    return lam, float(sequences)
