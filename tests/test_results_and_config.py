"""The shared pieces of every study room: configs whose fields are CLI options, ``run_study``, ``results.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
import typer
from typer.testing import CliRunner

from alignlab.audit import AuditStudy, combine
from alignlab.cli_common import study_command
from alignlab.runs.config import Flag, StudyConfig, option
from alignlab.runs.results import read_results, result, results_of, side_by_side, write_results
from alignlab.runs.run import Run
from alignlab.runs.study import Study, run_study


@dataclass
class ToyConfig(StudyConfig):
    items: list[str] = option(help="Items, comma-separated.", factory=lambda: ["a", "b"], csv=True,
                              choices=("a", "b", "c"))
    limit: int | None = option(None, "At most this many.", minimum=1)
    rate: float = option(0.5, "A share.", minimum=0, maximum=1)
    loud: bool = option(False, "Shout.")
    seed: int = option(3, "Seed.")
    seen: list[str] = field(default_factory=list, init=False, metadata={"cli": Flag(cli=False)})


class Scripted:
    """A model stand-in: the toy study reads only its spec."""

    def __init__(self, spec: str) -> None:
        self.spec, self.fingerprint_id, self.fingerprint = spec, spec, {}

    def describe(self) -> dict[str, str]:
        return {"spec": self.spec}

    def close(self) -> None:
        self.closed = True


def evaluate(run, model, config, progress):
    run.record_model(model)
    done = run.done_keys()
    run.append([{"key": f"{model.spec}|{i}", "section": "toy", "model": model.spec, "item": i} for i in config.items
                if f"{model.spec}|{i}" not in done][: config.limit])
    config.seen.append(model.spec)
    samples = run.samples()
    return {"title": "toy", "results": [result("toy", "count", len([s for s in samples if s["model"] == m]),
                                               model=m, n=len(samples)) for m in dict.fromkeys(s["model"]
                                                                                      for s in samples)]}


TOY = Study("toy", ToyConfig, evaluate)


def test_config_checks_ranges_choices_and_list_elements():
    with pytest.raises(ValueError, match=r"limit \(--limit\) must be at least 1, got 0"):
        ToyConfig(limit=0)
    with pytest.raises(ValueError, match=r"rate \(--rate\) must be at most 1, got 1.5"):
        ToyConfig(rate=1.5)
    with pytest.raises(ValueError, match=r"items \(--items\) must be one of a, b, c; got 'z'"):
        ToyConfig(items=["a", "z"])
    saved = ToyConfig(items=["c"], limit=2).as_dict()
    assert saved == {"items": ["c"], "limit": 2, "rate": 0.5, "loud": False, "seed": 3}  # no run-time state
    assert ToyConfig.from_dict({**saved, "removed_in_this_version": 1}) == ToyConfig(items=["c"], limit=2)


def test_the_cli_command_is_built_from_the_config_and_equals_the_python_run(tmp_path, tiny_dir):
    app = typer.Typer()
    app.command("toy")(study_command(TOY, help="A toy study."))
    app.command("other")(lambda: None)
    runner = CliRunner()
    shown = runner.invoke(app, ["toy", "--help"]).output
    assert "--items" in shown and "(default: a,b)" in shown and "--loud" in shown and "--no-loud" in shown
    specs = [f"hf:{tiny_dir}", f"hf:{tiny_dir}/"]  # two spellings of one tiny model: two specs
    out = runner.invoke(app, ["toy", "--items", "a,c", "--limit", "2", "--loud", "--models", ",".join(specs),
                              "--out", str(tmp_path / "cli"), "--no-cache"])
    assert out.exit_code == 0, out.output
    (cli_dir,) = (tmp_path / "cli").iterdir()
    cli_manifest = json.loads((cli_dir / "manifest.json").read_text())
    assert cli_manifest["config"]["study"] == ToyConfig(items=["a", "c"], limit=2, loud=True).as_dict()
    assert cli_manifest["config"]["models"] == specs and cli_manifest["status"] == "complete"

    run, summary = run_study(TOY, ToyConfig(items=["a", "c"], limit=2, loud=True), specs, out=tmp_path / "api",
                             cache=False, report=False)
    assert read_results(run.path)["results"] == read_results(cli_dir)["results"]
    assert [r["value"] for r in summary["results"]] == [2, 2]

    bad = runner.invoke(app, ["toy", "--limit", "0", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "limit (--limit) must be at least 1, got 0" in bad.output
    assert not (tmp_path / "bad").exists()  # refused before any run directory exists


def test_resume_refuses_another_study_and_a_failed_run_says_so(tmp_path):
    other = Run.create("not-toy", {"study": {}, "models": []}, root=tmp_path)
    with pytest.raises(ValueError, match="is a 'not-toy' run, not 'toy'"):
        run_study(TOY, resume=other.path)
    assert json.loads((other.path / "manifest.json").read_text())["status"] == "running"  # untouched

    def broken(run, model, config, progress):
        raise RuntimeError("model went away")

    with pytest.raises(RuntimeError):
        run_study(Study("toy", ToyConfig, broken), ToyConfig(), Scripted("m"), out=tmp_path, report=False)
    (failed,) = [p for p in tmp_path.iterdir() if p.name.startswith("toy-")]
    manifest = json.loads((failed / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["error"] == "RuntimeError: model went away"


def test_resume_finishes_with_the_saved_config(tmp_path):
    run, _ = run_study(TOY, ToyConfig(items=["a", "b", "c"], limit=1), Scripted("m"), out=tmp_path, report=False)
    assert len(run.samples()) == 1
    again, summary = run_study(TOY, resume=run.path, load=lambda spec, dtype, cache: Scripted(spec), report=False)
    assert again.path == run.path and len(again.samples()) == 2  # one more (limit 1 per call), none redone
    assert summary["results"][0]["value"] == 2


def test_results_file_round_trip_and_fallback(tmp_path):
    entry = result("t", "acc", float("nan"), model="m", n=3, ci=(0.1, float("inf")), shots=0)
    assert entry == {"model": "m", "task": "t", "metric": "acc", "value": None, "n": 3, "ci": [0.1, None],
                     "shots": 0}
    manifest = {"study": "toy", "config": {"x": 1}, "models": [{"spec": "m", "fingerprint_id": "f"}],
                "versions": {"python": "3"}}
    write_results(tmp_path, manifest, {"results": [entry]})
    body = read_results(tmp_path)
    assert body["results"] == [entry] and body["models"] == [{"spec": "m", "fingerprint_id": "f"}]
    assert body["config"] == {"x": 1} and body["schema"] == 1
    assert results_of({"title": "T", "headline": [{"label": "L", "value": 0.5, "note": "m"}]}) == [
        result("T", "L", 0.5, model="m")]
    with pytest.raises(FileNotFoundError, match="results.json not found"):
        read_results(tmp_path / "nowhere")


def test_side_by_side_pairs_equal_conditions_only():
    entries = [result("t", "acc", 0.5, model="a", n=4, intervention="q"),
               result("t", "acc", 0.75, model="b", n=4, intervention="q"),
               result("t", "acc", 0.25, model="b", n=4, intervention="if"),  # a has no "if": not paired
               result("u", "ece", 0.2, model="a", n=9), result("u", "ece", 0.1, model="b", n=8)]
    assert side_by_side(entries, "a", "b") == [["", "t", "acc", "intervention=q", 0.5, 0.75, 0.25, 4, 4],
                                               ["", "u", "ece", "", 0.2, 0.1, -0.1, 9, 8]]


def test_the_audit_of_two_models_lists_every_result_side_by_side():
    study = AuditStudy("alpha", "Alpha", {"small": 1}, lambda *a: {}, lambda summary: [])
    summaries = {"alpha": {"results": [result("t", "acc", 0.5, model="a"), result("t", "acc", 0.25, model="b")]}}
    summary = combine(summaries, [study], ["a", "b"], "small")
    table = summary["sections"][0]["tables"][1]
    assert table["rows"] == [["alpha", "t", "acc", "", 0.5, 0.25, -0.25, None, None]]
    assert summary["results"][0]["study"] == "alpha"
