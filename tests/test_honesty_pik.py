"""P(IK): features, probe and LoRA heads, save/load round trips, the study and the CLI (tiny random Llama)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from alignlab.honesty.heads import HeadConfig, PIKHead, features, load_head, train_lora, train_probe
from alignlab.honesty.pik import PIKConfig, evaluation_row, run_pik, split_train_test
from alignlab.honesty.questions import first_integer
from alignlab.models.base import Model
from alignlab.models.hf import HFBackend
from alignlab.runs.run import Run
from tests.conftest import make_tiny_llama

PROMPTS = [f"Question: What is {i} + {i}?\nAnswer:" for i in range(8)]


@pytest.fixture(scope="module")
def model(tiny_model, tokenizer):
    return Model(HFBackend(tiny_model, tokenizer, spec="hf:tiny"))


def test_features_read_the_last_prompt_token_whatever_the_padding(model):
    batched = features(model, PROMPTS + ["Q"], batch_size=9)
    one_by_one = np.concatenate([features(model, [p]) for p in PROMPTS + ["Q"]])
    assert batched.shape == (9, 32)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_probe_soft_labels_learn_a_separable_direction():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 5))
    soft = (x[:, 0] > 0).astype(float) * 0.9 + 0.05  # 27 of 30 right vs 1.5 of 30
    tensors = train_probe(x, soft)
    z = (torch.tensor(x, dtype=torch.float32) - tensors["mean"]) / tensors["scale"]
    p = torch.sigmoid(z @ tensors["weight"] + tensors["bias"]).numpy()
    assert evaluation_row(p.tolist(), soft.tolist())["auroc"] > 0.95
    assert abs(tensors["weight"][0].item()) == max(abs(w) for w in tensors["weight"].tolist())


def test_probe_head_round_trips_and_refuses_another_model(tmp_path, model, tokenizer):
    x = features(model, PROMPTS)
    head = PIKHead(HeadConfig("probe", model.spec, model.fingerprint_id, 32), train_probe(x, [0.1, 0.9] * 4))
    before = head.predict(model, PROMPTS)
    loaded = load_head(head.save(tmp_path / "h"), model)
    np.testing.assert_allclose(loaded.predict(model, PROMPTS), before, atol=1e-6)
    assert json.loads((tmp_path / "h" / "head.json").read_text())["fingerprint_id"] == model.fingerprint_id
    other = Model(HFBackend(make_tiny_llama(tokenizer, seed=1), tokenizer, spec="hf:other"))
    with pytest.raises(ValueError, match="trained on hf:tiny"):
        load_head(tmp_path / "h", other)
    with pytest.raises(FileNotFoundError, match="not a saved P\\(IK\\) head"):
        load_head(tmp_path, model)


def test_lora_head_trains_moves_towards_labels_and_round_trips(tmp_path, model):
    labels = [1.0, 0.0] * 4
    weights_before = {k: v.clone() for k, v in model.backend.model.state_dict().items()}
    adapted, tensors, lora = train_lora(model, PROMPTS, labels, epochs=8, lr=5e-3, batch_size=8)
    for k, v in model.backend.model.state_dict().items():  # the served model is untouched
        assert torch.equal(v, weights_before[k])
    head = PIKHead(HeadConfig("lora", model.spec, model.fingerprint_id, 32, lora=lora), tensors, adapted)
    p = head.predict(model, PROMPTS)
    assert np.mean(p[::2]) > np.mean(p[1::2])  # fitted on its training prompts
    loaded = load_head(head.save(tmp_path / "lora"), model)
    assert (tmp_path / "lora" / "adapter" / "adapter_model.safetensors").is_file()
    np.testing.assert_allclose(loaded.predict(model, PROMPTS), p, atol=1e-5)


def test_train_test_split_is_seeded_and_disjoint():
    tr, te = split_train_test(20, 0.25, seed=3)
    assert (tr, te) == split_train_test(20, 0.25, seed=3)
    assert len(te) == 5 and not set(tr) & set(te) and sorted(tr + te) == list(range(20))


def test_run_pik_labels_from_batched_samples_trains_reloads_and_scores(tmp_path, model, monkeypatch):
    calls = []
    original = Model.generate

    def counting(self, requests, progress=None):
        calls.append([r.params.n for r in requests])
        return original(self, requests, progress)

    monkeypatch.setattr(Model, "generate", counting)
    source = tmp_path / "src.jsonl"
    source.write_text("\n".join(json.dumps({"question": f"What is {i} + 1?", "answers": [str(i + 1)],
                                            "background": f"{i} plus one is {i + 1}."}) for i in range(3)))
    config = PIKConfig(train_task="arithmetic:add:1", eval_tasks=["arithmetic:mul:1"], questions=8, samples=5,
                       answer_shots=2, max_new_tokens=3, source_material=str(source), chunk_size=8)
    run = Run.create("pik", {}, root=tmp_path)
    summary = run_pik(run, model, config)
    assert calls == [[5] * 8, [5] * 8]  # one batched call per task: 8 questions x 5 samples
    labels = [s for s in run.samples() if s.get("kind") == "label"]
    assert len(labels) == 16
    for s in labels:  # the label is the fraction of the 5 samples whose first integer is the answer
        right = [first_integer(x) == int(s["answers"][0]) for x in s["samples"]]
        assert len(s["samples"]) == 5 and s["label"] == pytest.approx(np.mean(right))
    results = summary["metrics"]["results"]
    assert set(results) == {"arithmetic:add:1 (in-distribution)", "arithmetic:mul:1 (out-of-distribution)"}
    assert results["arithmetic:add:1 (in-distribution)"]["n"] == 2
    assert summary["metrics"]["source_material"]["n"] == 3
    assert (run.path / "pik-head" / "head.safetensors").is_file()
    calls.clear()
    again = run_pik(Run.resume(run.path), model, config)  # labels and head come from the run
    assert calls == [] and again["metrics"]["results"] == results
