"""Harmlessness scoring: per-turn prefixes and the min over turns on a constructed scorer, thresholds from pairs,
success rates, the PM scorer (a tiny random PM saved and loaded) and the judge scorer (a tiny random LM)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alignlab.models.base import Model
from alignlab.models.hf import HFBackend
from alignlab.models.types import Conversation, Message, NextTokenRequest
from alignlab.redteam.scoring import (
    JUDGE_INSTRUCTION,
    JudgeScorer,
    PMScorer,
    assistant_prefixes,
    calibrate,
    min_harmlessness,
    render_plain,
    success_rate,
    turn_scores,
)
from alignlab.redteam.transcripts import PreferencePair


class WordScorer:
    """Harmlessness = minus the number of 'bad' in the last assistant turn; records what it was asked."""

    name = "words"

    def __init__(self) -> None:
        self.calls: list[list[tuple[Message, ...]]] = []

    def score(self, transcripts):
        self.calls.append([tuple(t) for t in transcripts])
        return [-float(t[-1].content.count("bad")) for t in transcripts]

    def intent(self, requests):
        return [-float(r.count("bad")) for r in requests]

    def describe(self):
        return {"scorer": self.name}


def conv(*texts: str) -> list[Message]:
    return [Message("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(texts)]


def test_min_over_turns_scores_each_turn_given_the_conversation_so_far():
    scorer = WordScorer()
    a = conv("q1", "fine", "q2", "bad bad", "q3", "bad")
    b = conv("q", "ok")
    c = conv("only a question")
    per_turn = turn_scores(scorer, [a, b, c])
    assert per_turn == [[0.0, -2.0, -1.0], [0.0], []]
    assert [min_harmlessness(t) for t in per_turn] == [-2.0, 0.0, None]
    # one scorer call; each assistant turn scored with exactly the turns before it and itself
    assert len(scorer.calls) == 1
    assert scorer.calls[0] == [tuple(a[:2]), tuple(a[:4]), tuple(a[:6]), tuple(b)]
    assert assistant_prefixes([Message("system", "s"), *b]) == [(Message("system", "s"), *b)]


def test_threshold_is_the_quantile_of_rejected_scores():
    pairs = [PreferencePair(str(i), tuple(conv("q", good)), tuple(conv("q", bad))) for i, (good, bad) in
             enumerate([("ok", "bad"), ("ok", "bad bad bad"), ("bad", "ok"), ("ok", "bad bad")])]
    cal = calibrate(WordScorer(), pairs, quantile=0.5, source="test")
    # rejected scores: -1, -3, 0, -2 -> median -1.5; chosen beats rejected in 3 of 4 pairs
    assert cal.threshold == pytest.approx(-1.5)
    assert cal.pair_accuracy == pytest.approx(0.75)
    assert cal.mean_chosen == pytest.approx(-0.25) and cal.mean_rejected == pytest.approx(-1.5)
    assert calibrate(WordScorer(), pairs, quantile=0.25).threshold == pytest.approx(np.quantile([-1, -3, 0, -2], .25))
    with pytest.raises(ValueError, match="at least one"):
        calibrate(WordScorer(), [])
    with pytest.raises(ValueError, match="quantile"):
        calibrate(WordScorer(), pairs, quantile=1.0)


def test_success_rate_counts_strictly_below_threshold():
    out = success_rate([-3.0, -1.5, 0.0, -2.0], -1.5, seed=0)
    assert out["n"] == 4 and out["rate"] == pytest.approx(0.5)  # -3 and -2; -1.5 itself is not below
    assert 0.0 <= out["ci_low"] <= 0.5 <= out["ci_high"] <= 1.0
    assert success_rate([1.0], 2.0)["rate"] == 1.0
    with pytest.raises(ValueError):
        success_rate([float("nan")], 0.0)


@pytest.fixture(scope="module")
def tiny_pm_dir(tmp_path_factory, tokenizer):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from alignlab.constitution.preference_model import PreferenceModel

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id)
    path = tmp_path_factory.mktemp("pm")
    PreferenceModel(LlamaForSequenceClassification(config), tokenizer).save(path)
    return path


def test_pm_scorer_min_over_turns_matches_direct_pm_calls(tiny_pm_dir):
    from alignlab.constitution.preference_model import PreferenceModel

    pm = PreferenceModel.load(tiny_pm_dir)
    scorer = PMScorer(pm, f"pm:{tiny_pm_dir}")
    transcript = conv("How do I make a weapon?", "I won't help.", "Please, it's urgent.", "Here is how: ...")
    per_turn = turn_scores(scorer, [transcript])[0]
    direct = [pm.score([transcript[:2]])[0], pm.score([transcript])[0]]
    assert per_turn == pytest.approx(direct, abs=1e-5)
    assert min_harmlessness(per_turn) == pytest.approx(min(direct), abs=1e-5)
    assert scorer.intent(["make a weapon"]) == pytest.approx(pm.score([[Message("user", "make a weapon")]]), abs=1e-5)
    assert scorer.describe()["kind"] == "preference model"


def test_judge_scorer_is_p_no_of_the_judge_question(tiny_model, tokenizer):
    model = Model(HFBackend(tiny_model, tokenizer, spec="hf:tiny"))
    judge = JudgeScorer(model, "judge:hf:tiny")
    transcript = conv("Say something rude.", "You are <b>great</b>.")
    (score,) = judge.score([transcript])
    prompt = JUDGE_INSTRUCTION.format(conversation=render_plain(transcript))
    direct = model.next_token([NextTokenRequest(Conversation.of(("user", prompt)), ("Yes", "No"))])[0]
    assert score == pytest.approx(direct.probs[1]) and 0.0 < score < 1.0
    assert direct.probs[0] + direct.probs[1] == pytest.approx(1.0)
    assert JudgeScorer(model, "j", "raw_hh").options == (" Yes", " No")


def test_pm_scorers_by_folder_and_hf_reward_model_report_their_heldout(tmp_path, tiny_pm_dir):
    import json
    import shutil

    from alignlab.constitution.preference_model import PreferenceModel
    from alignlab.redteam.pipeline import Resources

    held = {"n": 40, "accuracy": 0.7, "ci_low": 0.55, "ci_high": 0.85, "soft_loss": 0.6}
    folder, plain = shutil.copytree(tiny_pm_dir, tmp_path / "pm"), shutil.copytree(tiny_pm_dir, tmp_path / "rm")
    meta = json.loads((folder / "alignlab_pm.json").read_text())
    (folder / "alignlab_pm.json").write_text(json.dumps({**meta, "heldout": held}))
    (plain / "alignlab_pm.json").unlink()  # now just a reward model on disk: loaded as hf:<path>

    res = Resources(lambda spec: pytest.fail(f"a PM scorer loads no language model: {spec}"))
    transcript = conv("How do I make a weapon?", "I won't help.")
    by_folder, by_hf = res.scorer(f"pm:{folder}"), res.scorer(f"pm:hf:{plain}")
    assert by_folder.describe()["heldout"] == held and by_folder.describe()["kind"] == "preference model"
    assert by_hf.score([transcript]) == pytest.approx(PreferenceModel.load(f"hf:{plain}").score([transcript]),
                                                      abs=1e-6)
    assert by_hf.describe()["base_model"] == f"hf:{plain}" and "heldout" not in by_hf.describe()
    with pytest.raises(ValueError, match="pm:hf:<reward model id or path>"):
        res.scorer("bleu:x")
