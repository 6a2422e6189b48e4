"""The soft-label RewardTrainer (loss on a real batch, one step, PM folder round trip) and SL-CAI SFT, on a tiny
random Llama built offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from alignlab.constitution import prompts as P
from alignlab.constitution.data import Comparison, parse_transcript
from alignlab.constitution.preference_model import PreferenceModel
from alignlab.constitution.train_pm import PMConfig, _trl_classes, gather, soft_preference_loss, split, train_pm
from alignlab.constitution.train_sft import SLConfig, train_sft

QUESTIONS = ["How do I hurt someone?", "Tell me a joke", "Where can I buy a gun?", "Help me cheat on a test",
             "How do I bake bread?", "Insult my friend"]


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    ai = [{"chosen": P.conversation_text(q, "I'd rather not."), "rejected": P.conversation_text(q, "Sure, here."),
           "pref": p} for q, p in zip(QUESTIONS, [0.7, 0.4, 0.9, 0.5, 0.6, 0.8], strict=True)]
    human = [{"chosen": P.conversation_text(q, "Here is a careful answer."), "rejected": P.conversation_text(q, "?")}
             for q in QUESTIONS[:4]]
    sft = [{"prompt": P.response_prompt(q), "completion": " I can help with something safer.", "round": 1 + i % 2}
           for i, q in enumerate(QUESTIONS)]
    return {"ai": _write(tmp_path / "labels.jsonl", ai), "human": _write(tmp_path / "human.jsonl", human),
            "sft": _write(tmp_path / "sft.jsonl", sft)}


def test_data_mixing_split_and_binarising(files: dict[str, str]) -> None:
    train, held = gather(PMConfig(ai_labels=[files["ai"]], human=[files["human"]], eval_fraction=0.25))
    assert len(train) + len(held) == 10 and {k for k, _ in held} == {"ai", "human"}
    assert all(c.pref == 1.0 for k, c in train + held if k == "human")
    assert sorted(c.pref for k, c in train + held if k == "ai") == [0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    binary, _ = gather(PMConfig(ai_labels=[files["ai"]], binarize=True, eval_fraction=0.0))
    assert sorted(c.pref for _, c in binary) == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]  # 0.5 rounds down
    items = [Comparison("a", "b", 1.0, str(i)) for i in range(10)]
    assert split(items, 0.2, 0, "x") == split(items, 0.2, 0, "x") and len(split(items, 0.2, 0, "x")[1]) == 2
    with pytest.raises(ValueError, match="no training data"):
        gather(PMConfig())


def test_soft_reward_trainer_loss_is_the_soft_formula_on_a_real_batch(tiny_dir: Path, tokenizer,
                                                                      files: dict[str, str], tmp_path: Path) -> None:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_dir, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    with torch.no_grad():
        model.score.weight.normal_(0, 1.0)  # visible reward differences
    collator_cls, trainer_cls = _trl_classes()
    rows = [json.loads(line) for line in Path(files["ai"]).read_text().splitlines()][:3]
    trainer = trainer_cls(model=model, args=RewardConfig(str(tmp_path / "t"), report_to="none", bf16=False,
                                                         use_cpu=True, max_steps=1),
                          train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                          data_collator=collator_cls(pad_token_id=tokenizer.pad_token_id))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    assert batch["pref"].tolist() == pytest.approx([0.7, 0.4, 0.9])
    loss = trainer.compute_loss(model, dict(batch))
    with torch.no_grad():
        rewards = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
    d = rewards[:3] - rewards[3:]
    assert d.abs().max() > 1e-3
    assert loss.item() == pytest.approx(soft_preference_loss(d, batch["pref"]).item(), rel=1e-5)


def test_one_pm_step_saves_a_loadable_merged_pm(tiny_dir: Path, files: dict[str, str], tmp_path: Path) -> None:
    result = train_pm(PMConfig(base=f"hf:{tiny_dir}", ai_labels=[files["ai"]], human=[files["human"]], steps=1,
                               batch_size=2, eval_fraction=0.34), tmp_path)
    assert len(result["losses"]) == 1 and result["heldout"]["n"] >= 2
    pm = PreferenceModel.load(result["pm_path"], device="cpu")
    config = json.loads((Path(result["pm_path"]) / "alignlab_pm.json").read_text())
    assert config["base_model"] == f"hf:{tiny_dir}" and config["format"] == "raw_hh"
    assert not any("lora" in k for k in pm.model.state_dict())  # merged before saving
    transcript = parse_transcript(P.conversation_text("Hi", "Hello"))
    assert pm.score([transcript]) == pytest.approx(PreferenceModel.load(result["pm_path"]).score([transcript]))


def test_one_sft_step_on_revisions(tiny_dir: Path, files: dict[str, str], tmp_path: Path) -> None:
    from safetensors.torch import load_file

    result = train_sft(SLConfig(model=f"hf:{tiny_dir}", data=files["sft"], steps=1, max_round=1), tmp_path)
    assert result["rows"] == 3 and result["steps"] == 1 and result["losses"][0] > 0  # rounds <= 1 only
    before = load_file(tiny_dir / "model.safetensors")
    after = load_file(Path(result["policy"]) / "model.safetensors")
    assert set(after) == set(before)  # LoRA merged: same tensors as the base
    assert any(not torch.equal(before[k], after[k]) for k in before)
