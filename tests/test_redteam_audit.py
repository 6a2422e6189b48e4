"""The audit's red-team part: registered, caps, per-model judge, headline per target type, resume."""

from __future__ import annotations

from collections import Counter

from alignlab.audit import available_studies, run_audit
from alignlab.models.base import Model
from alignlab.models.hf import HFBackend
from alignlab.runs.run import Run
from tests.conftest import make_tiny_llama


def test_audit_redteam_two_models(tmp_path, tiny_model, tokenizer, shared_data):
    study = available_studies()["redteam"]
    assert study.caps == {"small": 8, "full": 200}
    models = [Model(HFBackend(tiny_model, tokenizer, spec="hf:a")),
              Model(HFBackend(make_tiny_llama(tokenizer, seed=3), tokenizer, spec="hf:b"))]
    run = Run.create("audit", {}, root=tmp_path)
    summary = run_audit(run, models, "small", str(shared_data), ["redteam"])

    kinds = Counter((s["kind"], s["model"]) for s in run.samples())
    assert kinds[("attack", "data")] == 8  # shared by both models
    for spec in ("hf:a", "hf:b"):
        assert kinds[("conversation", spec)] == 16  # 8 attacks x plain, prompted
        assert kinds[("score", f"judge:{spec}")] == 16 and kinds[("calibration", f"judge:{spec}")] == 1
    rows = {row[1]: row[2:] for row in summary["sections"][0]["tables"][0]["rows"]}
    assert set(rows) == {"attack success rate, plain target", "attack success rate, prompted target"}
    for values in rows.values():
        assert all(v is not None and 0 <= v <= 1 for v in values[:2])

    before = run.samples()
    run_audit(Run.resume(run.path), models, "small", str(shared_data), ["redteam"])
    assert Run.resume(run.path).samples() == before
