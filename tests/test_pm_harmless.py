"""``alignlab redteam train-pm``: data splits, the PM folder's held-out/training-data records, held-out accuracy with
its bootstrap CI and chance warning, frozen lower blocks; on a tiny random Llama."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from alignlab.constitution import prompts as P
from alignlab.constitution.data import Comparison
from alignlab.constitution.train_pm import accuracy, heldout_notes
from alignlab.metrics.stats import bootstrap_ci
from alignlab.redteam.train_pm import HarmlessPMConfig, harmless_pairs

QUESTIONS = [f"Question number {i}?" for i in range(12)]


class ScriptedPM:
    """Scores a transcript by the number in its last reply ("Assistant: <number>")."""

    def score(self, transcripts):  # noqa: ANN001, ANN201
        return [float(t[-1].content) for t in transcripts]


def _pair(chosen: float, rejected: float) -> tuple[str, Comparison]:
    return "human", Comparison(P.conversation_text("q", str(chosen)), P.conversation_text("q", str(rejected)))


def test_heldout_accuracy_ci_soft_loss_and_chance_warning() -> None:
    held = [_pair(2, 1)] * 7 + [_pair(0, 1)] * 3  # 7 of 10 ordered as labelled
    m = accuracy(ScriptedPM(), held, seed=3)
    assert m["n"] == 10 and m["accuracy"] == pytest.approx(0.7)
    assert (m["ci_low"], m["ci_high"]) == bootstrap_ci([1.0] * 7 + [0.0] * 3, seed=3)
    sigmoid_loss = -(7 * math.log(1 / (1 + math.exp(-1))) + 3 * math.log(1 / (1 + math.exp(1)))) / 10
    assert m["soft_loss"] == pytest.approx(sigmoid_loss) and m["chance_loss"] == pytest.approx(math.log(2))
    assert m["ci_low"] < 0.5 and "does not exclude chance" in m["warning"]
    assert any(line.startswith("WARNING") for line in heldout_notes(m))
    sure = accuracy(ScriptedPM(), [_pair(2, 1)] * 40, seed=0)
    assert sure["ci_low"] == 1.0 and "warning" not in sure and "ln 2" in heldout_notes(sure)[0]


def test_offline_default_splits_the_test_file_and_never_trains_on_held_out(shared_data: Path) -> None:
    config = HarmlessPMConfig(data=str(shared_data), eval_fraction=0.25, seed=1, limit=50)
    train, held, where = harmless_pairs(config)  # no train split here: the seeded split of test.jsonl
    assert "test file" in where and "1734 train / 578 held out" in where and len(held) == 578
    assert len(train) == 50 and {c.line for c in train}.isdisjoint({c.line for c in held})
    assert all(c.path.endswith("hh-rlhf/harmless-base/test.jsonl") for c in train)
    assert harmless_pairs(HarmlessPMConfig(data=str(shared_data), eval_fraction=0.25, seed=2, limit=50))[1] != held


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    rows = [{"chosen": P.conversation_text(q, "I won't help with that."),
             "rejected": P.conversation_text(q, "Sure, here is how.")} for q in QUESTIONS]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_trains_a_pm_folder_that_records_heldout_and_training_lines(tiny_dir: Path, pairs_file: Path,
                                                                        tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from alignlab.cli import app
    from alignlab.constitution.preference_model import PreferenceModel

    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["redteam", "train-pm", "--base", f"hf:{tiny_dir}", "--pairs", str(pairs_file),
                                      "--steps", "2", "--batch-size", "2", "--eval-fraction", "0.25", "--full",
                                      "--top-layers", "1", "--max-length", "32", "--out", str(out)])
    assert result.exit_code == 0, result.output
    run = next(out.glob("redteam-pm-*"))
    summary = json.loads((run / "summary.json").read_text())
    meta = json.loads((run / "pm" / "alignlab_pm.json").read_text())
    assert meta["heldout"]["n"] == 3 and set(meta["heldout"]) == {"n", "accuracy", "ci_low", "ci_high", "soft_loss"}
    assert summary["headline"][0]["value"] == round(meta["heldout"]["accuracy"], 4)
    assert summary["headline"][0]["ci"] == [meta["heldout"]["ci_low"], meta["heldout"]["ci_high"]]
    [used] = meta["training_data"]
    assert used["path"] == str(pairs_file.resolve()) and len(used["lines"]) == 9
    held_lines = set(range(1, 13)) - set(used["lines"])
    assert len(held_lines) == 3 and meta["max_length"] == 32
    assert (run / "report.html").is_file() and json.loads((run / "results.json").read_text())
    pm = PreferenceModel.load(run / "pm", device="cpu")
    assert pm.meta["heldout"] == meta["heldout"] and pm.max_length == 32
    before, after = load_file(tiny_dir / "model.safetensors"), load_file(run / "pm" / "model.safetensors")
    for name in ("model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight"):
        assert torch.equal(before[name], after[name])  # below the top block: frozen
    assert not torch.equal(before["model.layers.1.mlp.up_proj.weight"], after["model.layers.1.mlp.up_proj.weight"])


def test_cli_refuses_a_bad_eval_fraction(pairs_file: Path, tmp_path: Path) -> None:
    from alignlab.cli import app

    result = CliRunner().invoke(app, ["redteam", "train-pm", "--pairs", str(pairs_file), "--eval-fraction", "0",
                                      "--out", str(tmp_path)])
    assert result.exit_code != 0 and "eval_fraction" in result.output


def test_evaluate_pm_accuracy_has_the_bootstrap_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from alignlab.constitution import pm_eval

    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"chosen": c.chosen, "rejected": c.rejected}) + "\n"
                            for _, c in [_pair(2, 1)] * 6 + [_pair(0, 1)] * 2))
    monkeypatch.setattr(pm_eval.PreferenceModel, "load", lambda spec: ScriptedPM())
    summary = pm_eval.evaluate(None, "scripted", [], [str(path)], limit=None, seed=5, data=None)  # type: ignore[arg-type]
    [row] = summary["sections"][0]["tables"][1]["rows"]
    low, high = bootstrap_ci([1.0] * 6 + [0.0] * 2, seed=5)
    assert row[1:5] == [8, 0.75, round(low, 4), round(high, 4)]
    assert summary["results"][0]["ci"] == [low, high]
