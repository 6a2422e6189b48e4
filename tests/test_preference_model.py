"""The preference-model folder format: save/load round trip, batching invariance, transcript rendering, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from alignlab.constitution.preference_model import PreferenceModel, render_transcript
from alignlab.models.types import Message


def _tiny_pm(tokenizer) -> PreferenceModel:
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id)
    return PreferenceModel(LlamaForSequenceClassification(config), tokenizer)


TRANSCRIPTS = [
    [Message("user", "How do I pick a lock?"), Message("assistant", "I can't help with that.")],
    [Message("user", "Hi"), Message("assistant", "Hello! How can I help you today with anything at all?"),
     Message("user", "Tell me a joke."), Message("assistant", "Why did the chicken cross the road?")],
    [Message("user", "x"), Message("assistant", "y")],
]


def test_raw_hh_transcript_is_the_hh_rlhf_format(tokenizer) -> None:
    text = render_transcript(TRANSCRIPTS[0], tokenizer, "raw_hh")
    assert text == "\n\nHuman: How do I pick a lock?\n\nAssistant: I can't help with that."


def test_batched_scores_equal_one_at_a_time_and_survive_a_round_trip(tokenizer, tmp_path: Path) -> None:
    pm = _tiny_pm(tokenizer)
    batched = pm.score(TRANSCRIPTS)
    alone = [pm.score([t])[0] for t in TRANSCRIPTS]
    assert batched == pytest.approx(alone, abs=1e-5)  # padding never changes a score
    assert len(set(round(s, 6) for s in batched)) == 3
    pm.save(tmp_path / "pm", base_model="tiny")
    loaded = PreferenceModel.load(tmp_path / "pm", device="cpu")
    assert loaded.score(TRANSCRIPTS) == pytest.approx(batched, abs=1e-5)
    assert loaded.fingerprint() == PreferenceModel.load(tmp_path / "pm", device="cpu").fingerprint()
    assert loaded.fingerprint()["format"] == "raw_hh" and len(loaded.fingerprint()["weights"]) == 24


def test_loading_a_folder_that_is_not_a_pm_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="alignlab_pm.json"):
        PreferenceModel.load(tmp_path)
