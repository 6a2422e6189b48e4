"""One step of RLOO and GRPO against a PM (KL term on, LoRA) and of DPO, on a tiny random Llama built offline; the
saved policy is a model spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from alignlab.constitution import prompts as P
from alignlab.constitution.preference_model import PreferenceModel
from alignlab.constitution.train_rl import PMReward, RLConfig, dpo_rows, train_rl
from alignlab.data.errors import DataError
from alignlab.models.types import Message

QUESTIONS = ["How do I hurt someone?", "Tell me a joke", "Where can I buy a gun?", "Help me cheat on a test"]


@pytest.fixture(scope="module")
def pm_dir(tmp_path_factory, tokenizer) -> Path:
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id)
    return PreferenceModel(LlamaForSequenceClassification(config), tokenizer).save(
        tmp_path_factory.mktemp("pm") / "pm", base_model="random")


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_pm_reward_scores_the_raw_transcript(pm_dir: Path) -> None:
    reward = PMReward(PreferenceModel.load(pm_dir, device="cpu"))
    got = reward(prompts=[P.response_prompt("Hi")], completions=[" Hello there "], question=["Hi"])
    assert got == pytest.approx(reward.pm.score([[Message("user", "Hi"), Message("assistant", "Hello there")]]))
    assert reward.__name__ == "preference_model"


@pytest.mark.parametrize("method", ["rloo", "grpo"])
def test_one_online_step_against_the_pm(method: str, tiny_dir: Path, pm_dir: Path, tmp_path: Path) -> None:
    prompts = _write(tmp_path / "prompts.jsonl", [{"prompt": q} for q in QUESTIONS])
    result = train_rl(RLConfig(model=f"hf:{tiny_dir}", method=method, pm=str(pm_dir), prompts=prompts, steps=1,
                               max_completion_length=6), tmp_path)  # type: ignore[arg-type]
    assert result["steps"] == 1 and len(result["rewards"]) == 1 and result["kl"] == [0.0]  # KL 0 at the start
    from alignlab.models.spec import load_model

    policy = load_model(f"hf:{result['policy']}", cache=False)
    assert isinstance(policy.generate_one("Hi", max_new_tokens=3).text, str)


def test_one_dpo_step_on_revision_pairs_and_on_binarised_labels(tiny_dir: Path, tmp_path: Path) -> None:
    pairs = _write(tmp_path / "dpo.jsonl", [{"prompt": P.response_prompt(q), "chosen": " No.", "rejected": " Sure."}
                                            for q in QUESTIONS])
    result = train_rl(RLConfig(model=f"hf:{tiny_dir}", method="dpo", pairs=pairs, steps=1), tmp_path)
    assert result["steps"] == 1 and result["losses"][0] == pytest.approx(0.6931, abs=1e-3)  # log 2 at the start
    labels = _write(tmp_path / "labels.jsonl", [
        {"chosen": P.conversation_text("Q1", "A"), "rejected": P.conversation_text("Q1", "B"), "pref": 0.3},
        {"chosen": P.conversation_text("Q2", "C"), "rejected": P.conversation_text("Q2", "D"), "pref": 0.5}])
    assert dpo_rows(labels, None) == [{"prompt": P.response_prompt("Q1"), "chosen": " B", "rejected": " A"}]


def test_rl_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--pm is required"):
        RLConfig(method="rloo")
    with pytest.raises(ValueError, match="beta must be > 0"):
        RLConfig(method="grpo", pm="x", beta=0.0)
    with pytest.raises(ValueError, match=r"method \(--method\) must be one of"):
        RLConfig(method="ppo", pm="x")  # type: ignore[arg-type]
    bad = _write(tmp_path / "bad.jsonl", [{"prompt": "p", "chosen": "c", "rejected": 3}])
    with pytest.raises(DataError, match=r"bad\.jsonl, line 1, field 'rejected'"):
        dpo_rows(bad, None)
