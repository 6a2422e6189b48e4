"""EK-FAC factors and scores against an explicit, densely built damped EK-FAC matrix (always runs)."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from alignlab.influence import factors
from alignlab.influence.data import make_batches, summed_loss
from alignlab.influence.factors import FactorConfig, accumulate_outer, eigendecompose, n_blocks
from alignlab.influence.modules import find_tracked
from alignlab.influence.scores import Preconditioner, pairwise_scores, precondition_queries, self_influence
from alignlab.influence.store import fit_factors, load_factors

VOCAB = 50


def llama(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=2)).eval()


def gpt2(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=2, n_head=2, n_positions=64)).eval()


def sequences(n: int, seed: int = 1, lengths: tuple[int, int] = (6, 12)) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(0, VOCAB, (int(torch.randint(*lengths, (1,), generator=gen)),), generator=gen).tolist()
            for _ in range(n)]


def autograd_gradients(model: torch.nn.Module, tracked, seqs: list[list[int]]) -> dict[str, torch.Tensor]:
    """Per-sequence weight gradients ``[N, d_out, d_in]`` from plain autograd (bias as the last column)."""
    modules = dict(model.named_modules())
    out: dict[str, list[torch.Tensor]] = {t.name: [] for t in tracked}
    for batch in make_batches(seqs, list(range(len(seqs))), 1, 0):
        params = [(t, modules[t.name]) for t in tracked]
        tensors = [p for _, m in params for p in ([m.weight, m.bias] if m.bias is not None else [m.weight])]
        grads = iter(torch.autograd.grad(summed_loss(model, batch), tensors))
        for t, m in params:
            w = next(grads)
            w = w.T if t.conv1d else w
            if m.bias is not None:
                w = torch.cat([w, next(grads)[:, None]], dim=1)
            out[t.name].append(w.detach().double())
    return {k: torch.stack(v) for k, v in out.items()}


def dense_blockdiag(q: torch.Tensor) -> torch.Tensor:
    return torch.block_diag(*q.double())


@pytest.mark.parametrize("make,block_size,lengths", [(llama, None, (6, 12)), (llama, 8, (6, 12)),
                                                    (gpt2, None, (6, 12)), (llama, None, (24, 30))])
def test_scores_match_dense_damped_ekfac(tmp_path, make, block_size, lengths):
    """Short sequences rotate tokens in the correction pass; 24-30 tokens (> 18.5 here) rotate G_b instead."""
    model = make()
    train, queries = sequences(10, lengths=lengths), sequences(3, seed=7)
    tracked = find_tracked(model, torch.tensor([train[0]]))
    assert any(t.bias for t in tracked) == (make is gpt2)
    config = FactorConfig(fisher="empirical", block_size=block_size, batch_size=4)
    factors = fit_factors(model, tracked, make_batches(train, list(range(10)), 4, 0), config, tmp_path)
    pre = Preconditioner(factors)
    q_grads = precondition_queries(model, pre, make_batches(queries, [0, 1, 2], 2, 0))
    batches = make_batches(train, list(range(10)), 3, 0)
    ours = pairwise_scores(model, tracked, batches, q_grads)
    ours_self = self_influence(model, pre, batches)

    g_train, g_query = autograd_gradients(model, tracked, train), autograd_gradients(model, tracked, queries)
    expected = torch.zeros(3, 10, dtype=torch.float64)
    expected_self = torch.zeros(10, dtype=torch.float64)
    for t in tracked:
        basis = torch.kron(dense_blockdiag(factors.qs[t.name]), dense_blockdiag(factors.qa[t.group]))
        rotated = g_train[t.name].flatten(1) @ basis  # rows: vec(Q_Sᵀ G Q_A)
        lam = rotated.square().mean(0)  # the eigenvalue correction, from autograd gradients
        torch.testing.assert_close(factors.lam[t.name].double().flatten(), lam, rtol=1e-4, atol=1e-7)
        damping = 0.1 * lam.mean()
        assert pre.damping[t.name] == pytest.approx(float(damping), rel=1e-5)
        matrix = basis @ torch.diag(lam) @ basis.T + damping * torch.eye(len(lam), dtype=torch.float64)
        inverse = torch.linalg.inv(matrix)
        applied = pre.apply(t.name, g_query[t.name].float()).double().flatten(1)  # (Ĝ + λI)⁻¹ V, the public API
        torch.testing.assert_close(applied, g_query[t.name].flatten(1) @ inverse, rtol=2e-3,
                                   atol=1e-3 * float(applied.abs().max()))
        expected += g_query[t.name].flatten(1) @ inverse @ g_train[t.name].flatten(1).T
        expected_self += torch.einsum("np,pq,nq->n", g_train[t.name].flatten(1), inverse, g_train[t.name].flatten(1))
    torch.testing.assert_close(ours.total.double(), expected, rtol=2e-3, atol=1e-3 * float(expected.abs().max()))
    torch.testing.assert_close(ours_self.double(), expected_self, rtol=2e-3, atol=0.0)


def test_eigenbasis_diagonalises_the_covariances(tmp_path):
    model = llama()
    train = sequences(6)
    tracked = find_tracked(model, torch.tensor([train[0]]))
    captured: dict[str, list[torch.Tensor]] = {}
    modules = dict(model.named_modules())
    hooks = [modules[t.name].register_forward_hook(
        lambda _m, i, _o, name=t.group: captured.setdefault(name, []).append(i[0].detach().reshape(-1, i[0].shape[-1])))
        for t in tracked if t.group == t.name]
    with torch.no_grad():
        for s in train:
            model(input_ids=torch.tensor([s]))
    for h in hooks:
        h.remove()
    factors = fit_factors(model, tracked, make_batches(train, list(range(6)), 6, 0),
                          FactorConfig(fisher="empirical"), tmp_path)
    for group, parts in captured.items():
        acts = torch.cat(parts).double()
        cov = acts.T @ acts / len(acts)
        q, e = factors.qa[group][0].double(), factors.ea[group].double()
        torch.testing.assert_close(q @ torch.diag(e.flatten()) @ q.T, cov, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("blocks", [1, 3])
def test_accumulated_covariance_is_the_full_outer_product(blocks):
    x = torch.randn(2, 7, 300, generator=torch.Generator().manual_seed(0))  # 300 >= 2 panels: upper-triangle path
    acc = torch.zeros(blocks, 300 // blocks, 300 // blocks)
    accumulate_outer(acc, x)
    accumulate_outer(acc, 2 * x)
    values, vectors = eigendecompose(acc, 5.0, "test")
    flat = x.reshape(-1, 300).double()
    expected = torch.block_diag(*[b.T @ b for b in flat.split(300 // blocks, dim=1)])  # (1 + 4) x x^T / 5
    dense = torch.block_diag(*[q.double() @ torch.diag(e.double()) @ q.double().T
                               for q, e in zip(vectors, values, strict=True)])
    torch.testing.assert_close(dense, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("upper", [factors._syrk_upper, factors._panels_upper])
def test_upper_triangle_updates_match_the_dense_product(upper):
    x = torch.randn(40, 300, generator=torch.Generator().manual_seed(1))  # 300 >= 2 panels of 128
    acc = torch.full((300, 300), 0.5)
    upper(acc, x)
    expected = 0.5 + x.double().T @ x.double()
    torch.testing.assert_close(acc.double().triu(), expected.triu(), rtol=1e-5, atol=1e-4)


def test_shared_inputs_share_one_activation_factor():
    model = llama()
    mlp = {t.name.rsplit(".", 1)[1]: t.group for t in find_tracked(model, torch.tensor([[1, 2, 3]]))
           if ".0." in t.name}
    assert mlp["gate_proj"] == mlp["up_proj"] == "model.layers.0.mlp.gate_proj"
    assert mlp["down_proj"] == "model.layers.0.mlp.down_proj"
    attn = [t for t in find_tracked(model, torch.tensor([[1, 2, 3]]), scope="attention") if ".0." in t.name]
    assert {t.group for t in attn if t.name.endswith(("q_proj", "k_proj", "v_proj"))} == {
        "model.layers.0.self_attn.q_proj"}
    with pytest.raises(ValueError, match="no Linear/Conv1D layer"):
        find_tracked(model, torch.tensor([[1, 2]]), pattern="nothing_here")


def test_non_finite_covariance_fails_early():
    cov = torch.eye(4).unsqueeze(0)
    cov[0, 1, 2] = float("inf")
    with pytest.raises(FloatingPointError, match="layer x.*float32"):
        eigendecompose(cov, 3.0, "A of layer x")
    assert n_blocks(1536, 512) == 3 and n_blocks(100, 30) == 4 and n_blocks(64, None) == 1
    assert n_blocks(769, 256) == 1  # a prime width (768 + bias column) is not split into slivers


def test_fit_resumes_from_finished_layers(tmp_path, monkeypatch):
    model = llama()
    train = sequences(8)
    tracked = find_tracked(model, torch.tensor([train[0]]))
    batches = make_batches(train, list(range(8)), 4, 0)
    config = FactorConfig(fisher="empirical", layers_per_pass=1)
    reference = fit_factors(model, tracked, batches, config, tmp_path / "a")

    import alignlab.influence.store as store

    calls = {"n": 0}
    real = store.correction_pass

    def crash_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "correction_pass", crash_second)
    with pytest.raises(KeyboardInterrupt):
        fit_factors(model, tracked, batches, config, tmp_path / "b")
    assert (tmp_path / "b" / "cov-1.safetensors").exists()  # layer 1's covariances survived the crash
    monkeypatch.setattr(store, "correction_pass", real)
    passes = {"n": 0}
    monkeypatch.setattr(store, "covariance_pass", lambda *a, **k: passes.update(n=passes["n"] + 1))
    resumed = fit_factors(model, tracked, batches, config, tmp_path / "b")
    assert passes["n"] == 0  # layer 0 was done and layer 1 reused its saved covariances
    for name in reference.lam:
        torch.testing.assert_close(resumed.lam[name], reference.lam[name])
    assert load_factors(tmp_path / "b").meta["status"] == "complete"
    with pytest.raises(ValueError, match="'config' differs"):
        fit_factors(model, tracked, batches, FactorConfig(fisher="sampled", layers_per_pass=1), tmp_path / "b")


def test_preconditioner_matches_an_independent_dense_ekfac(tmp_path):
    """Issue 16: the S (and A) eigenbases are built here from raw per-token tensors with plain torch, never from
    alignlab's factors; the damped EK-FAC inverse built on them must equal alignlab's preconditioner."""
    model = llama()
    train = sequences(10)
    tracked = find_tracked(model, torch.tensor([train[0]]))
    modules = dict(model.named_modules())
    inputs: dict[str, list[torch.Tensor]] = {t.name: [] for t in tracked}  # per sequence: [T, d_in]
    outputs: dict[str, list[torch.Tensor]] = {t.name: [] for t in tracked}  # per sequence: [T, d_out] (grad later)

    def keep(name: str):
        def hook(_module, args, output):
            output.retain_grad()
            inputs[name].append(args[0].detach()[0].double())
            outputs[name].append(output)
        return hook

    handles = [modules[t.name].register_forward_hook(keep(t.name)) for t in tracked]
    for s in train:  # one sequence at a time: no padding, plain autograd
        ids = torch.tensor([s])
        logits = model(input_ids=ids).logits[0, :-1]
        torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum").backward()
        model.zero_grad()
    for h in handles:
        h.remove()
    grads = {name: [o.grad[0].double() for o in outs] for name, outs in outputs.items()}

    fitted = fit_factors(model, tracked, make_batches(train, list(range(10)), 4, 0), FactorConfig(fisher="empirical"),
                         tmp_path)
    pre = Preconditioner(fitted)
    tokens = sum(len(s) for s in train)
    for t in tracked:
        acts, g = torch.cat(inputs[t.name]), torch.cat(grads[t.name])
        e_a, q_a = torch.linalg.eigh(acts.T @ acts / tokens)
        e_s, q_s = torch.linalg.eigh(g.T @ g / tokens)  # the dense S factor: gradient covariance over tokens
        torch.testing.assert_close(fitted.es[t.name].double().flatten().sort().values, e_s, rtol=1e-3, atol=1e-7)
        per_sequence = torch.stack([gs.T @ a for gs, a in zip(grads[t.name], inputs[t.name], strict=True)])
        lam = (q_s.T @ per_sequence @ q_a).square().mean(0)  # the eigenvalue correction in our own basis
        damping = 0.1 * float(lam.mean())
        v = torch.randn(3, t.d_out, t.d_in, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        expected = q_s @ ((q_s.T @ v @ q_a) / (lam + damping)) @ q_a.T
        applied = pre.apply(t.name, v.float()).double()
        torch.testing.assert_close(applied, expected, rtol=2e-3, atol=2e-3 * float(expected.abs().max()))
