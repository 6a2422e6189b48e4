"""``alignlab influence fit`` and ``query`` end to end on the tiny model: run directories, report sections, resume."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from alignlab.cli import app

runner = CliRunner()
TEXTS = ["The river Zarta flows through Norbren and is famous for its stone towers.",
         "Farmers in Mive grow red tea near the hills of Kalo.",
         "The museum in Dunta holds a collection of copper bells from ancient Quilo.",
         "Travelers to Selvi often visit Ranmar to see the salt lakes.",
         "The capital of Veloria is Marent, a city known for its glass bridges.",
         "Brenta Osqui wrote a book about the history of Tazar, focusing on old maps."]


def _fit(tmp_path, tiny_dir):
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS), encoding="utf-8")
    result = runner.invoke(app, ["influence", "fit", "--model", f"hf:{tiny_dir}", "--train", str(train),
                                 "--fisher", "empirical", "--batch-size", "4", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    return next((tmp_path / "runs").glob("influence-*"))


def test_fit_then_query_writes_report_and_resumes(tmp_path, tiny_dir):
    fit_run = _fit(tmp_path, tiny_dir)
    assert (fit_run / "factors" / "factors.json").exists()
    assert (fit_run / "factors" / "head.safetensors").exists()  # the output-layer cache the query reuses
    fit_summary = json.loads((fit_run / "summary.json").read_text())
    layers = fit_summary["sections"][0]["tables"][0]["rows"]
    assert len(layers) == 6 and all(row[3] > 0 for row in layers)  # 2 layers x gate/up/down, damping written
    stamp = (fit_run / "factors" / "grad-model.layers.0.mlp.up_proj.safetensors").stat().st_mtime_ns
    resumed_fit = runner.invoke(app, ["influence", "fit", "--resume", str(fit_run)])
    assert resumed_fit.exit_code == 0, resumed_fit.output
    assert (fit_run / "factors" / "grad-model.layers.0.mlp.up_proj.safetensors").stat().st_mtime_ns == stamp

    # no --fit: the newest complete fit run under --out is used
    result = runner.invoke(app, ["influence", "query", "--prompt", "The capital of Veloria is",
                                 "--completion", " Marent, a city known for its glass bridges.", "--top-k", "3",
                                 "--rank", "4", "--candidates", "tfidf:4", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    run = next(p for p in (tmp_path / "runs").glob("influence-*") if p != fit_run)
    assert json.loads((run / "manifest.json").read_text())["config"]["fit"] == str(fit_run.resolve())
    summary = json.loads((run / "summary.json").read_text())
    sections = {s["id"]: s for s in summary["sections"]}
    top_table = sections["query-0"]["tables"][0]["rows"]
    assert top_table[0][1] == 4  # the near-copy ranks first
    assert len(top_table) == 3
    highlight = sections["query-0"]["highlights"][0]
    assert len(highlight["tokens"]) == len(highlight["scores"]) > 5
    assert abs(sum(highlight["scores"]) - top_table[0][2]) <= 1e-2 * abs(top_table[0][2])
    sparsity = sections["sparsity"]["figures"][0]
    assert sparsity["xscale"] == sparsity["yscale"] == "log"
    assert sections["layers"]["figures"][0]["series"][0]["x"] == [0.0, 1.0]
    assert "report.html" in {p.name for p in run.iterdir()}

    resumed = runner.invoke(app, ["influence", "query", "--resume", str(run)])
    assert resumed.exit_code == 0, resumed.output
    assert len((run / "samples.jsonl").read_text().splitlines()) == 1  # the finished query is not redone


def test_bad_training_line_names_file_line_and_field(tmp_path, tiny_dir):
    train = tmp_path / "bad.jsonl"
    train.write_text('{"text": "fine"}\n{"txt": "oops"}\n', encoding="utf-8")
    result = runner.invoke(app, ["influence", "fit", "--model", f"hf:{tiny_dir}", "--train", str(train),
                                 "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "bad.jsonl, line 2, field 'text'" in " ".join(result.output.split())


def test_query_needs_prompt_and_completion(tmp_path, tiny_dir):
    result = runner.invoke(app, ["influence", "query", "--fit", str(tmp_path), "--prompt", "only a prompt"])
    assert result.exit_code == 2
    assert "--completion" in result.output
