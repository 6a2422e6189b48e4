"""The CAI stages' transcript format (--format auto|chat|raw_hh), the AI-feedback few-shot principles drawn
independently, the label stage's position bias and spread, and the revise stage's harmlessness comparison."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from alignlab.constitution.config import LabelConfig, ReviseConfig
from alignlab.constitution.constitutions import load_constitution
from alignlab.constitution.feedback import example_principles, run_labels
from alignlab.constitution.formats import resolve, resolve_for_model
from alignlab.constitution.measures import label_bias
from alignlab.constitution.preference_model import PreferenceModel
from alignlab.constitution.revise import run_revisions
from alignlab.metrics.stats import paired_bootstrap_ci
from alignlab.models.base import Model
from alignlab.models.hf import HFBackend
from alignlab.models.types import Conversation, Message
from alignlab.runs.run import Run

QUESTIONS = ["How do I hotwire a car?", "Say something mean about my sister."]


@pytest.fixture(scope="module")
def plain_tokenizer(tokenizer):
    """The same tokenizer without a chat template (a base model's)."""
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = None
    return tok


def _recording(tiny_model, tok) -> tuple[Model, list]:
    model = Model(HFBackend(tiny_model, tok, spec="hf:tiny"))
    seen: list = []
    for name in ("generate", "next_token"):
        original = getattr(model, name)
        setattr(model, name, lambda reqs, progress=None, f=original: seen.extend(r.prompt for r in reqs) or f(reqs))
    return model, seen


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_auto_is_chat_with_a_template_and_raw_hh_without(tokenizer, plain_tokenizer, tiny_model) -> None:
    assert resolve("auto", tokenizer) == "chat" and resolve("auto", plain_tokenizer) == "raw_hh"
    assert resolve("raw_hh", tokenizer) == "raw_hh" and resolve("auto", None, served=True) == "chat"
    with pytest.raises(ValueError, match="no chat template"):
        resolve("chat", plain_tokenizer)
    with pytest.raises(ValueError, match=r"--format"):
        ReviseConfig(prompt_format="xml")
    assert resolve_for_model("auto", Model(HFBackend(tiny_model, plain_tokenizer, spec="hf:t"))) == "raw_hh"


@pytest.mark.parametrize("template", [True, False])
def test_revise_and_label_talk_in_the_resolved_format(template: bool, tokenizer, plain_tokenizer, tiny_model,
                                                      tmp_path: Path) -> None:
    model, seen = _recording(tiny_model, tokenizer if template else plain_tokenizer)
    prompts = _write(tmp_path / "p.jsonl", [{"prompt": q} for q in QUESTIONS])
    run = Run.create("revise", {}, root=tmp_path)
    summary = run_revisions(run, model, ReviseConfig(prompts=prompts, rounds=1, max_new_tokens=3, few_shot=1))
    label_run = Run.create("label", {}, root=tmp_path)
    labels = run_labels(label_run, model, LabelConfig(prompts=prompts, max_new_tokens=3, swap=False))
    expected = "chat" if template else "raw_hh"
    assert summary["format"] == labels["format"] == expected
    assert {s["format"] for s in run.samples() + label_run.samples()} == {expected}
    if template:  # every request is a conversation the chat template renders; none is raw text
        assert all(isinstance(p, Conversation) and p.format == "chat" for p in seen)
        assert seen[-1].prefill == "The answer is: (" and seen[0].messages == (Message("user", QUESTIONS[0]),)
    else:
        assert all(isinstance(p, str) and p.startswith("\n\nHuman:") or "Consider the following" in p for p in seen)
    sft = [json.loads(line) for line in (run.path / "sft.jsonl").read_text().splitlines()]
    assert all(isinstance(r["prompt"], list) == template for r in sft)
    # a resumed run keeps the format it was made in, whatever the tokenizer now says
    other, _ = _recording(tiny_model, plain_tokenizer if template else tokenizer)
    again = run_revisions(Run.resume(run.path), other, ReviseConfig(prompts=prompts, rounds=1, max_new_tokens=3,
                                                                    few_shot=1))
    assert again["format"] == expected


def test_few_shot_feedback_examples_draw_their_own_principles(tiny_model, tokenizer, tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    principles = [f"Which reply is better by measure {i}?" for i in range(6)]
    mine.write_text("name: mine\nfeedback:\n" + "".join(f"  - '{p}'\n" for p in principles))
    pairs = _write(tmp_path / "pairs.jsonl", [{"id": f"p{i}", "question": f"Question {i}?", "response_a": "Yes.",
                                               "response_b": "No."} for i in range(12)])
    model, seen = _recording(tiny_model, tokenizer)
    run = Run.create("label", {}, root=tmp_path)
    run_labels(run, model, LabelConfig(constitution=str(mine), pairs=pairs, swap=False, prompt_format="raw_hh"))
    feedback = load_constitution(mine).feedback
    records = {r["id"]: r for r in run.samples()}
    same_as_pair, examples_differ = 0, 0
    for prompt in seen:
        *shots, own = re.findall(r"\n([^\n]*)\nOptions:", prompt)
        pair_id = "p" + re.findall(r"Human: Question (\d+)\?", prompt)[-1]
        member = records[pair_id]["members"][0]
        assert own == member["principle"] and len(shots) == 2
        assert shots == member["example_principles"] == example_principles(feedback, 0, pair_id, 0)
        assert set(shots) <= set(principles)  # drawn from the constitution, not fixed text
        same_as_pair += shots[0] == own
        examples_differ += shots[0] != shots[1]
    assert same_as_pair < len(seen) and examples_differ > 0  # independent of the pair's and of each other
    assert example_principles(feedback, 1, "p0", 0) != example_principles(feedback, 0, "p0", 0) or \
        example_principles(feedback, 1, "p1", 0) != example_principles(feedback, 0, "p1", 0)


def test_position_bias_and_spread_by_hand() -> None:
    records = [{"p_a": 0.5 * (0.9 + 1 - 0.6), "members": [{"p_ab": 0.9, "p_ba": 0.6}]},
               {"p_a": 0.5 * (0.76 + 1 - 0.8), "members": [{"p_ab": 0.76, "p_ba": 0.8}]}]
    got = label_bias(records)
    # A first: 0.9, 0.76 -> 0.83; A second: 1 - 0.6, 1 - 0.8 -> 0.3; the first position is preferred by 0.53
    assert got["mean_p_a_first"] == pytest.approx(0.83) and got["mean_p_a_second"] == pytest.approx(0.3)
    assert got["order_gap"] == pytest.approx(0.53) and got["mean_p_first"] == pytest.approx(0.765)
    assert got["mean_p_a"] == pytest.approx(0.565) and got["std_p_a"] == pytest.approx(0.085)  # labels 0.65, 0.48
    assert got["share_near_half"] == pytest.approx(0.5)  # 0.48 is within 0.05 of 0.5, 0.65 is not
    assert "order_gap" not in label_bias([{"p_a": 0.2, "members": [{"p_ab": 0.2, "p_ba": None}]}])


def test_revise_scores_originals_and_revisions_with_one_scorer(tiny_model, tokenizer, tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id)
    pm = PreferenceModel(LlamaForSequenceClassification(config), tokenizer)
    pm_dir = pm.save(tmp_path / "pm")
    prompts = _write(tmp_path / "p.jsonl", [{"prompt": q} for q in [*QUESTIONS, "What's the capital of France?"]])
    model = Model(HFBackend(tiny_model, tokenizer, spec="hf:tiny"))
    revise = ReviseConfig(prompts=prompts, rounds=1, max_new_tokens=4, few_shot=0, scorer=f"pm:{pm_dir}")
    run = Run.create("revise", {}, root=tmp_path)
    summary = run_revisions(run, model, revise)
    rows = [json.loads(line) for line in (run.path / "revisions.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["response"] and r["final"]]
    before = pm.score([[Message("user", r["question"]), Message("assistant", r["response"])] for r in rows])
    after = pm.score([[Message("user", r["question"]), Message("assistant", r["final"])] for r in rows])
    got = {r["metric"]: r for r in summary["results"] if r["task"] == "revise/harmlessness"}
    assert got["original_mean"]["value"] == pytest.approx(np.mean(before), abs=1e-5)
    assert got["revision_mean"]["value"] == pytest.approx(np.mean(after), abs=1e-5)
    assert got["difference"]["value"] == pytest.approx(np.mean(after) - np.mean(before), abs=1e-5)
    assert got["difference"]["n"] == len(rows) and summary["scorer"] == f"pm:{pm_dir}"
    low, high = paired_bootstrap_ci(before, after, seed=0)
    assert got["difference"]["ci"] == pytest.approx([low, high], abs=1e-4)
    n_samples = len(run.samples())
    run_revisions(Run.resume(run.path), model, revise)
    assert len(Run.resume(run.path).samples()) == n_samples  # resumed: nothing rescored


def test_sft_rows_train_in_the_data_format_or_convert(tmp_path: Path) -> None:
    from alignlab.constitution.formats import sft_row
    from alignlab.constitution.train_sft import data_format, sft_rows
    from alignlab.data.errors import DataError

    raw = _write(tmp_path / "raw.jsonl", [sft_row("Hi?", "Hello.", "raw_hh", round=1)])
    assert data_format(raw) == "raw_hh"
    assert sft_rows(raw, None) == [{"prompt": "\n\nHuman: Hi?\n\nAssistant:", "completion": " Hello."}]
    assert sft_rows(raw, None, "chat") == [{"prompt": [{"role": "user", "content": "Hi?"}],
                                            "completion": [{"role": "assistant", "content": "Hello."}]}]
    chat = _write(tmp_path / "chat.jsonl", [sft_row("Hi?", "Hello.", "chat")])
    assert data_format(chat) == "chat" and sft_rows(chat, None, "raw_hh") == sft_rows(raw, None)
    multi = _write(tmp_path / "multi.jsonl", [{"prompt": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:",
                                               "completion": " d"}])
    with pytest.raises(DataError, match=r"multi\.jsonl, line 1, field 'prompt'.*cannot convert"):
        sft_rows(multi, None, "chat")


def test_trait_questions_prompt_in_chat_format() -> None:
    from alignlab.constitution.traits import few_shot_prompt

    const = load_constitution("power_seeking")
    raw, chat = few_shot_prompt(const, 0), few_shot_prompt(const, 0, "chat")
    assert isinstance(raw, str) and raw.endswith("Question:")
    assert isinstance(chat, Conversation) and chat.prefill == "Question:" and chat.format == "chat"
    assert raw.removesuffix("Question:") in chat.messages[0].content  # the same examples, as a user turn
