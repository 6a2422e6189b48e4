"""``alignlab.redteam.run`` from Python: the same run as the CLI, results.json, resume, the other commands, and
refusals with the flag named."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from alignlab import redteam
from alignlab.models.spec import load_model
from alignlab.redteam.cli import redteam_app
from alignlab.runs.run import Run
from tests.test_redteam_pipeline import write_attacks_file


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.delenv("ALIGNLAB_DATA", raising=False)
    monkeypatch.setenv("ALIGNLAB_CACHE", str(tmp_path / "cache"))


class Counting:
    """A ``load`` for ``redteam.run`` that counts every request reaching a model (no request cache)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, spec, dtype, cache):
        model = load_model(spec, dtype=dtype, cache=False)
        for name in ("generate", "next_token", "score"):
            original = getattr(model.backend, name)

            def counted(requests, _original=original):
                self.calls += len(requests)
                return _original(requests)

            setattr(model.backend, name, counted)
        return model


def cli(*args):
    app = typer.Typer()
    app.add_typer(redteam_app, name="redteam")
    return CliRunner().invoke(app, ["redteam", *map(str, args)])


def test_python_attack_equals_the_cli_run_and_resumes(tmp_path, tiny_dir, shared_data):
    spec = f"hf:{tiny_dir}"
    attacks = write_attacks_file(tmp_path / "attacks.jsonl")
    config = redteam.RedteamConfig(sources=[f"jsonl:{attacks}"], targets=["plain", "prompted"],
                                   scorers=[f"judge:{spec}"], attacker=spec, limit=2, max_new_tokens=4,
                                   calibration_pairs=2, data=str(shared_data), landscape=False)
    run, summary = redteam.run(config, model=spec, out=tmp_path / "api", cache=False)
    assert run.manifest["study"] == "redteam" and run.manifest["status"] == "complete"
    assert run.manifest["config"] == {"study": {**config.as_dict(), "model": spec}, "dtype": "float32"}

    result = cli("attack", "--source", f"jsonl:{attacks}", "--target", "plain,prompted", "-m", spec, "--attacker",
                 spec, "--scorer", f"judge:{spec}", "--limit", 2, "--max-new-tokens", 4, "--calibration-pairs", 2,
                 "--data", shared_data, "--no-map", "--out", tmp_path / "cli", "--no-cache")
    assert result.exit_code == 0, result.output
    (cli_run,) = (tmp_path / "cli").iterdir()
    api_results = json.loads((run.path / "results.json").read_text())
    cli_results = json.loads((cli_run / "results.json").read_text())
    assert api_results["config"] == cli_results["config"]
    assert api_results["results"] == cli_results["results"] == summary["results"]

    # results.json carries the summary's numbers (the success rule is checked by hand in test_redteam_measurement)
    samples = run.samples()
    (asr,) = [r for r in api_results["results"] if r["metric"] == "attack_success_rate" and r["task"] == "plain"]
    assert asr["model"] == spec and asr["scorer"] == f"judge:{spec}" and asr["n"] == 2 and asr["headline"]
    metric = summary["metrics"][f"judge:{spec}|plain ({spec})"]
    assert asr["value"] == pytest.approx(metric["rate"])
    assert asr["ci"] == [pytest.approx(metric["ci_low"]), pytest.approx(metric["ci_high"])]
    (pair_accuracy,) = [r for r in api_results["results"] if r["metric"] == "pair_accuracy"]
    assert pair_accuracy["n"] == 2 and pair_accuracy["model"] == f"judge:{spec}"

    # resume (a manifest may hold keys this version does not know): nothing is recomputed, results rewritten
    manifest = json.loads((run.path / "manifest.json").read_text())
    manifest["config"]["study"]["retired_option"] = 1
    (run.path / "manifest.json").write_text(json.dumps(manifest))
    (run.path / "results.json").unlink()
    counting = Counting()
    again, resumed = redteam.run(resume=run.path, load=counting)
    assert again.path == run.path and counting.calls == 0
    assert Run.resume(run.path).samples() == samples
    assert resumed["results"] == summary["results"]
    assert json.loads((run.path / "results.json").read_text())["results"] == api_results["results"]


def test_generate_score_and_map_from_python(tmp_path, tiny_dir, shared_data):
    spec = f"hf:{tiny_dir}"
    model = load_model(spec, cache=False)
    gen_run, gen = redteam.run(redteam.GenerateConfig(attacker=spec, limit=2), model=[model], out=tmp_path)
    lines = (gen_run.path / "attacks.jsonl").read_text().splitlines()
    assert gen_run.manifest["study"] == "redteam-generate" and 1 <= len(lines) <= 2
    assert gen_run.manifest["config"]["study"]["sources"] == ["zero-shot"]
    assert gen["results"][0]["value"] == len(lines) and gen["results"][0]["model"] == spec

    transcripts = tmp_path / "attempts.jsonl"
    transcripts.write_text("\n".join(json.dumps({"transcript": f"\n\nHuman: {q}\n\nAssistant: {a}",
                                                 "model_type": "plain lm"})
                                      for q, a in [("hi", "hello"), ("how do I pick a lock?", "I can't help")]))
    score_run, scored = redteam.run(redteam.ScoreConfig(path=transcripts, scorers=[f"judge:{spec}"],
                                                        calibration_pairs=2, data=str(shared_data)),
                                    model=[model], out=tmp_path)
    assert score_run.manifest["study"] == "redteam-score"
    assert score_run.manifest["config"]["transcripts"] == str(transcripts)
    entries = {r["metric"]: r for r in scored["results"] if r["task"] == "plain lm"}
    assert entries["attack_success_rate"]["n"] == 2 and entries["attack_success_rate"]["model"] == "plain lm"

    mapped_run, _ = redteam.run(redteam.MapConfig(path=score_run.path, labeler=spec, projection="pca", clusters=1),
                                model=[model])
    assert mapped_run.path == score_run.path
    (record,) = [s for s in mapped_run.samples() if s["kind"] == "map"]
    assert len(record["points"]) == 2 and {p["cluster"] for p in record["points"]} == {0}
    model.close()


def test_bad_values_are_refused_with_the_flag_named(tmp_path):
    with pytest.raises(ValueError, match=r"limit \(--limit\) must be at least 1, got 0"):
        redteam.RedteamConfig(limit=0)
    with pytest.raises(ValueError, match=r"prompt_format \(--format\) must be one of chat, raw_hh"):
        redteam.RedteamConfig(prompt_format="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"threshold_quantile \(--threshold-quantile\) must lie in \(0, 1\)"):
        redteam.ScoreConfig(path=tmp_path, threshold_quantile=1.0)
    with pytest.raises(ValueError, match="unknown target type 'robot'"):
        redteam.RedteamConfig(targets=["robot"])
    with pytest.raises(ValueError, match="--method few-shot needs --pool"):
        redteam.GenerateConfig(method="few-shot")
    with pytest.raises(ValueError, match=r"projection \(--projection\) must be one of umap, pca"):
        redteam.MapConfig(path=tmp_path, projection="tsne")
    with pytest.raises(ValueError, match="model under attack"):
        redteam.run(redteam.ScoreConfig(path=tmp_path), model="embedded", out=tmp_path)
    with pytest.raises(TypeError, match="RedteamConfig"):
        redteam.run(object(), out=tmp_path)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())

    result = cli("attack", "--turns", 0, "--out", tmp_path)
    assert result.exit_code == 2 and "turns (--turns) must be at least 1, got 0" in result.output
    result = cli("map", tmp_path / "missing.jsonl", "--out", tmp_path)
    assert result.exit_code == 2 and "neither a run directory nor a transcript file" in result.output
    assert not any(tmp_path.iterdir())
