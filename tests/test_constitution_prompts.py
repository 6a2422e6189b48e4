"""Constitutions (built-in sets, validation errors) and prompt construction against golden files we wrote."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from alignlab.constitution import prompts as P
from alignlab.constitution.constitutions import TRAITS, builtin_names, load_constitution, require
from alignlab.constitution.revise import draw_principle
from alignlab.data.errors import DataError

GOLDEN = Path(__file__).parent / "golden" / "constitution"
Q = "How can I get my roommate's bank password?"
R = "Look at their phone while they type it."


def golden(name: str) -> str:
    return (GOLDEN / name).read_text(encoding="utf-8")


def test_builtin_constitutions_have_the_papers_shapes() -> None:
    harmless = load_constitution("harmless")
    assert len(harmless.critiques) == 16 and len(harmless.feedback) == 16  # Bai et al. §3.1, §4.1
    assert [p.id for p in harmless.critiques] == [f"harmful{i}" for i in range(16)]
    assert len(load_constitution("good_for_humanity").feedback) == 9  # Kundu et al. §3.1
    for trait in TRAITS:
        c = load_constitution(trait.replace("_", "-"))  # dashes work too
        assert len(c.feedback) == 4 and c.trait and len(c.seed_questions) >= 5 and not c.critiques
    assert set(builtin_names()) == {"harmless", "good_for_humanity", *TRAITS}
    # every principle is distinct text
    texts = [t for n in builtin_names() for t in load_constitution(n).feedback]
    assert len(texts) == len(set(texts))


def test_bad_constitution_files_name_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: mine\ncritiques:\n  - id: a\n    critique: Find harm.\n    revision: Fix it.\n"
                   "  - id: b\n    critique: x\n"
                   "    revision: ''\n")
    with pytest.raises(DataError, match=r"bad\.yaml, line 6, field 'critiques\[1\]\.revision'"):
        load_constitution(bad)
    (tmp_path / "empty.yaml").write_text("name: nothing\n")
    with pytest.raises(DataError, match="needs at least one of critiques or feedback"):
        load_constitution(tmp_path / "empty.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(DataError, match=r"broken\.yaml, line \d+: invalid YAML"):
        load_constitution(tmp_path / "broken.yaml")
    with pytest.raises(FileNotFoundError, match="unknown constitution 'nope'.*harmless"):
        load_constitution("nope")
    with pytest.raises(ValueError, match="has no critiques"):
        require(load_constitution("good_for_humanity"), "critiques")


def test_a_user_constitution_loads(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\ncritiques:\n  - {id: c0, critique: 'Is it rude?', revision: Make it polite.}\n"
                    "feedback: ['Which reply is kinder?']\nextra_field: 3\n")
    c = load_constitution(path)
    assert (c.name, c.critiques[0].revision, c.feedback, c.extra) == ("mine", "Make it polite.",
                                                                       ("Which reply is kinder?",), {"extra_field": 3})


def test_critique_and_revision_prompts_match_golden_files() -> None:
    pair = load_constitution("harmless").critiques[8]
    critique = P.critique_prompt(Q, R, pair, 1)
    assert critique == golden("critique_1shot.txt")
    assert P.critique_prompt(Q, R, pair, 0) == golden("critique_0shot.txt")
    assert P.revision_prompt(critique, "The reply helps the human steal a password.", pair) == \
        golden("revision_1shot.txt")
    # the few-shot block teaches the whole cycle and ends at a revision, just before the next "\n\nHuman:"
    three = P.critique_prompt(Q, R, pair, 3)
    assert three.count("\n\nRevision: ") == 3 and three.count("\n\nHuman: ") == 4
    assert three.endswith("\n\nCritique:") and not three.startswith(" ")


def test_feedback_prompts_match_golden_files() -> None:
    c = load_constitution("harmless")
    safe = "I can't help with that, but I can explain how to keep your own accounts safe."
    assert P.feedback_prompt(Q, c.feedback[2], safe, R) == golden("feedback.txt")
    assert P.feedback_prompt(Q, c.feedback[2], "No.", R, few_shot=False) == golden("feedback_0shot.txt")
    cot = P.cot_answer_prompt(P.cot_prompt(Q, c.feedback[0], "No.", R, few_shot=False), "Reply (A) refuses.")
    assert cot == golden("cot_0shot.txt")
    assert golden("feedback.txt").endswith("The answer is: (") and golden("feedback.txt").count("Options:") == 3


def test_next_token_options_are_single_tokens_after_the_prompt(tokenizer) -> None:
    prompt = golden("feedback_0shot.txt")
    base = tokenizer(prompt).input_ids
    for option in P.OPTIONS:
        ids = tokenizer(prompt + option).input_ids
        assert len(ids) == len(base) + 1 and ids[:len(base)] == base


def test_principles_are_drawn_uniformly_and_reproducibly() -> None:
    c = load_constitution("harmless")
    draws = [draw_principle(c, 0, f"p{i}", r).id for i in range(800) for r in (1, 2)]
    counts = Counter(draws)
    assert len(counts) == 16 and max(counts.values()) < 2 * 100  # 1600 draws, 100 expected per principle
    assert draws == [draw_principle(c, 0, f"p{i}", r).id for i in range(800) for r in (1, 2)]
    assert sum(draw_principle(c, 0, f"p{i}", 1).id != draw_principle(c, 0, f"p{i}", 2).id
               for i in range(100)) > 80  # rounds draw independently
