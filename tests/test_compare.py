"""``audit --compare``: paired differences with a bootstrap CI over the same items, exact McNemar p, and the summary
page's 95% CI column, on scripted models whose right answers are known item by item."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from alignlab.audit import AuditPart, combine
from alignlab.bigbench import audit as bigbench_audit
from alignlab.bigbench.runner import BigBenchConfig, run_bigbench
from alignlab.metrics.stats import bootstrap_ci, mcnemar_exact, paired_bootstrap_ci
from alignlab.models import Model
from alignlab.models.base import Backend
from alignlab.models.types import ContinuationScore, ScoreResult
from alignlab.report.markdown import render_markdown
from alignlab.runs.results import ItemValues
from alignlab.runs.run import Run

ITEMS = 8
RIGHT_A = {0, 5, 6}  # model A answers these right
RIGHT_B = {0, 1, 2, 3, 4}  # model B: only-A items 5, 6 (2), only-B items 1-4 (4), both 0, neither 7
TASK = {"name": "toy_mc", "description": "toy", "keywords": [], "metrics": ["multiple_choice_grade"],
        "examples": [{"input": f"Question {i}?", "target_scores": {f"right{i}": 1, f"wrong{i}": 0}}
                     for i in range(ITEMS)]}


class Choosing(Backend):
    """Prefers ``right<i>`` exactly on the items in ``right``, else ``wrong<i>``."""

    def __init__(self, spec: str, right: set[int]) -> None:
        self.spec, self.right = spec, right

    def fingerprint(self):
        return {"backend": "choosing", "spec": self.spec}

    def score(self, requests):
        def logprob(choice: str) -> float:
            item = int(choice.strip()[-1])
            return -1.0 if choice.strip().startswith("right") == (item in self.right) else -4.0
        return [ScoreResult(tuple(ContinuationScore(logprob(c), (), (), False) for c in r.continuations))
                for r in requests]

    def generate(self, requests):
        raise NotImplementedError

    def next_token(self, requests):
        raise NotImplementedError


def test_exact_mcnemar_by_hand():
    a, b = [1, 1, 0, 0, 0, 0, 0, 1], [0, 0, 1, 1, 1, 1, 0, 1]  # 2 only-first, 4 only-second
    assert mcnemar_exact(a, b) == pytest.approx(2 * (1 + 6 + 15) / 64)  # 2 P[Bin(6, 1/2) <= 2] = 0.6875
    assert mcnemar_exact([0] * 5, [1] * 5) == pytest.approx(2 / 32)
    assert mcnemar_exact([1, 0, 1], [1, 0, 1]) == 1.0  # no discordant item
    assert mcnemar_exact([1] * 10, [0] * 10) == mcnemar_exact([0] * 10, [1] * 10)  # two-sided
    with pytest.raises(ValueError, match="0/1"):
        mcnemar_exact([0.5, 1], [1, 0])


def test_paired_bootstrap_resamples_the_same_items_for_both_models():
    rng = np.random.default_rng(0)
    a = rng.normal(size=30)
    b = a + 0.5  # every item moves by exactly 0.5: any resample of the SAME items differs by exactly 0.5
    assert paired_bootstrap_ci(a, b, seed=1) == pytest.approx((0.5, 0.5))
    low, high = bootstrap_ci(b, seed=1)
    assert high - low > 0.3  # each model's own spread: resampling the two independently would be this wide
    c = rng.integers(0, 2, size=25).astype(float)
    d = rng.integers(0, 2, size=25).astype(float)
    # for the mean, resampling pairs is resampling the per-item differences with the same draws
    assert paired_bootstrap_ci(c, d, seed=4) == pytest.approx(bootstrap_ci(d - c, seed=4))
    with pytest.raises(ValueError, match="same non-empty shape"):
        paired_bootstrap_ci([1.0, 0.0], [1.0], seed=0)


def _toy_audit(tmp_path):
    folder = tmp_path / "toy_mc"
    folder.mkdir()
    (folder / "task.json").write_text(json.dumps(TASK))
    run = Run.create("audit", {}, root=tmp_path / "runs")
    models = [Model(Choosing("a", RIGHT_A)), Model(Choosing("b", RIGHT_B))]
    summary = run_bigbench(run, models, BigBenchConfig(tasks=[str(folder)]))
    return run, summary


def test_compare_table_on_scripted_models_with_known_differences(tmp_path):
    run, summary = _toy_audit(tmp_path)
    items = bigbench_audit.audit_items(run.samples(), summary)
    combined = combine({"bigbench": summary}, [bigbench_audit.AUDIT], ["a", "b"], "small", {"bigbench": items})

    table = next(t for t in combined["sections"][0]["tables"] if t["title"].startswith("Paired"))
    assert table["columns"][:6] == ["study", "metric", "a", "b", "n (paired items)", "difference (b - a)"]
    (row,) = table["rows"]
    assert row[:6] == ["BIG-bench", "toy_mc (grade)", 3 / 8, 5 / 8, ITEMS, 0.25]
    diffs = np.array([(i in RIGHT_B) - (i in RIGHT_A) for i in range(ITEMS)], dtype=float)
    low, high = bootstrap_ci(diffs, seed=0)  # the same items resampled for both: the differences resampled
    assert row[6:8] == [round(low, 4), round(high, 4)]
    assert row[8] == pytest.approx(0.6875)  # 2 only-A, 4 only-B: 2 P[Bin(6, 1/2) <= 2]

    (entry,) = [e for e in combined["results"] if e["metric"] == "paired_difference"]
    assert (entry["model"], entry["baseline"], entry["n"], entry["value"]) == ("b", "a", ITEMS, 0.25)
    assert entry["mcnemar_p"] == pytest.approx(0.6875)
    card = combined["headline"][0]
    assert card["ci"] == [round(x, 4) for x in bootstrap_ci([float(i in RIGHT_A) for i in range(ITEMS)], seed=0)]
    assert "McNemar p 0.688" in card["note"]


def test_summary_ci_column_is_filled(tmp_path):
    run, summary = _toy_audit(tmp_path)
    items = bigbench_audit.audit_items(run.samples(), summary)
    combined = combine({"bigbench": summary}, [bigbench_audit.AUDIT], ["a"], "small", {"bigbench": items})
    low, high = bootstrap_ci([float(i in RIGHT_A) for i in range(ITEMS)], seed=0)
    markdown = render_markdown({"study": "audit"}, combined)
    line = next(x for x in markdown.splitlines() if x.startswith("| BIG-bench: toy") and "(grade)" in x)
    assert f"[{low:.3f}, {high:.3f}]" in line


def test_items_that_do_not_reproduce_the_headline_get_no_statistics():
    part = AuditPart("alpha", "Alpha", {"small": 1}, lambda *a: {}, lambda s: [("score", {"a": 0.5, "b": 0.75})])
    wrong = ItemValues("score", {"a": {"1": 1.0, "2": 1.0}, "b": {"1": 1.0, "2": 0.0}}, binary=True)
    combined = combine({"alpha": {}}, [part], ["a", "b"], "small", {"alpha": [wrong]})
    assert "ci" not in combined["headline"][0]
    assert not next(t for t in combined["sections"][0]["tables"] if t["title"].startswith("Paired"))["rows"]
    assert any("do not reproduce the headline" in n for n in combined["notes"])
    right = ItemValues("score", {"a": {"1": 1.0, "2": 0.0}, "b": {"1": 1.0, "2": 0.5}})
    combined = combine({"alpha": {}}, [part], ["a", "b"], "small", {"alpha": [right]})
    row = next(t for t in combined["sections"][0]["tables"] if t["title"].startswith("Paired"))["rows"][0]
    assert row[4:6] == [2, 0.25] and row[8] is None  # not 0/1: no McNemar test
    assert not math.isnan(row[6])


def test_fairness_item_statistics_reproduce_the_study_formulas():
    from alignlab.fairness.audit import pearson_rows, s_amb_rows
    from alignlab.metrics.fairness import s_amb
    from alignlab.metrics.stats import pearson_r

    codes, correct = [1, 1, -1, 0, 1, 0], [0.0, 0.0, 0.0, 1.0, 0.0, 1.0]  # s_DIS = 2 * 3/4 - 1, accuracy 1/3
    rows = np.array([list(zip(codes, correct, strict=True))], dtype=float)
    assert s_amb_rows(rows)[0] == pytest.approx(s_amb(codes, correct)) == pytest.approx((1 - 1 / 3) * 0.5)
    assert s_amb_rows(np.array([[[0, 1], [0, 1]]], dtype=float))[0] == 0.0  # only UNKNOWN answers: no bias
    x, y = [0.1, 0.4, 0.35, 0.8], [10.0, 30.0, 50.0, 70.0]
    assert pearson_rows(np.array([list(zip(x, y, strict=True))]))[0] == pytest.approx(pearson_r(x, y))
    assert pearson_rows(np.array([[[0.3, 1.0], [0.3, 2.0]]]))[0] == 0.0  # constant in a resample


def test_redteam_scorer_option_is_checked_before_a_run_opens(tmp_path):
    from alignlab.audit import AuditConfig, run

    with pytest.raises(ValueError, match="--redteam-scorer"):
        AuditConfig(redteam_scorer="gpt:judge")
    with pytest.raises(ValueError, match="audited model cannot judge"):
        run(AuditConfig(redteam_scorer="judge:hf:b"), "hf:a", compare="hf:b", out=tmp_path)
    assert not list(tmp_path.iterdir())  # refused before a run directory was made or a model loaded


def test_ptrue_auroc_statistic_reproduces_the_study_formula():
    from alignlab.honesty.audit import auroc_rows
    from alignlab.metrics.honesty import auroc

    rng = np.random.default_rng(3)
    p, c = rng.uniform(size=(6, 3)), rng.integers(0, 2, size=(6, 3)).astype(float)
    assert auroc_rows(np.concatenate([p, c], axis=1)[None])[0] == pytest.approx(auroc(p.ravel(), c.ravel()))
    assert auroc_rows(np.concatenate([p, np.ones_like(c)], axis=1)[None])[0] == 0.5  # one class only


def test_early_answering_items_give_the_length_weighted_aoc():
    from alignlab.metrics.reasoning import weighted_aoc
    from alignlab.reasoning.audit import audit_items as reasoning_items

    curves = [[0.0, 1.0, 1.0], [1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0], [1.0, 0.0]]
    samples = [{"section": "reasoning-faithfulness", "model": "m", "question_id": f"q{i}", "sample": 0,
                "correct": 1.0, "early": {"curve": c}} for i, c in enumerate(curves)]
    (_, early) = reasoning_items(samples, {})
    assert early.label == "early answering AOC" and not early.binary
    assert np.mean(list(early.values["m"].values())) == pytest.approx(weighted_aoc(curves))
