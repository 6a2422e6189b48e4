"""``alignlab.influence.fit`` / ``query`` / ``run`` from Python: the same runs as the CLI, results.json, resume without
recomputing, and refusals naming the flag."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from alignlab import influence
from alignlab.cli import app
from tests.test_influence_cli import TEXTS

runner = CliRunner()
PROMPT, COMPLETION = "The capital of Veloria is", " Marent, a city known for its glass bridges."


def _results(run_dir) -> list[dict]:
    return json.loads((run_dir / "results.json").read_text())["results"]


def test_python_fit_and_query_equal_the_cli_runs(tmp_path, tiny_dir, monkeypatch):
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS), encoding="utf-8")
    config = influence.FitConfig(train=str(train), fisher="empirical", batch_size=4)
    fit_run, fit_summary = influence.run(config, model=f"hf:{tiny_dir}", out=tmp_path / "api")
    assert fit_run.manifest["study"] == "influence" and fit_run.manifest["status"] == "complete"
    factor_settings = config.factor_config().as_dict()
    assert "train" not in factor_settings
    assert fit_run.manifest["config"] == {"kind": "fit", "model": f"hf:{tiny_dir}", "dtype": "float32",
                                          "train": str(train.resolve()), "factor_config": factor_settings}
    assert json.loads((fit_run.path / "factors" / "factors.json").read_text())["config"] == factor_settings

    cli = runner.invoke(app, ["influence", "fit", "--model", f"hf:{tiny_dir}", "--train", str(train), "--fisher",
                              "empirical", "--batch-size", "4", "--out", str(tmp_path / "cli")])
    assert cli.exit_code == 0, cli.output
    (cli_fit,) = (tmp_path / "cli").iterdir()
    assert json.loads((cli_fit / "manifest.json").read_text())["config"] == fit_run.manifest["config"]
    untimed = [[r for r in _results(path) if r["metric"] != "fit_seconds"] for path in (fit_run.path, cli_fit)]
    assert untimed[0] == untimed[1] and len(untimed[0]) == 2 + 3 * 6  # counts, then damping/mean/max Λ per layer
    layer = "model.layers.0.mlp.up_proj"
    damping = next(r for r in untimed[0] if r["metric"] == "damping" and r["layer"] == layer)
    lam = load_file(str(fit_run.path / "factors" / f"grad-{layer}.safetensors"))["lambda"]
    assert damping["value"] == pytest.approx(0.1 * float(lam.double().mean()), rel=1e-5) and damping["n"] == 6

    query = influence.QueryConfig(fit=str(fit_run.path), prompt=PROMPT, completion=COMPLETION, top_k=3, rank=4,
                                  candidates="tfidf:4")
    run, summary = influence.run(query, out=tmp_path / "api")
    saved = json.loads((run.path / "manifest.json").read_text())["config"]
    assert saved == {"kind": "query", "fit": str(fit_run.path.resolve()), "queries": [[PROMPT, COMPLETION]],
                     "query": query.scoring()}
    assert saved["query"]["candidates"] == 4
    (sample,) = run.samples()
    results = _results(run.path)
    top1 = next(r for r in results if r["metric"] == "top1_score")
    assert top1["value"] == pytest.approx(sample["top"][0]["score"]) and top1["n"] == sample["n_scored"] == 4
    scores = [r for r in results if r["metric"] == "score"]
    assert [r["train_index"] for r in scores] == [e["train_index"] for e in sample["top"]]
    assert scores[0]["train_index"] == 4  # the near-copy of the query
    table = next(s for s in summary["sections"] if s["id"] == "query-0")["tables"][0]["rows"]
    assert [row[1] for row in table] == [r["train_index"] for r in scores]

    cli = runner.invoke(app, ["influence", "query", "--fit", str(fit_run.path), "--prompt", PROMPT, "--completion",
                              COMPLETION, "--top-k", "3", "--rank", "4", "--candidates", "tfidf:4", "--out",
                              str(tmp_path / "cli")])
    assert cli.exit_code == 0, cli.output
    cli_query = next(p for p in (tmp_path / "cli").iterdir() if p != cli_fit)
    assert json.loads((cli_query / "manifest.json").read_text())["config"] == saved
    assert _results(cli_query) == results

    def recompute(*args, **kwargs):
        raise AssertionError("a resumed run scored a finished query again")

    monkeypatch.setattr("alignlab.influence.study.rank_queries", recompute)
    again, resumed = influence.run(resume=run.path)
    assert again.path == run.path and resumed["headline"] == summary["headline"]
    assert len(again.samples()) == 1 and _results(run.path) == results
    with pytest.raises(ValueError, match="is an influence query run, not an influence fit run"):
        influence.fit(resume=run.path)


def test_bad_configs_are_refused_with_the_flag_named(tmp_path):
    with pytest.raises(ValueError, match=r"batch_size \(--batch-size\) must be at least 1, got 0"):
        influence.FitConfig(train="train.jsonl", batch_size=0)
    with pytest.raises(ValueError, match=r"scope \(--modules\) must be one of mlp, attention, all"):
        influence.FitConfig(train="train.jsonl", scope="conv")
    with pytest.raises(ValueError, match=r"train \(--train\) is required"):
        influence.FitConfig()
    with pytest.raises(ValueError, match=r"candidates \(--candidates\) must be tfidf:N"):
        influence.QueryConfig(candidates="bm25:3")
    with pytest.raises(ValueError, match="--completion"):
        influence.QueryConfig(prompt="only a prompt")
    assert influence.QueryConfig(rank=0, candidates="tfidf:7").scoring()["rank"] is None  # the CLI's 0 = full
    with pytest.raises(TypeError, match="FitConfig or a QueryConfig"):
        influence.run(influence.FactorConfig(), out=tmp_path / "runs")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="manifest.json not found"):
        influence.query(influence.QueryConfig(fit=str(tmp_path), prompt="a", completion="b"), out=tmp_path / "runs")
    result = runner.invoke(app, ["influence", "fit", "--train", "train.jsonl", "--max-length", "1", "--out",
                                 str(tmp_path / "runs")])
    assert result.exit_code == 2 and "max_length (--max-length) must be at least 2" in result.output
    assert not (tmp_path / "runs").exists()  # nothing was created for a refused run
