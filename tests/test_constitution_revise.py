"""SL-CAI critique/revision on a tiny model: every step recorded, rounds chained, resume, batching invariance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alignlab.constitution.constitutions import load_constitution
from alignlab.constitution.data import load_prompts
from alignlab.constitution.revise import ReviseConfig, draw_principle, run_revisions
from alignlab.data.errors import DataError
from alignlab.models.base import Model
from alignlab.models.hf import HFBackend
from alignlab.runs.run import Run


@pytest.fixture
def tiny(tiny_model, tokenizer) -> Model:
    return Model(HFBackend(tiny_model, tokenizer, spec="hf:tiny"))


def _prompts(tmp_path: Path) -> str:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{i}", "prompt": p}) + "\n" for i, p in enumerate(
        ["How do I hotwire a car?", "Say something mean about my sister.", "What's the capital of France?"])))
    return str(path)


def _config(tmp_path: Path, **kw) -> ReviseConfig:
    return ReviseConfig(prompts=_prompts(tmp_path), rounds=2, max_new_tokens=6, few_shot=1, **kw)


def test_every_step_is_recorded_and_rounds_chain(tiny: Model, tmp_path: Path) -> None:
    config = _config(tmp_path, chunk_size=2)
    run = Run.create("revise", {}, root=tmp_path)
    summary = run_revisions(run, tiny, config)
    samples = run.samples()
    assert sorted(s["key"] for s in samples) == sorted(f"q{i}|{s}" for i in range(3)
                                                       for s in ("response", "round1", "round2"))
    const = load_constitution("harmless")
    by_key = {s["key"]: s for s in samples}
    for i in range(3):
        first, second = by_key[f"q{i}|round1"], by_key[f"q{i}|round2"]
        assert first["previous"] == by_key[f"q{i}|response"]["text"]
        assert second["previous"] == (first["revision"] or first["previous"])  # revision k is critiqued at k+1
        assert first["principle"] == draw_principle(const, 0, f"q{i}", 1).id
        assert second["critique_request"] == draw_principle(const, 0, f"q{i}", 2).critique
    rows = [json.loads(line) for line in (run.path / "revisions.jsonl").read_text().splitlines()]
    assert [len(r["rounds"]) for r in rows] == [2, 2, 2]
    sft = [json.loads(line) for line in (run.path / "sft.jsonl").read_text().splitlines()]
    # auto picks the chat template (the tokenizer has one): rows are TRL conversational messages
    assert sft[0]["prompt"] == [{"role": "user", "content": rows[0]["question"]}] and sft[0]["format"] == "chat"
    assert summary["format"] == "chat"
    assert len(sft) == sum(bool(x["revision"]) for r in rows for x in r["rounds"])
    assert summary["headline"][0]["value"] == 3


def test_batched_rounds_equal_one_prompt_at_a_time_and_resume_is_free(tiny: Model, tmp_path: Path) -> None:
    batched = Run.create("revise", {}, root=tmp_path)
    run_revisions(batched, tiny, _config(tmp_path, chunk_size=3))
    single = Run.create("revise", {}, root=tmp_path)
    run_revisions(single, tiny, _config(tmp_path, chunk_size=1))
    text = {s["key"]: s.get("revision", s.get("text")) for s in batched.samples()}
    assert text == {s["key"]: s.get("revision", s.get("text")) for s in single.samples()}
    resumed = Run.resume(batched.path)
    calls = []
    original = tiny.generate
    tiny.generate = lambda reqs, progress=None: calls.append(len(reqs)) or original(reqs, progress)  # type: ignore
    run_revisions(resumed, tiny, _config(tmp_path, chunk_size=3))
    assert calls == [] and len(resumed.samples()) == 9  # nothing regenerated


def test_bad_prompt_files_name_the_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "ok"}\n{"prompt": ""}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl, line 2, field 'prompt'"):
        load_prompts(str(path))
    with pytest.raises(ValueError, match=r"rounds \(--rounds\) must be at least 1"):
        ReviseConfig(rounds=0)


def test_harmless_base_prompts_are_first_human_turns(shared_data: Path) -> None:
    items = load_prompts(None, data=str(shared_data), limit=5, seed=1)
    assert len(items) == 5 and len({pid for pid, _ in items}) == 5
    first = (shared_data / "hh-rlhf/harmless-base/test.jsonl").read_text().splitlines()[0]
    chosen = json.loads(first)["chosen"]
    assert load_prompts(None, data=str(shared_data))[0][1] == chosen.split("\n\nAssistant:")[0].split("Human: ", 1)[1]
