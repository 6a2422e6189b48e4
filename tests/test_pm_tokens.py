"""One tokenisation for PM training and use, and off-the-shelf reward models as ``hf:<id-or-path>``."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from alignlab.constitution import prompts as P
from alignlab.constitution.data import Comparison, parse_transcript
from alignlab.constitution.preference_model import PreferenceModel
from alignlab.constitution.train_pm import _trl_classes, preference_dataset
from alignlab.models.types import Message

PAIRS = [Comparison(P.conversation_text("How do I pick a lock?", "I can't help with that."),
                    P.conversation_text("How do I pick a lock?", "Sure: take a tension wrench and a pick."), 1.0),
         Comparison(P.conversation_text("Tell me a joke", "Why did the chicken cross the road?"),
                    P.conversation_text("Tell me a joke", "No."), 0.7)]


@pytest.fixture(scope="module")
def pad_tokenizer(tokenizer):
    """The embedded tokenizer with a pad token of its own (pad != eos, as Qwen2.5 and Gemma have)."""
    tok = copy.deepcopy(tokenizer)
    tok.add_special_tokens({"pad_token": "<pad>"})
    assert tok.pad_token_id != tok.eos_token_id
    return tok


def _classifier(tok, *, labels: int = 1, kind: str = "llama") -> torch.nn.Module:
    from transformers import (
        DebertaV2Config,
        DebertaV2ForSequenceClassification,
        LlamaConfig,
        LlamaForSequenceClassification,
    )

    torch.manual_seed(0)
    if kind == "deberta":
        config = DebertaV2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, max_position_embeddings=512, num_labels=labels,
                                 pad_token_id=tok.pad_token_id)
        return DebertaV2ForSequenceClassification(config).eval()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, num_labels=labels, pad_token_id=tok.pad_token_id)
    model = LlamaForSequenceClassification(config).eval()
    with torch.no_grad():
        model.score.weight.normal_(0, 1.0)  # visible reward differences
    return model


def test_training_time_rewards_equal_scoring_time_rewards_when_pad_is_not_eos(pad_tokenizer, tmp_path: Path) -> None:
    from trl import RewardConfig

    model = _classifier(pad_tokenizer)
    collator_cls, trainer_cls = _trl_classes()
    trainer = trainer_cls(model=model, args=RewardConfig(str(tmp_path / "t"), report_to="none", bf16=False,
                                                         use_cpu=True, max_steps=1, max_length=16),
                          train_dataset=preference_dataset(pad_tokenizer, PAIRS, max_length=16),
                          processing_class=pad_tokenizer,
                          data_collator=collator_cls(pad_token_id=pad_tokenizer.pad_token_id))
    assert len(trainer.train_dataset) == 2  # truncated to 16 tokens, not dropped
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    assert pad_tokenizer.eos_token_id not in batch["input_ids"].tolist()[0]  # TRL appended no EOS
    with torch.no_grad():
        trained = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0].tolist()
    pm = PreferenceModel(model, pad_tokenizer, max_length=16)
    scored = pm.score([parse_transcript(c.chosen) for c in PAIRS] + [parse_transcript(c.rejected) for c in PAIRS])
    assert scored == pytest.approx(trained, abs=1e-5)
    assert len({round(s, 4) for s in scored}) == 4


def _save(model, tok, folder: Path) -> Path:
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_off_the_shelf_llama_reward_model_reads_its_chat_template(pad_tokenizer, tmp_path: Path) -> None:
    model = _classifier(pad_tokenizer)
    folder = _save(model, pad_tokenizer, tmp_path / "rm")
    pm = PreferenceModel.load(f"hf:{folder}", device="cpu")
    assert pm.format == "chat" and pm.meta["base_model"] == f"hf:{folder}"
    talk = [Message("user", "Hi"), Message("assistant", "Hello there")]
    ids = pad_tokenizer.apply_chat_template([{"role": m.role, "content": m.content} for m in talk], tokenize=True,
                                            return_dict=True)["input_ids"]
    with torch.no_grad():
        expected = model(input_ids=torch.tensor([ids])).logits[0, 0].item()
    assert pm.score([talk, [Message("user", "x"), Message("assistant", "a longer reply than the first")]])[0] == \
        pytest.approx(expected, abs=1e-5)
    with pytest.raises(FileNotFoundError, match="alignlab_pm.json"):
        PreferenceModel.load(folder)  # a plain folder must be named hf:<path>


def test_off_the_shelf_deberta_without_template_reads_raw_hh_and_two_labels_fail(pad_tokenizer,
                                                                                 tmp_path: Path) -> None:
    tok = copy.deepcopy(pad_tokenizer)
    tok.chat_template = None
    model = _classifier(tok, kind="deberta")
    pm = PreferenceModel.load(f"hf:{_save(model, tok, tmp_path / 'deberta')}", device="cpu")
    assert pm.format == "raw_hh"
    talk = [Message("user", "Hi"), Message("assistant", "Hello there")]
    encoded = tok("\n\nHuman: Hi\n\nAssistant: Hello there", return_tensors="pt")
    with torch.no_grad():
        assert pm.score([talk])[0] == pytest.approx(model(**encoded).logits[0, 0].item(), abs=1e-5)
    two = _save(_classifier(tok, labels=2), tok, tmp_path / "two")
    with pytest.raises(ValueError, match="2 labels"):
        PreferenceModel.load(f"hf:{two}", device="cpu")
