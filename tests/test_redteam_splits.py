"""Disjoint, seeded red-team data on the real harmless-base file: attack rows and calibration pairs never share a
row or an opening Human turn, neither uses a pair a PM scorer was trained on (by file and line, or a copy of the
row elsewhere), the choice depends on the seed, and the run records which rows were used."""

from __future__ import annotations

import json

import pytest

from alignlab.models.base import Model
from alignlab.models.types import GenerateResult, Generation
from alignlab.redteam.config import RedteamConfig
from alignlab.redteam.pipeline import Resources, run_attack, score
from alignlab.redteam.splits import attack_pairs, calibration_pairs, opening, pm_training
from alignlab.redteam.summary import build_summary
from alignlab.redteam.transcripts import load_pairs
from alignlab.runs.run import Run
from tests.conftest import SHARED_DATA
from tests.test_redteam_measurement import Target


@pytest.fixture(scope="module")
def harmless():
    path = (SHARED_DATA / "hh-rlhf/harmless-base/test.jsonl").resolve()
    pairs, _ = load_pairs(path)
    return path, pairs


class Fixed(Target):
    """Any attack gets the same reply."""

    def generate(self, requests):
        return [GenerateResult((Generation("fine"),)) for _ in requests]


def _pm_folder(tmp_path, name, path, lines):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "alignlab_pm.json").write_text(json.dumps({"format": "raw_hh", "training_data": [
        {"path": str(path), "lines": sorted(lines)}]}))
    return f"pm:{folder}"


def test_attacks_and_calibration_are_disjoint_seeded_and_skip_pm_training_rows(tmp_path, harmless):
    path, pairs = harmless
    attacks = attack_pairs(pairs, 8, seed=0)
    openings = {opening(p.chosen) for p in attacks}
    cal = calibration_pairs(pairs, 64, seed=0, attack_openings=openings)
    assert len(attacks) == 8 == len(openings) and len(cal.pairs) == 64
    assert not {p.line for p in attacks} & set(cal.info["lines"])
    assert not openings & {opening(p.chosen) for p in cal.pairs}
    assert [p.line for p in attacks] != [p.line for p in pairs[:8]]  # not file order
    assert [p.line for p in attack_pairs(pairs, 8, seed=0)] == [p.line for p in attacks]
    assert {p.line for p in attack_pairs(pairs, 8, seed=1)} != {p.line for p in attacks}

    # a PM trained on exactly those rows: both walks move past them (by line, and by text for a copy elsewhere)
    trained_lines = {p.line for p in attacks} | set(cal.info["lines"][:32])
    copy = tmp_path / "copy.jsonl"
    rows = path.read_text(encoding="utf-8").splitlines()
    copy.write_text("".join(rows[n - 1] + "\n" for n in sorted(trained_lines)))
    for spec in (_pm_folder(tmp_path, "by-line", path, trained_lines),
                 _pm_folder(tmp_path, "by-copy", copy, range(1, len(trained_lines) + 1))):
        trained = pm_training([spec, "judge:embedded"])
        assert trained.sources == (spec,)
        again = attack_pairs(pairs, 8, seed=0, trained=trained)
        again_cal = calibration_pairs(pairs, 64, seed=0, attack_openings={opening(p.chosen) for p in again},
                                      trained=trained)
        assert len(again) == 8 and not {p.line for p in again} & trained_lines
        assert len(again_cal.pairs) == 64 and not set(again_cal.info["lines"]) & trained_lines
        assert again_cal.info["skipped_pm_training"] >= 32


def test_a_run_records_which_rows_were_attacks_and_which_calibrated(tmp_path, harmless):
    path, pairs = harmless
    first = attack_pairs(pairs, 3, seed=5)
    spec = _pm_folder(tmp_path, "pm", path, {p.line for p in first})  # trained on the rows seed 5 attacks first
    config = RedteamConfig(sources=["harmless-base"], targets=["plain"], scorers=[spec], model="scripted",
                           attacker="scripted", limit=3, seed=5, calibration_pairs=16, data=str(path.parents[2]),
                           landscape=False)
    res = Resources(lambda s: pytest.fail(f"no model should load: {s}"), {"scripted": Model(Fixed())})

    res.scorers[spec] = Length(spec)
    run = Run.create("redteam", {"study": config.as_dict()}, root=tmp_path / "runs")
    run_attack(run, config, res)
    samples = run.samples()
    attack_lines = {a["attack_meta"]["line"] for a in samples if a["kind"] == "attack"}
    (cal,) = [s["data"] for s in samples if s["kind"] == "calibration"]
    assert len(attack_lines) == 3 and not attack_lines & {p.line for p in first}
    assert len(cal["lines"]) == 16 and not set(cal["lines"]) & (attack_lines | {p.line for p in first})
    assert cal["path"] == str(path) and cal["seed"] == 5 and cal["pm_training_from"] == [spec]
    by_line = {p.line: p for p in pairs}
    attack_openings = {a["messages"][0]["content"].strip() for a in samples if a["kind"] == "attack"}
    assert not attack_openings & {opening(by_line[n].chosen) for n in cal["lines"]}
    summary = build_summary(samples, run.manifest)
    (table,) = [t for t in summary["sections"][0]["tables"] if t["title"].startswith("Data:")]
    assert [r[0] for r in table["rows"]] == ["attacks (opening Human turns)", f"calibration of {spec}"]
    assert [r[2] for r in table["rows"]] == [3, 16]

    # a PM added later (redteam score) that was trained on two of the attack rows: said, not hidden
    late = _pm_folder(tmp_path, "late", path, sorted(attack_lines)[:2])
    res.scorers[late] = Length(late)
    with pytest.warns(UserWarning, match="was trained on 2 of this run's 3 attack rows"):
        score(run, config, res, [late])
    notes = build_summary(run.samples(), run.manifest)["notes"]
    assert any(n.startswith(f"{late}: {late} was trained on 2") for n in notes)


class Length:
    """A scorer: the length of the judged reply."""

    def __init__(self, name):
        self.name = name

    def score(self, transcripts):
        return [float(len(t[-1].content)) for t in transcripts]

    def intent(self, requests):
        return [0.0] * len(requests)

    def describe(self):
        return {"scorer": self.name, "kind": "preference model"}
