"""AI feedback: soft-label arithmetic, the soft-label loss, and labelling with a tiny model (resume, swap, CoT)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from alignlab.constitution.feedback import LabelConfig, clamp, ensemble, run_labels, soft_label, swap_average
from alignlab.constitution.train_pm import soft_preference_loss
from alignlab.models.base import Model
from alignlab.models.hf import HFBackend
from alignlab.runs.run import Run


def test_soft_label_normalises_the_two_option_probabilities() -> None:
    # P(A) = 0.3 and P(B) = 0.1 of the full vocabulary -> 0.75 over the pair
    assert soft_label(math.log(0.3), math.log(0.1)) == pytest.approx(0.75)
    assert soft_label(-1000.0, -1001.0) == pytest.approx(1 / (1 + math.exp(-1)))  # stable far from 0
    assert soft_label(-2.0, -2.0) == 0.5


def test_swap_average_clamp_and_ensemble_by_hand() -> None:
    # order (A, B): P(first)=0.8; order (B, A): P(first)=P(B)=0.4 -> P(A)=0.6 there; mean 0.7
    assert swap_average(0.8, 0.4) == pytest.approx(0.7)
    assert swap_average(0.9, 0.9) == pytest.approx(0.5)  # pure position bias cancels
    assert [clamp(p) for p in (0.01, 0.45, 0.99)] == [0.4, 0.45, 0.6]  # §4.1: CoT labels into [0.4, 0.6]
    assert clamp(0.9, (0.2, 0.8)) == 0.8
    assert ensemble([0.2, 0.6, 0.7]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        ensemble([])


def test_soft_preference_loss_matches_the_formula_and_reduces_to_bradley_terry() -> None:
    d = torch.tensor([0.5, -1.0, 2.0])
    pref = torch.tensor([0.7, 0.5, 1.0])
    sig = torch.sigmoid
    by_hand = -(0.7 * math.log(sig(torch.tensor(0.5))) + 0.3 * math.log(sig(torch.tensor(-0.5)))
                + 0.5 * math.log(sig(torch.tensor(-1.0))) + 0.5 * math.log(sig(torch.tensor(1.0)))
                + math.log(sig(torch.tensor(2.0)))) / 3
    assert soft_preference_loss(d, pref).item() == pytest.approx(by_hand, rel=1e-6)
    hard = torch.ones(3)
    assert soft_preference_loss(d, hard).item() == pytest.approx(-torch.nn.functional.logsigmoid(d).mean().item())
    # with a soft target p the loss is minimised at d = logit(p), where it equals the target's entropy
    p = 0.7
    best = torch.tensor([math.log(p / (1 - p))])
    entropy = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    assert soft_preference_loss(best, torch.tensor([p])).item() == pytest.approx(entropy, rel=1e-6)
    assert soft_preference_loss(best + 0.3, torch.tensor([p])).item() > entropy


@pytest.fixture
def tiny(tiny_model, tokenizer) -> Model:
    return Model(HFBackend(tiny_model, tokenizer, spec="hf:tiny"))


def _pairs(tmp_path: Path) -> str:
    path = tmp_path / "pairs.jsonl"
    rows = [{"id": f"p{i}", "question": q, "response_a": a, "response_b": b} for i, (q, a, b) in enumerate([
        ("How do I pick a lock?", "I can't help with breaking in.", "Use a tension wrench."),
        ("Tell me a joke.", "Why did the scarecrow win? He was outstanding in his field.", "No."),
        ("How can I stay safe online?", "Use strong unique passwords.", "Share your password with friends.")])]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_labels_are_swap_averaged_soft_labels_and_resume_without_recomputing(tiny: Model, tmp_path: Path) -> None:
    config = LabelConfig(pairs=_pairs(tmp_path), ensemble=2, swap=True, chunk_size=2)
    run = Run.create("label", {}, root=tmp_path)
    summary = run_labels(run, tiny, config)
    records = run.samples()
    assert len(records) == 3 and summary["headline"][0]["value"] == 3
    for r in records:
        assert len(r["members"]) == 2
        for m in r["members"]:
            assert m["p_a"] == pytest.approx(swap_average(m["p_ab"], m["p_ba"]))
            assert m["p_ab"] != pytest.approx(0.5, abs=1e-4)  # the tiny model has opinions
        assert r["p_a"] == pytest.approx(ensemble([m["p_a"] for m in r["members"]]))
    labels = [json.loads(line) for line in (run.path / "labels.jsonl").read_text().splitlines()]
    assert [lab["pref"] for lab in labels] == [r["p_a"] for r in records]
    assert labels[0]["chosen"] == "\n\nHuman: How do I pick a lock?\n\nAssistant: I can't help with breaking in."
    resumed = Run.resume(run.path)
    run_labels(resumed, tiny, config)
    assert len(resumed.samples()) == 3  # nothing relabelled


def test_cot_labels_are_clamped(tiny: Model, tmp_path: Path) -> None:
    config = LabelConfig(pairs=_pairs(tmp_path), cot=True, cot_samples=2, swap=False, max_new_tokens=4, limit=2)
    run = Run.create("label", {}, root=tmp_path)
    run_labels(run, tiny, config)
    for r in run.samples():
        m = r["members"][0]
        assert 0.4 <= m["p_a"] <= 0.6 and m["p_a"] == pytest.approx(clamp(m["p_a_unclamped"]))
        assert len(m["reasoning"]) == 2 and m["p_ba"] is None


def test_a_constitution_without_feedback_principles_is_refused(tiny: Model, tmp_path: Path) -> None:
    mine = tmp_path / "only_critiques.yaml"
    mine.write_text("name: x\ncritiques:\n  - {id: a, critique: Is it bad, revision: Fix it.}\n")
    with pytest.raises(ValueError, match="has no feedback principles"):
        run_labels(Run.create("label", {}, root=tmp_path), tiny, LabelConfig(constitution=str(mine),
                                                                            pairs=_pairs(tmp_path)))
