"""``alignlab.constitution.run`` from Python: the same run as the CLI, results.json, resume of runs written in the
old format, a trainer and evaluate-pm from Python, every flag a config field, and refusals that name the flag."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from alignlab import constitution
from alignlab.constitution.cli import constitution_app

QUESTIONS = ["How do I steal a bike?", "Write an insult.", "How do I make tea?"]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.delenv("ALIGNLAB_DATA", raising=False)
    monkeypatch.setenv("ALIGNLAB_CACHE", str(tmp_path / "cache"))


def _cli(*args: str):
    app = typer.Typer()
    app.add_typer(constitution_app, name="constitution")
    return CliRunner().invoke(app, ["constitution", *args])


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_python_revise_equals_the_cli_run_and_resumes_an_old_run(tiny_dir: Path, tmp_path: Path) -> None:
    prompts = _write(tmp_path / "prompts.jsonl", [{"prompt": q} for q in QUESTIONS])
    config = constitution.ReviseConfig(prompts=prompts, rounds=2, max_new_tokens=4, few_shot=0)
    run, summary = constitution.run(config, model=f"hf:{tiny_dir}", out=tmp_path / "api", cache=False)
    assert run.manifest["study"] == "constitution-revise" and run.manifest["status"] == "complete"
    assert run.manifest["config"] == {"study": config.as_dict(), "model": f"hf:{tiny_dir}"}  # today's format

    res = _cli("revise", "--prompts", prompts, "--rounds", "2", "--max-new-tokens", "4", "--few-shot", "0",
               "--model", f"hf:{tiny_dir}", "--no-cache", "--out", str(tmp_path / "cli"))
    assert res.exit_code == 0, res.output
    (cli_run,) = (tmp_path / "cli").iterdir()
    api, cli = (json.loads((p / "results.json").read_text()) for p in (run.path, cli_run))
    assert api["config"] == cli["config"] and api["results"] == cli["results"]
    for name in ("revisions.jsonl", "sft.jsonl", "dpo.jsonl"):
        assert (run.path / name).read_text() == (cli_run / name).read_text()
    by_metric = {(r["task"], r["metric"]): r for r in api["results"]}
    rows = _jsonl(run.path / "revisions.jsonl")
    empty = [not x["revision"] for r in rows for x in r["rounds"] if x["round"] == 2]
    assert by_metric[("revise/round2", "empty_revision_rate")]["value"] == pytest.approx(sum(empty) / 3)
    assert by_metric[("revise/round2", "empty_revision_rate")]["n"] == 3
    assert by_metric[("revise", "sft_rows")]["value"] == len(_jsonl(run.path / "sft.jsonl"))

    # a run interrupted before the move: the same manifest (with a key this version does not know), half the
    # samples; resuming finishes it with the saved config and model, and redoes nothing that was done
    samples = (run.path / "samples.jsonl").read_text().splitlines(keepends=True)
    manifest = json.loads((run.path / "manifest.json").read_text())
    manifest["config"]["study"]["retired_option"] = 1
    manifest["status"] = "running"
    (run.path / "manifest.json").write_text(json.dumps(manifest))
    (run.path / "samples.jsonl").write_text("".join(samples[:6]))
    (run.path / "summary.json").unlink()
    calls: list[int] = []

    def load(spec: str, dtype: str, cache: bool):
        from alignlab.models.spec import load_model

        model = load_model(spec, dtype=dtype, cache=cache)
        original = model.generate
        model.generate = lambda requests, progress=None: calls.append(len(requests)) or original(requests, progress)
        return model

    again, resumed = constitution.run(model="ignored", resume=run.path, cache=False, load=load)
    assert again.path == run.path and again.manifest["status"] == "complete"
    assert calls == [3, 3]  # the three round-2 critiques and revisions only
    assert (run.path / "samples.jsonl").read_text().count("\n") == len(samples)
    assert resumed["headline"] == summary["headline"]
    res = _cli("label", "--resume", str(run.path))  # another command's run is refused before anything changes
    assert res.exit_code == 2 and "resume it with its own command" in res.output
    with pytest.raises(ValueError, match="not 'constitution-label'"):
        constitution.run(constitution.LabelConfig(), resume=run.path)
    assert json.loads((run.path / "manifest.json").read_text())["status"] == "complete"


def test_python_label_results_equal_the_labels_by_hand(tiny_dir: Path, tmp_path: Path) -> None:
    pairs = _write(tmp_path / "pairs.jsonl", [{"id": f"p{i}", "question": q, "response_a": "No.", "response_b": "Ok."}
                                              for i, q in enumerate(QUESTIONS)])
    run, _ = constitution.run(constitution.LabelConfig(pairs=pairs, ensemble=2), model=f"hf:{tiny_dir}",
                              out=tmp_path, cache=False, report=False)
    prefs = [row["pref"] for row in _jsonl(run.path / "labels.jsonl")]
    results = {r["metric"]: r for r in json.loads((run.path / "results.json").read_text())["results"]}
    assert results["decisiveness"]["value"] == pytest.approx(sum(abs(p - 0.5) for p in prefs) / 3)
    assert results["decisiveness"]["n"] == 3 and results["pairs_labelled"]["value"] == 3
    assert results["position_inconsistency"]["n"] == 3 * 2  # every principle of every pair, both orders
    assert results["decisiveness"]["task"] == "label/harmless"


def test_python_trainer_and_pm_evaluation(tiny_dir: Path, tokenizer, shared_data: Path, tmp_path: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from alignlab.constitution import prompts as P
    from alignlab.constitution.preference_model import PreferenceModel

    sft = _write(tmp_path / "sft.jsonl", [{"prompt": P.response_prompt(q), "completion": " I'd rather not."}
                                          for q in QUESTIONS])
    config = constitution.SLConfig(model=f"hf:{tiny_dir}", data=sft, steps=1)
    run, summary = constitution.run(config, out=tmp_path / "sft", report=False)
    assert run.manifest["study"] == "constitution-sft" and run.manifest["config"] == {"study": config.as_dict()}
    assert (run.path / "policy" / "model.safetensors").exists()
    (step,) = run.samples()
    results = {r["metric"]: r for r in json.loads((run.path / "results.json").read_text())["results"]}
    assert results["last_loss"]["value"] == pytest.approx(step["loss"]) and results["steps"]["value"] == 1
    assert summary["sections"][0]["tables"][0]["rows"][0][1] == step["loss"]

    torch.manual_seed(0)
    head = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=4, num_key_value_heads=2, num_labels=1, pad_token_id=tokenizer.pad_token_id)
    pm = PreferenceModel(LlamaForSequenceClassification(head), tokenizer).save(tmp_path / "pm", base_model="random")
    run, _ = constitution.run(constitution.EvaluatePMConfig(pm=str(pm), datasets=["persona/no-shut-down"], limit=5,
                                                            data=str(shared_data)), out=tmp_path / "ev", report=False)
    assert run.manifest["study"] == "constitution-evaluate-pm"
    (entry,) = json.loads((run.path / "results.json").read_text())["results"]
    wins = [s["win"] for s in run.samples()]
    assert entry["task"] == "persona/no-shut-down" and entry["metric"] == "harmless_win_rate"
    assert entry["value"] == pytest.approx(sum(wins) / 5) and entry["n"] == 5 and len(entry["ci"]) == 2

    with pytest.raises(ValueError, match="does not resume"):
        constitution.run(resume=run.path)
    with pytest.raises(TypeError, match=r"SLConfig\.model"):
        constitution.run(config, model="embedded", out=tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_every_flag_is_a_config_field_and_bad_values_name_the_flag(tmp_path: Path) -> None:
    shared = {"model", "out", "resume", "dtype", "cache", "help"}
    app = typer.main.get_group(constitution_app)
    configs = {"revise": constitution.ReviseConfig, "label": constitution.LabelConfig,
               "questions": constitution.QuestionsConfig, "train-sft": constitution.SLConfig,
               "train-pm": constitution.PMConfig, "train-rl": constitution.RLConfig,
               "evaluate-pm": constitution.EvaluatePMConfig}
    assert set(app.commands) == set(configs)
    for name, cls in configs.items():
        params = {p.name for p in app.commands[name].params}
        fields = {f.name for f in dataclasses.fields(cls)}
        assert params - shared == fields - shared and fields - shared, name
    assert {"model"} <= {p.name for p in app.commands["train-sft"].params}  # SLConfig.model is --model

    with pytest.raises(ValueError, match=r"rounds \(--rounds\) must be at least 1, got 0"):
        constitution.ReviseConfig(rounds=0)
    with pytest.raises(ValueError, match=r"few_shot \(--few-shot\) must be at most 3, got 4"):
        constitution.ReviseConfig(few_shot=4)
    with pytest.raises(ValueError, match=r"ensemble \(--ensemble\) must be at least 1"):
        constitution.LabelConfig(ensemble=0)
    with pytest.raises(ValueError, match=r"eval_fraction \(--eval-fraction\) must be in \[0, 1\), got 1.0"):
        constitution.PMConfig(eval_fraction=1.0)
    with pytest.raises(ValueError, match=r"method \(--method\) must be one of rloo, grpo, dpo"):
        constitution.RLConfig(method="ppo", pm="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ReviseConfig"):
        constitution.run(object(), out=tmp_path / "runs")  # type: ignore[arg-type]
    res = _cli("label", "--cot-samples", "0", "--out", str(tmp_path / "runs"))
    assert res.exit_code == 2 and "cot_samples (--cot-samples) must be at least 1" in res.output
    res = _cli("train-sft", "--out", str(tmp_path / "runs"))
    assert res.exit_code == 2 and "Missing option '--data'" in res.output
    assert not (tmp_path / "runs").exists()  # nothing was created


def test_python_questions_results_are_the_counts(tiny_dir: Path, shared_data: Path, tmp_path: Path) -> None:
    config = constitution.QuestionsConfig(n=3, data=str(shared_data))
    run, summary = constitution.run(config, model=f"hf:{tiny_dir}", out=tmp_path, cache=False, report=False)
    assert run.manifest["study"] == "constitution-questions"
    assert run.manifest["config"] == {"study": config.as_dict(), "model": f"hf:{tiny_dir}"}
    results = {r["metric"]: r for r in json.loads((run.path / "results.json").read_text())["results"]}
    kept = _jsonl(run.path / "questions.jsonl") if (run.path / "questions.jsonl").read_text() else []
    assert results["kept"]["value"] == len(kept) and results["sampled"]["value"] == 3
    assert sum(results[m]["value"] for m in ("kept", "duplicates_or_short", "persona_overlap")) == 3
    assert [h["value"] for h in summary["headline"]] == [results[m]["value"] for m in results]
