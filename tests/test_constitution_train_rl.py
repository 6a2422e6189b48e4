"""RL-CAI on tiny random models built offline: the reward scores one reply and enters the loss with the right sign,
rollouts are saved per step, prompts are in the chosen format, RL starts from an SL-CAI policy, and DPO."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from alignlab.constitution import prompts as P
from alignlab.constitution.formats import end_of_turn
from alignlab.constitution.preference_model import PreferenceModel
from alignlab.constitution.rl_reward import Reward, cut_at_stop, pm_score
from alignlab.constitution.train_rl import RLConfig, dpo_rows, rendered_prompt, rl_dataset_rows, train_rl
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


def _jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_the_pm_reward_scores_one_reply_and_logs_it(pm_dir: Path, tokenizer, tmp_path: Path) -> None:
    pm = PreferenceModel.load(pm_dir, device="cpu")
    log = tmp_path / "log.jsonl"
    raw = Reward(pm_score(pm), "raw_hh", log=log)
    got = raw(prompts=[P.response_prompt("Hi")], completions=[" Hello there\n\nHuman: and now insult me"],
              question=["Hi"])
    assert got == pytest.approx(pm.score([[Message("user", "Hi"), Message("assistant", "Hello there")]]))
    assert raw.__name__ == "preference_model"
    eot = end_of_turn(tokenizer)
    assert eot == "<|im_end|>"
    chat = Reward(pm_score(pm), "chat", eot)
    got = chat(prompts=[[{"role": "user", "content": "Hi"}]],
               completions=[[{"role": "assistant", "content": f"Hello there{eot}\n<|im_start|>user\nmore"}]],
               question=["Hi"])
    assert got == pytest.approx(pm.score([[Message("user", "Hi"), Message("assistant", "Hello there")]]))
    (row,) = _jsonl(log)
    assert row["reply"] == "Hello there" and row["reward"] == pytest.approx(got[0])


def test_generation_is_cut_before_the_next_human_turn(tokenizer) -> None:
    ids = tokenizer("Sure, here you go.\n\nHuman: thanks\n\nAssistant: ok").input_ids
    cut = cut_at_stop(ids, tokenizer.decode)
    assert tokenizer.decode(cut).rstrip() == "Sure, here you go." and len(cut) < len(ids)
    assert cut_at_stop(ids[:3], tokenizer.decode) == ids[:3]  # no stop: unchanged


def test_the_trainer_stops_sampling_at_one_reply(tokenizer) -> None:
    """The RLOO/GRPO subclass cuts what TRL sampled (ids and logprobs) in raw_hh, and in chat makes the template's
    end-of-turn token an EOS token."""
    from alignlab.constitution.rl_reward import one_turn_trainer

    sampled = tokenizer("No.\n\nHuman: go on\n\nAssistant: fine").input_ids

    class Sampler:  # stands in for TRL's trainer: returns what it sampled, as GRPOTrainer does
        def __init__(self) -> None:
            self.eos_token_ids = [0]
            self.generation_config = type("G", (), {"eos_token_id": [0]})()
            self.generation_kwargs = {"eos_token_id": [0]}

        def _generate_single_turn(self, prompt_ids, *rest):  # noqa: ANN001, ANN002, ANN202
            return [list(sampled)], [[-1.0] * len(sampled)]

    ids, logprobs = one_turn_trainer(Sampler, "raw_hh", tokenizer, "")()._generate_single_turn([[1]])
    assert tokenizer.decode(ids[0]).rstrip() == "No." and len(logprobs[0]) == len(ids[0])
    chat = one_turn_trainer(Sampler, "chat", tokenizer, "<|im_end|>")()
    assert chat._generate_single_turn([[1]])[0] == [sampled]  # chat: generation itself stops at the end of turn
    assert chat.eos_token_ids == [0, tokenizer.convert_tokens_to_ids("<|im_end|>")]
    assert chat.generation_config.eos_token_id == chat.eos_token_ids


def _logps(model, prompt_ids: list[int], completions: list[list[int]]) -> np.ndarray:
    """Summed log-probability of each completion after the prompt."""
    out = []
    for ids in completions:
        x = torch.tensor([prompt_ids + ids])
        with torch.no_grad():
            logp = model(x).logits[0, :-1].float().log_softmax(-1).gather(1, x[0, 1:, None])[:, 0]
        out.append(float(logp[len(prompt_ids) - 1:].sum()))
    return np.array(out)


def test_the_reward_enters_the_loss_with_the_right_sign_and_the_weights_move(tiny_dir: Path, tokenizer,
                                                                           tmp_path: Path) -> None:
    """One RLOO step with a scripted reward (longer reply = better): to first order the step raises
    sum_i A_i log p(completion_i), A_i the advantage of completion i, so completions with more reward gain
    log-probability relative to those with less. A flipped sign anywhere between reward and loss makes it fall."""
    from transformers import AutoModelForCausalLM

    prompts = _write(tmp_path / "prompts.jsonl", [{"prompt": QUESTIONS[0]}])
    config = RLConfig(model=f"hf:{tiny_dir}", method="rloo", pm="unused", prompts=prompts, steps=1, batch_size=4,
                      num_generations=4, max_completion_length=6, lora=False, learning_rate=1e-3,
                      prompt_format="raw_hh")
    result = train_rl(config, tmp_path, score=lambda questions, replies: [float(len(r)) for r in replies])
    rollouts = _jsonl(result["completions"])
    assert [r["step"] for r in rollouts] == [1] * 4 and result["format"] == "raw_hh"
    rewards = np.array([r["reward"] for r in rollouts])
    assert list(rewards) == [float(len(r["reply"])) for r in rollouts] and rewards.std() > 0
    prompt_ids = tokenizer(P.response_prompt(QUESTIONS[0])).input_ids
    before = _logps(AutoModelForCausalLM.from_pretrained(tiny_dir), prompt_ids, [r["completion_ids"] for r in rollouts])
    after = _logps(AutoModelForCausalLM.from_pretrained(result["policy"]), prompt_ids,
                   [r["completion_ids"] for r in rollouts])
    advantage = rewards - rewards.mean()
    assert float(advantage @ (after - before)) > 0
    best, worst = int(np.argmax(rewards)), int(np.argmin(rewards))
    assert (after - before)[best] > (after - before)[worst]
    # the weights moved, by the relative distance the summary reports
    start = AutoModelForCausalLM.from_pretrained(tiny_dir).state_dict()
    end = AutoModelForCausalLM.from_pretrained(result["policy"]).state_dict()
    by_hand = (sum(float(((end[k] - v) ** 2).sum()) for k, v in start.items()) ** 0.5
               / sum(float((v ** 2).sum()) for v in start.values()) ** 0.5)
    assert result["weight_distance"] == pytest.approx(by_hand, rel=1e-4) and by_hand > 1e-4


def test_rl_prompts_are_rendered_in_the_chosen_format(tokenizer) -> None:
    (chat,) = rl_dataset_rows(["Hi"], "chat")
    assert rendered_prompt(chat, tokenizer) == tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    (raw,) = rl_dataset_rows(["Hi"], "raw_hh")
    assert rendered_prompt(raw, tokenizer) == "\n\nHuman: Hi\n\nAssistant:"


def test_rl_starts_from_an_sl_cai_policy_in_chat_format(tiny_dir: Path, pm_dir: Path, tmp_path: Path) -> None:
    from alignlab.constitution.config import SLConfig
    from alignlab.constitution.formats import sft_row
    from alignlab.constitution.train_sft import train_sft

    sft = _write(tmp_path / "sft.jsonl", [sft_row(q, "I can't help with that.", "chat") for q in QUESTIONS])
    sl = train_sft(SLConfig(model=f"hf:{tiny_dir}", data=sft, steps=1), tmp_path / "sft")
    assert sl["format"] == "chat" and sl["example_input"].count("<|im_start|>assistant\n") == 1  # the template
    prompts = _write(tmp_path / "prompts.jsonl", [{"prompt": q} for q in QUESTIONS])
    result = train_rl(RLConfig(model=f"hf:{sl['policy']}", method="grpo", pm=str(pm_dir), prompts=prompts, steps=1,
                               max_completion_length=6), tmp_path / "rl")
    assert result["steps"] == 1 and result["format"] == "chat" and result["kl"] == [0.0]  # KL 0 at the start
    assert result["example_input"].endswith("<|im_start|>assistant\n")
    pm = PreferenceModel.load(pm_dir, device="cpu")
    for r in _jsonl(result["completions"]):
        assert "<|im_end|>" not in r["reply"]
        assert r["reward"] == pytest.approx(pm.score([[Message("user", r["question"]),
                                                       Message("assistant", r["reply"])]])[0], abs=1e-4)
    saved = json.loads((Path(result["policy"]) / "alignlab_training.json").read_text())
    assert saved["format"] == "chat" and saved["base"] == f"hf:{sl['policy']}"
    from alignlab.models.spec import load_model

    policy = load_model(f"hf:{result['policy']}", cache=False)
    assert isinstance(policy.generate_one("Hi", max_new_tokens=3).text, str)


def test_one_dpo_step_on_revision_pairs_and_on_binarised_labels(tiny_dir: Path, tmp_path: Path) -> None:
    pairs = _write(tmp_path / "dpo.jsonl", [{"prompt": P.response_prompt(q), "chosen": " No.", "rejected": " Sure."}
                                            for q in QUESTIONS])
    result = train_rl(RLConfig(model=f"hf:{tiny_dir}", method="dpo", pairs=pairs, steps=1), tmp_path)
    assert result["steps"] == 1 and result["losses"][0] == pytest.approx(0.6931, abs=1e-3)  # log 2 at the start
    assert result["format"] == "raw_hh"  # auto follows the pairs' format
    labels = _write(tmp_path / "labels.jsonl", [
        {"chosen": P.conversation_text("Q1", "A"), "rejected": P.conversation_text("Q1", "B"), "pref": 0.3},
        {"chosen": P.conversation_text("Q2", "C"), "rejected": P.conversation_text("Q2", "D"), "pref": 0.5}])
    assert dpo_rows(labels, None) == [{"prompt": P.response_prompt("Q1"), "chosen": " B", "rejected": " A"}]
    assert dpo_rows(labels, None, "chat") == [{"prompt": [{"role": "user", "content": "Q1"}],
                                               "chosen": [{"role": "assistant", "content": "B"}],
                                               "rejected": [{"role": "assistant", "content": "A"}]}]


def test_rl_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--pm is required"):
        RLConfig(method="rloo")
    with pytest.raises(ValueError, match="beta must be > 0"):
        RLConfig(method="grpo", pm="x", beta=0.0)
    with pytest.raises(ValueError, match=r"method \(--method\) must be one of"):
        RLConfig(method="ppo", pm="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"--format"):
        RLConfig(method="rloo", pm="x", prompt_format="html")
    bad = _write(tmp_path / "bad.jsonl", [{"prompt": "p", "chosen": "c", "rejected": 3}])
    with pytest.raises(DataError, match=r"bad\.jsonl, line 1, field 'rejected'"):
        dpo_rows(bad, None)
