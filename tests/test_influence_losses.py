"""The influence losses: the fused next-token NLL against torch's cross entropy, and the seeded label sampler."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from alignlab.influence.data import IGNORE, NextTokenNLL, sample_labels


def test_fused_nll_matches_cross_entropy_in_value_and_gradient():
    gen = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(3, 6, 40, generator=gen)).requires_grad_(True)
    labels = torch.randint(0, 40, (3, 6), generator=gen)
    labels[0, :2] = IGNORE
    labels[:, -1] = IGNORE
    ours = NextTokenNLL.apply(logits, labels, None)
    (ours_grad,) = torch.autograd.grad(2.5 * ours, logits)
    ref = F.cross_entropy(logits.view(-1, 40), labels.view(-1), ignore_index=IGNORE, reduction="sum")
    (ref_grad,) = torch.autograd.grad(2.5 * ref, logits)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(ours_grad, ref_grad)
    assert ours_grad[0, :2].abs().max() == 0  # ignored positions get no gradient


def test_fused_nll_of_an_underflowed_probability_is_exact():
    logits = torch.tensor([[[0.0, 200.0, -500.0]]])
    assert NextTokenNLL.apply(logits, torch.tensor([[2]]), None).item() == pytest.approx(700.0)


def test_fused_nll_refuses_a_second_backward():
    logits = torch.randn(1, 2, 5, requires_grad=True)
    loss = NextTokenNLL.apply(logits, torch.tensor([[1, 2]]), None)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward runs once"):
        loss.backward()


def test_sampled_labels_follow_the_distribution_and_keep_ignored_positions():
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3]).expand(1, 20000, 4)
    labels = torch.zeros(1, 20000, dtype=torch.long)
    labels[0, :10] = IGNORE
    drawn = sample_labels(probs, labels, [7], seed=3)
    assert (drawn[0, :10] == IGNORE).all()
    counts = torch.bincount(drawn[0, 10:], minlength=4).double() / 19990
    assert counts[1] == 0  # probability 0 is never drawn
    torch.testing.assert_close(counts, torch.tensor([0.1, 0.0, 0.6, 0.3], dtype=torch.double), atol=0.015, rtol=0)


def test_sampled_labels_depend_on_the_row_not_the_batch():
    probs = torch.softmax(torch.randn(3, 8, 30, generator=torch.Generator().manual_seed(1)), -1)
    labels = torch.zeros(3, 8, dtype=torch.long)
    together = sample_labels(probs, labels, [4, 9, 2], seed=0)
    alone = sample_labels(probs[1:2], labels[1:2], [9], seed=0)
    assert torch.equal(together[1], alone[0])
    assert not torch.equal(sample_labels(probs, labels, [4, 9, 2], seed=1), together)
