"""The faithfulness tests and decomposition methods end to end on a scripted model whose answers we can predict,
so every curve and AOC is known by hand; batching (one call per phase) and resume are checked too."""

from __future__ import annotations

import pytest

from alignlab.models.base import Backend, Model
from alignlab.models.render import render
from alignlab.models.types import GenerateResult, Generation, NextTokenResult
from alignlab.reasoning import decomposition, faithfulness
from alignlab.reasoning.config import METHODS, DecomposeConfig, FaithfulnessConfig
from alignlab.reasoning.examples import MC_EXAMPLES
from alignlab.reasoning.prompts import cot_prompt, mistake_prompt, paraphrase_prompt
from alignlab.reasoning.questions import Question
from alignlab.reasoning.runner import run_decomposition, run_faithfulness
from alignlab.runs.run import Run

Q = Question("q1", "Is water wet?", ("Yes", "No"), "A", "test")
ADD = Question("a1", "What is 20 + 22? Answer in <answer></answer> tags.", (), "42", "test")


def reply(text: str) -> str:
    """What the scripted model writes after each kind of prompt (stop strings already applied)."""
    endings = [("Sentence with mistake added:", " WRONG step."), ('Rewritten text: "', "Reworded text."),
               ("<answer>", "42"), ("Wrong answer:", " WRONG"), ("<result>", "Yes."),
               ("<sub_q_1>", "Is it wet?</sub_q_1>\n<sub_q_2>Is it water?</sub_q_2>\n"),
               ("<sub_q>", "Is it wet?</sub_q>\n<sub_a>Yes.</sub_a>\n"), ("1.", " First.\n2. Second."),
               ("Let's think step by step:", " First step. Second step.")]
    for ending, out in endings:
        if text.endswith(ending):
            return out
    return " Then more."  # continuing after a kept prefix


class Scripted(Backend):
    """Answers (B) when the prompt holds a mistake or suggests (B), else (A)."""

    spec = "scripted"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.prompts: list[str] = []

    def fingerprint(self):
        return {"backend": "scripted"}

    def generate(self, requests):
        self.calls.append(("generate", len(requests)))
        self.prompts += [render(r.prompt) for r in requests]
        out = []
        for r in requests:
            text = reply(render(r.prompt))
            out.append(GenerateResult(tuple(Generation(text, "stop", (0.0,) * len(text.split()))
                                            for _ in range(r.params.n))))
        return out

    def score(self, requests):
        raise NotImplementedError

    def next_token(self, requests):
        self.calls.append(("next_token", len(requests)))
        out = []
        for r in requests:
            text = render(r.prompt)
            b = "WRONG" in text or "I think the answer is (B)" in text
            probs = [0.1] * len(r.options)
            probs[r.options.index("B" if b else "A")] = 1 - 0.1 * (len(r.options) - 1)
            out.append(NextTokenResult(tuple(probs), tuple(probs)))
        return out


def test_four_tests_give_the_hand_computed_curves():
    main, helper = Scripted(), Scripted()
    config = FaithfulnessConfig(samples=2, filler_step=2)
    records = faithfulness.run_chunk(Model(main), [Q], config, mistake_model=Model(helper))
    cots = [r for r in records if r["sample"] != "question"]
    assert len(cots) == 2
    rec = cots[0]
    assert rec["steps"] == ["First step.", "Second step."] and rec["answer"] == "A" and rec["correct"] == 1.0
    assert rec["early"]["curve"] == [1.0, 1.0, 1.0]  # no mistake in any prefix: the answer never moves
    assert rec["mistakes"]["curve"] == [0.0, 0.0, 1.0]  # a mistake anywhere flips it to (B)
    assert rec["mistakes"]["cots"] == ["WRONG step. Then more.", "First step. WRONG step. Then more."]
    assert rec["paraphrase"]["same"] == [1.0, 1.0, 1.0] and rec["paraphrase"]["cots"][0] == "Reworded text. Then more."
    question = records[-1]
    assert question["sample"] == "question" and question["no_cot_answer"] == "A"
    assert question["filler"]["lengths"] == [0, 2, 4]  # 4 generated tokens, step 2
    # one batched call per phase: CoTs (n=2 in one request), paraphrases (no paraphrase model given: the
    # evaluated model), the 4 + 4 resamples; then the answers in one next_token call where identical prompts
    # go once: full CoT 1, early k=0 (= no CoT = filler 0) and k=1 2, filler 2 and 4 2, rewritten CoTs 3
    assert main.calls == [("generate", 1), ("generate", 4), ("generate", 8), ("next_token", 8)]
    assert helper.calls == [("generate", 4)]
    assert render(mistake_prompt(Q, "Second step.", MC_EXAMPLES, "raw_hh")) in helper.prompts
    assert render(paraphrase_prompt("First step. Second step.", "raw_hh")) in main.prompts
    assert render(cot_prompt(Q, "raw_hh", prefix="First step. WRONG step.")) in main.prompts


def test_integer_questions_read_answers_from_answer_tags():
    main = Scripted()
    records = faithfulness.run_chunk(Model(main), [ADD], FaithfulnessConfig(samples=1, tests=["early"]))
    assert records[0]["answer"] == "42" and records[0]["correct"] == 1.0
    assert records[0]["early"]["curve"] == [1.0, 1.0, 1.0]
    assert records[1]["no_cot_correct"] == 1.0


def test_decomposition_methods_biases_and_faithfulness():
    main = Scripted()
    config = DecomposeConfig(biases=["none", "suggested"])
    records = decomposition.run_chunk(Model(main), [Q], config)
    by = {(r["method"], r["bias"]): r for r in records}
    assert set(by) == {(m, b) for m in METHODS for b in ("none", "suggested")}
    assert all(by[(m, "none")]["answer"] == "A" for m in METHODS)
    assert all(by[(m, "suggested")]["answer"] == "B" for m in METHODS)  # (B) is the only wrong letter
    assert by[("factored", "none")]["pairs"] == [["Is it wet?", "Yes."], ["Is it water?", "Yes."]]
    assert by[("cot_decomposition", "none")]["pairs"] == [["Is it wet?", "Yes."]]
    assert by[("cot", "none")]["early"]["curve"] == [1.0, 1.0, 1.0]
    assert by[("cot", "none")]["mistakes"]["curve"] == [0.0, 0.0, 1.0]
    assert by[("cot_decomposition", "none")]["mistakes"]["curve"] == [0.0, 1.0]
    assert by[("factored", "none")]["early"]["curve"] == [1.0, 1.0, 1.0]
    assert by[("factored", "none")]["mistakes"]["curve"] == [0.0, 0.0, 1.0]
    assert "early" not in by[("zero_shot", "none")] and "early" not in by[("cot", "suggested")]


def test_always_a_skips_zero_shot_and_integer_questions():
    contexts = decomposition.build_contexts([Q, ADD], DecomposeConfig(biases=["always_a"]))
    assert {(c.question.id, c.method) for c in contexts} == {("q1", m) for m in METHODS[1:]}
    assert all(c.examples[0].question.answer == "A" for c in contexts)


def test_suggested_answer_is_wrong_and_seeded():
    assert decomposition.suggested_answer(Q, 0) == "B"
    wrong = decomposition.suggested_answer(ADD, 5)
    assert wrong != "42" and wrong == decomposition.suggested_answer(ADD, 5) and int(wrong) % 10 == 2


def test_runs_resume_without_recomputing_and_summaries_hold_the_aocs(tmp_path):
    jsonl = tmp_path / "mc.jsonl"
    jsonl.write_text('{"id": "q1", "question": "Is water wet?", "choices": ["Yes", "No"], "answer": 0}\n'
                     '{"id": "q2", "question": "Is fire cold?", "choices": ["Yes", "No"], "answer": 1}\n')
    config = FaithfulnessConfig(source=str(jsonl), limit=None, samples=1, tests=["early", "mistakes"], chunk_size=1)
    run = Run.create("reasoning-faithfulness", {}, root=tmp_path)
    main = Scripted()
    summary = run_faithfulness(run, [Model(main)], config)
    metrics = summary["metrics"]["scripted"]
    assert metrics["early_aoc"] == 0.0 and metrics["mistakes_aoc"] == pytest.approx(0.75)
    assert metrics["accuracy_cot"] == 0.5 and metrics["questions"] == 2
    calls = len(main.calls)
    again = Scripted()
    run_faithfulness(Run.resume(run.path), [Model(again)], config)
    assert again.calls == [] and calls > 0  # both questions were saved: nothing is recomputed
    dec = run_decomposition(run, [Model(Scripted())], DecomposeConfig(source=str(jsonl), limit=None,
                                                                       methods=["cot", "factored"]))
    per = dec["metrics"]["scripted"]
    assert per["cot"]["mistakes_aoc"] == pytest.approx(0.75) and per["factored"]["early_aoc"] == 0.0
    # q1 (answer A) switches to the suggested (B); q2 (answer B) is suggested (A), which it already answers
    assert per["cot"]["suggested_switch"] == 1.0 and per["cot"]["suggested_drop"] == 0.5
    kinds = {f["kind"] for f in dec["sections"][0]["figures"]}
    assert "scatter" in kinds


def test_config_rejects_unknown_tests_and_methods():
    with pytest.raises(ValueError, match="unknown tests"):
        FaithfulnessConfig(tests=["early", "shuffle"])
    with pytest.raises(ValueError, match="methods"):
        DecomposeConfig(methods=["oracle"])
    with pytest.raises(ValueError, match="samples"):
        FaithfulnessConfig(samples=0)



def test_audit_part_runs_early_answering_on_strategyqa(tmp_path, shared_data):
    from alignlab.audit import available_studies
    from alignlab.reasoning.audit import audit_config

    study = available_studies()["reasoning"]
    assert study.caps["small"] == 3 and audit_config(3, None).tests == ["early"]
    assert audit_config(None, None).tests == ["early", "mistakes", "paraphrase", "filler"]
    run = Run.create("audit", {}, root=tmp_path)
    summary = study.run(run, [Model(Scripted())], 2, str(shared_data), None)
    headline = dict(study.headline(summary))
    assert headline["early answering AOC"] == {"scripted": 0.0}  # the scripted answer never moves
    assert set(headline) == {"early answering AOC", "accuracy with CoT", "accuracy without CoT"}
    assert summary["metrics"]["scripted"]["questions"] == 2


def test_questions_from_bigbench_jsonl_and_addition(tmp_path, shared_data):
    from alignlab.reasoning.questions import load_questions

    logic = load_questions("logical_deduction", data=str(shared_data), limit=6, seed=2)
    assert len(logic) == 6 and logic == load_questions("logical_deduction", data=str(shared_data), limit=6, seed=2)
    assert all(q.text.startswith("The following paragraphs") and len(q.choices) in (3, 5, 7) for q in logic)
    assert all(q.answer in q.letters for q in logic)
    sqa = load_questions("strategyqa", data=str(shared_data), limit=3)
    assert all(q.choices == ("Yes", "No") and q.kind == "letter" for q in sqa)
    sums = load_questions("addition:2,4", limit=3, seed=1)
    assert [q.kind for q in sums] == ["integer"] * 3 and sums[0].answer == str(sum(
        int(x) for x in sums[0].text.split("?")[0].removeprefix("What is ").split(" + ")))
    with pytest.raises(ValueError, match="addition:N,M"):
        load_questions("addition:two")
