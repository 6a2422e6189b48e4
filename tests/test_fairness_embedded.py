"""The embedded model through the BBQ study: recorded option log-probabilities against a plain forward pass."""

from __future__ import annotations

import pytest
import torch

from alignlab.fairness import prompts as P
from alignlab.fairness.bbq import BBQConfig, run_bbq
from alignlab.models import Model
from alignlab.models.hf import HFBackend
from alignlab.runs.run import Run


@pytest.mark.embedded
def test_embedded_bbq_and_cot_match_a_plain_forward_pass(tmp_path, embedded_dir, shared_data):
    """On the embedded model: a few BBQ questions under Q and Q+IF+CoT; each recorded option log-probability
    equals log p(prompt + option) - log p(prompt) from one plain forward pass per text."""
    backend = HFBackend.from_pretrained(embedded_dir, spec="embedded")
    run = Run.create("fairness", {}, root=tmp_path)
    run_bbq(run, [Model(backend)], BBQConfig(categories=["Religion"], limit=2, cot_limit=1, cot_tokens=8,
                                             interventions=["q", "cot"], data=str(shared_data)))
    samples = run.samples()
    assert [s["intervention"] for s in samples] == ["q"] * 2 + ["cot"]

    def total(text: str) -> float:
        ids = torch.tensor([backend.encode(text)])
        with torch.no_grad():
            logp = torch.log_softmax(backend.model(ids).logits[0, :-1].double(), -1)
        return float(logp.gather(1, ids[0, 1:, None]).sum())

    for s in samples:
        assert s["prompt"].startswith("\n\nHuman: ") and sum(s["probs"]) == pytest.approx(1.0)
        expected = [total(s["prompt"] + option) - total(s["prompt"]) for option in P.BBQ_OPTIONS]
        assert s["logprobs"] == pytest.approx(expected, abs=2e-3)
    cot = samples[-1]
    assert cot["reasoning"] is not None and f"{P.BBQ_COT_PREFILL}{cot['reasoning']}".rstrip() in cot["prompt"]
