"""alignlab loop: config round-trip, disjoint seeded splits, stage planning, skip/resume of scripted stages, and the
paired before/after table from scripted red-team runs (issue 19)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from alignlab.loop import runner
from alignlab.loop.config import STAGES, LoopConfig, from_file, merged
from alignlab.loop.paired import most_changed, paired_rows, scored
from alignlab.loop.plan import plan
from alignlab.loop.splits import make_splits, normalized, prompts_of
from alignlab.runs.run import Run

PROMPTS = [f"How do I do thing number {i}?" for i in range(30)]


def hh_file(folder: Path, prompts: list[str]) -> Path:
    path = folder / "hh-rlhf" / "harmless-base" / "test.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"chosen": f"\n\nHuman: {p}\n\nAssistant: No.", "rejected": f"\n\nHuman: {p}\n\nAssistant: Sure."}
            for p in prompts]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# -- config -------------------------------------------------------------------------------------------------------
def test_config_round_trips_and_refuses_a_self_judging_scorer(tmp_path):
    config = LoopConfig(model="hf:x", scorer="pm:some/folder", stages=["revise", "sft"], rl_method="dpo",
                        stage_options={"sft": {"lora_r": 4}})
    assert LoopConfig.from_dict(json.loads(json.dumps(config.as_dict()))) == config
    assert LoopConfig.from_dict({**config.as_dict(), "field_of_a_later_version": 1}) == config
    with pytest.raises(ValueError, match="judging itself"):
        LoopConfig(model="embedded", scorer="judge:embedded")
    with pytest.raises(ValueError, match="must be pm:"):
        LoopConfig(scorer="embedded")
    with pytest.raises(ValueError, match="must be one of"):
        LoopConfig(stages=["revise", "train"])
    with pytest.raises(ValueError, match="stage_options: unknown stages nope"):
        LoopConfig(stage_options={"nope": {}})


def test_yaml_file_sets_fields_and_the_command_line_wins(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("attacks: 5\nsft_steps: 3\nstage_options:\n  sft: {lora_r: 4}\n")
    cli = LoopConfig(sft_steps=7)  # --sft-steps 7 on the command line; --attacks left at its default
    config = merged(from_file(path), cli.as_dict())
    assert (config.attacks, config.sft_steps, config.stage_options) == (5, 7, {"sft": {"lora_r": 4}})
    path.write_text("atacks: 5\n")
    with pytest.raises(ValueError, match="unknown fields atacks"):
        from_file(path)


# -- splits -------------------------------------------------------------------------------------------------------
def test_splits_are_disjoint_seeded_and_recorded(tmp_path):
    source = hh_file(tmp_path, PROMPTS[:20] + PROMPTS[:5])  # rows 21-25 repeat the prompts of rows 1-5
    sizes = {"calibration": 4, "scorer_pairs": 6, "attacks": 5, "cai": 5}
    splits = make_splits(source, tmp_path / "a", sizes, seed=3, calibration_first=False)
    texts = {name: prompts_of(path) for name, path in splits.files.items()}
    assert {name: len(t) for name, t in texts.items()} == sizes
    names = list(texts)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not texts[a] & texts[b], (a, b)
            assert not set(splits.lines[a]) & set(splits.lines[b])
    assert splits.warnings == []
    again = make_splits(source, tmp_path / "b", sizes, seed=3, calibration_first=False)
    other = make_splits(source, tmp_path / "c", sizes, seed=4, calibration_first=False)
    assert again.lines == splits.lines and other.lines != splits.lines
    first = make_splits(source, tmp_path / "d", sizes, seed=3, calibration_first=True)
    assert first.lines["calibration"] == [1, 2, 3, 4]  # what the red team calibrates on without a file
    assert all(not set(first.lines[n]) & {1, 2, 3, 4, 21, 22, 23, 24} for n in ("scorer_pairs", "attacks", "cai"))


def test_a_user_file_that_overlaps_another_split_is_warned_about(tmp_path):
    source = hh_file(tmp_path, PROMPTS)
    splits = make_splits(source, tmp_path / "a", {"calibration": 4, "cai": 4}, seed=0, calibration_first=True)
    mine = tmp_path / "mine.jsonl"
    mine.write_text(json.dumps({"prompt": "  how do I do THING number 0?"}) + "\n")  # calibration row 1
    with_user = make_splits(source, tmp_path / "b", {"calibration": 4, "cai": 4}, seed=0, calibration_first=True,
                            user_files={"attacks": str(mine)})
    assert splits.warnings == []
    assert len(with_user.warnings) == 1 and "attacks" in with_user.warnings[0]
    assert "calibration" in with_user.warnings[0]
    assert normalized(PROMPTS[0]) in prompts_of(mine)


# -- planning -----------------------------------------------------------------------------------------------------
def test_plan_orders_skips_and_checks_what_each_stage_needs():
    config = LoopConfig(scorer="pm:x")
    assert plan(config, set()) == [s for s in STAGES if s != "scorer"]
    assert plan(config, {"audit_before", "redteam_before"}, ["redteam_before", "revise", "sft"]) == ["revise", "sft"]
    with pytest.raises(ValueError, match="stage sft needs revise first"):
        plan(config, set(), ["sft"])
    assert "pm" not in plan(LoopConfig(scorer="pm:x", rl_method="dpo"), set())
    assert plan(LoopConfig(rl_method="none", explain_top=0), set())[-1] == "redteam_after"
    with pytest.raises(ValueError, match="needs scorer"):
        plan(LoopConfig(), set(), ["redteam_before"])


# -- the runner with scripted stages ------------------------------------------------------------------------------
def scripted(calls: list[str], fail_at: str | None = None):
    """Stage functions that each write a complete run directory (a trainer-like one for sft/rl: a policy folder)."""

    def make(stage):
        def stage_fn(ctx, folder):
            from alignlab.loop.subruns import sub_run

            def call(out, resume):
                calls.append(f"{stage}{'(resumed)' if resume else ''}")
                run = Run.resume(resume) if resume else Run.create(f"fake-{stage}", {"study": {}}, root=out)
                if stage == fail_at:
                    run.fail("killed")
                    raise RuntimeError(f"{stage} interrupted")
                if stage in ("sft", "rl"):
                    (run.path / "policy").mkdir()
                run.finish({"headline": [{"label": f"{stage} measure", "value": 1.5}]})
                return run, {}

            return sub_run(folder, call, resumable=True)
        return stage_fn

    return {stage: make(stage) for stage in STAGES}


def test_finished_stages_are_never_rerun_and_an_interrupted_one_resumes(tmp_path, monkeypatch):
    hh_file(tmp_path / "data", PROMPTS)
    config = LoopConfig(scorer="pm:x", data=str(tmp_path / "data"), prompt_format="chat", attacks=3, cai_prompts=3,
                        calibration_pairs=4)
    calls: list[str] = []
    monkeypatch.setattr(runner, "RUNNERS", scripted(calls, fail_at="sft"))
    with pytest.raises(RuntimeError, match="sft interrupted"):
        runner.run(config, out=tmp_path / "runs", report=False)
    loop_dir = next((tmp_path / "runs").glob("loop-*"))
    assert calls == ["audit_before", "redteam_before", "revise", "sft"]
    assert Run.read_manifest(loop_dir)["status"] == "failed"

    calls.clear()
    monkeypatch.setattr(runner, "RUNNERS", scripted(calls))
    loop, summary = runner.run(resume=loop_dir, stages=["sft", "label"], report=False)
    assert calls == ["sft(resumed)", "label"]
    calls.clear()
    loop, summary = runner.run(resume=loop_dir, report=False)
    assert calls == ["pm", "rl", "audit_after", "redteam_after", "explain"]
    calls.clear()
    runner.run(resume=loop_dir)  # nothing left to run; the report renders the loop's own records
    assert calls == [] and (loop_dir / "report.html").is_file()
    stages = {s["stage"]: s for s in loop.samples() if s.get("kind") == "stage"}
    assert list(stages) == [s for s in STAGES if s != "scorer"]
    assert stages["revise"]["measure"] == [{"label": "revise measure", "value": 1.5}]
    table = next(s for s in summary["sections"] if s["id"] == "stages")["tables"][0]["rows"]
    assert table[0][:2] == ["scorer", "not applicable"] and table[1][1] == "complete"
    setup = next(s for s in loop.samples() if s.get("key") == "setup")
    assert set(setup["splits"]["files"]) == {"calibration", "attacks", "cai"}  # no scorer_pairs: a scorer was named


# -- the paired table ---------------------------------------------------------------------------------------------
def redteam_run(folder: Path, scores: list[float], threshold: float, scorer: str = "pm:x") -> Path:
    folder.mkdir(parents=True)
    records = [{"section": "redteam", "kind": "calibration", "key": f"threshold|{scorer}", "scorer": scorer,
                "threshold": threshold}]
    for i, value in enumerate(scores):
        conv = f"conv|plain|a{i}"
        records.append({"section": "redteam", "kind": "conversation", "key": conv, "target_type": "plain",
                        "attack_id": f"a{i}", "messages": [{"role": "user", "content": f"q{i}"},
                                                           {"role": "assistant", "content": f"reply {value}"}]})
        records.append({"section": "redteam", "kind": "score", "key": f"score|{scorer}|{conv}", "scorer": scorer,
                        "conv_key": conv, "min_harmlessness": value})
        records.append({"section": "redteam", "kind": "score", "key": f"score|judge:y|{conv}", "scorer": "judge:y",
                        "conv_key": conv, "min_harmlessness": -100.0})  # another scorer: never mixed in
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_paired_before_after_table_from_scripted_runs(tmp_path):
    before_scores = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    after_scores = [1.0, 1.0, 1.0, 0.0, 1.0, 3.0]  # attacks 0-2 stop succeeding, attack 5 improves by 2
    before, threshold = scored(redteam_run(tmp_path / "b", before_scores, 0.5), "pm:x")
    after, _ = scored(redteam_run(tmp_path / "a", after_scores, 0.5), "pm:x")
    assert threshold == 0.5 and len(before) == 6
    rows, results = paired_rows(before, after, threshold, seed=0)
    target, n, mean_b, mean_a, diff, ci, success_b, success_a, p = rows[0]
    assert (target, n, mean_b, mean_a, diff) == ("plain", 6, round(2 / 6, 4), 1.1667, 0.8333)
    low, high = json.loads(ci)
    assert low <= diff <= high and low >= 0  # every resampled difference is >= 0 (no attack got worse)
    assert (success_b, success_a) == (round(4 / 6, 4), round(1 / 6, 4))
    assert p == 0.25  # McNemar: 3 discordant pairs, all one way: 2 * 0.5^3
    entry = next(r for r in results if r["metric"] == "attack_success_difference")
    assert entry["value"] == pytest.approx(-0.5) and entry["mcnemar_p"] == 0.25
    top = most_changed(before, after, 2)
    assert [t["attack_id"] for t in top] == ["a5", "a0"] and top[0]["reply"] == "reply 3.0"
    assert np.isclose(top[0]["after"] - top[0]["before"], 2.0)


def test_training_texts_render_conversational_and_plain_sft_rows(tmp_path):
    from alignlab.loop.explain import training_texts

    path = tmp_path / "sft.jsonl"
    rows = [{"prompt": [{"role": "user", "content": "Hi?"}],
             "completion": [{"role": "assistant", "content": "Hello."}]},
            {"prompt": "\n\nHuman: Hi?\n\nAssistant:", "completion": " Hello."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    texts = training_texts(path, lambda messages: f"<user>{messages[0].content}<assistant>")
    assert texts == ["<user>Hi?<assistant>Hello.", "\n\nHuman: Hi?\n\nAssistant: Hello."]



def test_dpo_pairs_join_the_sl_cai_rows_as_explain_candidates_with_their_source(tmp_path):
    from alignlab.loop.explain import training_rows
    from alignlab.loop.plan import needs

    path = tmp_path / "sft.jsonl"
    path.write_text(json.dumps({"prompt": "\n\nHuman: Hi?\n\nAssistant:", "completion": " Hello."}) + "\n")
    pairs = [{"prompt": [{"role": "user", "content": "Q?"}], "chosen": [{"role": "assistant", "content": "Kind."}],
              "rejected": [{"role": "assistant", "content": "Rude."}]}]
    rows = training_rows(path, lambda messages: f"<user>{messages[0].content}<assistant>", pairs)
    assert rows == [{"text": "\n\nHuman: Hi?\n\nAssistant: Hello.", "source": "sl-cai"},
                    {"text": "<user>Q?<assistant>Kind.", "source": "dpo chosen", "pair": 0},
                    {"text": "<user>Q?<assistant>Rude.", "source": "dpo rejected", "pair": 0}]
    assert training_rows(path, str) == rows[:1]  # no DPO: the SL-CAI rows alone
    assert "rl" in needs("explain", LoopConfig(rl_method="dpo"))  # it reads the pairs the DPO run trained on
    assert "rl" not in needs("explain", LoopConfig(rl_method="rloo"))
