"""The audit's red-team part: registered, caps, one scorer for a comparison (never an audited model), headline per
target type, paired attack-success rows, resume."""

from __future__ import annotations

from collections import Counter

import pytest

from alignlab.audit import available_studies, run_audit
from alignlab.models.base import Model
from alignlab.models.hf import HFBackend
from alignlab.redteam import audit as redteam_audit
from alignlab.redteam.audit import choose_scorer
from alignlab.runs.run import Run
from tests.conftest import make_tiny_llama


def test_audit_redteam_two_models_one_external_judge(tmp_path, tiny_model, tokenizer, shared_data):
    study = available_studies()["redteam"]
    assert study.caps == {"small": 8, "full": 200}
    models = [Model(HFBackend(tiny_model, tokenizer, spec="hf:a")),
              Model(HFBackend(make_tiny_llama(tokenizer, seed=3), tokenizer, spec="hf:b"))]
    loaded: list[str] = []

    def load(spec: str) -> Model:
        loaded.append(spec)
        return Model(HFBackend(make_tiny_llama(tokenizer, seed=7), tokenizer, spec=spec))

    options = {"redteam": {"scorer": "judge:hf:c", "load": load}}
    run = Run.create("audit", {}, root=tmp_path)
    summary = run_audit(run, models, "small", str(shared_data), ["redteam"], options=options)

    kinds = Counter((s["kind"], s["model"]) for s in run.samples())
    assert kinds[("attack", "data")] == 8  # shared by both models
    for spec in ("hf:a", "hf:b"):
        assert kinds[("conversation", spec)] == 16  # 8 attacks x plain, prompted
    # one scorer, one threshold, for both models; neither audited model judges anything
    assert kinds[("score", "judge:hf:c")] == 32 and kinds[("calibration", "judge:hf:c")] == 1
    assert not {m for k, m in kinds if k in ("score", "calibration")} - {"judge:hf:c"}
    assert loaded == ["hf:c"]
    tables = {t["title"]: t for t in summary["sections"][0]["tables"]}
    rows = {row[1]: row[2:] for row in tables["Headline numbers"]["rows"]}
    assert set(rows) == {"attack success rate, plain target", "attack success rate, prompted target"}
    for values in rows.values():
        assert all(v is not None and 0 <= v <= 1 for v in values[:2])
    paired = {row[1]: row for row in tables["Paired comparison (the same items for both models)"]["rows"]}
    assert set(paired) == set(rows)
    for label, row in paired.items():
        assert row[4] == 8 and row[5] == pytest.approx(rows[label][1] - rows[label][0], abs=1e-4)
    assert any("one scorer for both models, judge:hf:c" in note for note in summary["notes"])

    before = run.samples()
    run_audit(Run.resume(run.path), models, "small", str(shared_data), ["redteam"], options=options)
    assert Run.resume(run.path).samples() == before


def test_a_comparison_is_never_judged_by_an_audited_model(tmp_path, tiny_model, tokenizer, shared_data,
                                                          monkeypatch):
    assert choose_scorer(["hf:a"], None)[0] == "judge:hf:a"  # one model: today's default, itself
    assert choose_scorer(["hf:a", "hf:b"], None)[0] == "judge:embedded"  # an external judge
    assert choose_scorer(["embedded", "hf:b"], None)[0] is None  # none left: refused
    assert choose_scorer(["hf:a", "hf:b"], None, can_load=False)[0] is None
    assert choose_scorer(["hf:a", "hf:b"], "pm:/some/folder")[0] == "pm:/some/folder"
    with pytest.raises(ValueError, match="audited model cannot judge"):
        choose_scorer(["hf:a", "hf:b"], "judge:hf:b")

    models = [Model(HFBackend(tiny_model, tokenizer, spec="hf:a")),
              Model(HFBackend(make_tiny_llama(tokenizer, seed=3), tokenizer, spec="hf:b"))]
    same_as_a = lambda spec: Model(HFBackend(tiny_model, tokenizer, spec=spec))  # noqa: E731 - a's weights
    run = Run.create("audit", {}, root=tmp_path)
    with pytest.raises(ValueError, match="same weights"):  # named: an error before anything is played
        run_audit(run, models, "small", str(shared_data), ["redteam"],
                  options={"redteam": {"scorer": "judge:hf:copy", "load": same_as_a}})
    monkeypatch.setattr(redteam_audit, "EXTERNAL_JUDGES", ("hf:copy",))
    summary = run_audit(run, models, "small", str(shared_data), ["redteam"],
                        options={"redteam": {"load": same_as_a}})  # chosen automatically: refused with a note
    assert not run.samples()
    assert any("red-team comparison refused" in note for note in summary["notes"])
    summary = run_audit(run, models, "small", str(shared_data), ["redteam"])  # no loader, no scorer: refused
    assert not run.samples() and any("refused" in note for note in summary["notes"])
