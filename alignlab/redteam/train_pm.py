"""``alignlab redteam train-pm``: a harmlessness preference model trained on human comparisons (Ganguli et al. 2022
score red-team attempts with a PM trained on human harmlessness labels; Bai et al. 2022a §2).

The PM is a scalar head trained with TRL's RewardTrainer through the constitution study's machinery
(:func:`alignlab.constitution.train_pm.fit_pm`, hard labels: pref = 1 for the human-chosen reply). Data, in order:

- ``--pairs FILE``: any JSONL of hh-rlhf ``chosen``/``rejected`` transcripts, split seeded into train/held-out;
- ``--split auto`` (default): hh-rlhf ``harmless-base`` train split when it resolves (``--data``,
  ``$ALIGNLAB_DATA``, the user cache, a download), measured on a seeded ``--eval-fraction`` of the test split;
  offline (no train split) it falls back to ``--split test``;
- ``--split test``: a seeded split of the harmless-base test file; the held-out part is never trained on.

The run directory (``redteam-pm-*``) holds the manifest, ``summary.json``, ``results.json``, the report and
``pm/`` (the PM folder shared with CAI; ``alignlab_pm.json`` records ``heldout`` and ``training_data``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignlab.constitution.config import PMConfig, TrainConfig
from alignlab.constitution.data import Comparison, harmless_comparisons, load_comparisons
from alignlab.runs.config import option
from alignlab.runs.results import result
from alignlab.runs.run import Run
from alignlab.runs.study import Progress, Study, finish, marking_failure

SPLITS = ("auto", "test")
SOURCE = "hh-rlhf/harmless-base"


@dataclass
class HarmlessPMConfig(TrainConfig):
    """``alignlab redteam train-pm``: a harmlessness PM on human comparisons. The defaults beat chance on the
    embedded model (held-out accuracy 0.594, 95% CI 0.542-0.646, n = 347) in about 8 CPU minutes (docs/redteam.md)."""

    pairs: str | None = option(None, "JSONL of hh-rlhf chosen/rejected transcripts (else hh-rlhf harmless-base).")
    split: str = option("auto", "auto: harmless-base train split when it resolves, else a seeded split of the "
                                 "test file; test: always the seeded split of the test file.", choices=SPLITS)
    base: str = option("embedded", "Model spec the PM starts from.")
    eval_fraction: float = option(0.15, "Held-out share (of --pairs, or of the test file).", minimum=0)
    limit: int | None = option(None, "At most this many training pairs (a seeded subset).", minimum=1)
    data: str | None = option(None, "Dataset path (else $ALIGNLAB_DATA, the user cache, then a download).")
    steps: int = option(75, "Optimizer steps.", minimum=1)
    batch_size: int = option(8, "Pairs per step.", minimum=1)
    learning_rate: float = option(1e-4, "Learning rate.", flag="--lr", minimum=0)
    lora: bool = option(False, "LoRA (merged when saved) or full fine-tuning of the trained blocks.",
                        flag="--lora/--full")
    max_length: int = option(64, "Tokens per transcript, cut from the left (the judged reply is kept), for "
                                 "training and scoring.", minimum=1)
    top_layers: int | None = option(2, "Train only the top N transformer blocks and the head (lower ones frozen: "
                                       "a much cheaper step on CPU); none = all.", minimum=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction (--eval-fraction) must be in (0, 1), got {self.eval_fraction}")

    def pm_config(self, source: str) -> PMConfig:
        """The constitution trainer's config for these settings (``source``: the human comparison file)."""
        shared = {k: getattr(self, k) for k in ("steps", "batch_size", "learning_rate", "lora", "lora_r", "seed",
                                                "max_length", "base", "eval_fraction", "data",
                                                "top_layers")}
        return PMConfig(human=[source], **shared)


def harmless_pairs(config: HarmlessPMConfig) -> tuple[list[Comparison], list[Comparison], str]:
    """(training pairs, held-out pairs, a line saying where each came from)."""
    from alignlab.constitution.train_pm import split

    if config.pairs:
        train, held = split(load_comparisons(config.pairs, seed=config.seed), config.eval_fraction, config.seed,
                            "pairs")
        where = f"{config.pairs}: seeded split, {len(held)} held out"
    else:
        test = harmless_comparisons(config.data, split="test", seed=config.seed)
        test_train, held = split(test, config.eval_fraction, config.seed, SOURCE)
        train_split = _train_split(config) if config.split == "auto" else None
        train = train_split if train_split is not None else test_train
        where = (f"{SOURCE} train split; held out: a seeded {config.eval_fraction:g} of the test split"
                 if train_split is not None else
                 f"{SOURCE} test file, seeded split: {len(test_train)} train / {len(held)} held out (never trained "
                 "on)")
    if config.limit is not None and len(train) > config.limit:
        train, _ = split(train, 1 - config.limit / len(train), config.seed, "limit")
    return train, held, where


def _train_split(config: HarmlessPMConfig) -> list[Comparison] | None:
    try:
        return harmless_comparisons(config.data, split="train", seed=config.seed)
    except FileNotFoundError:
        return None  # offline: no train split to be found


def _train(run: Run, model: Any, config: HarmlessPMConfig, progress: Progress | None) -> dict[str, Any]:
    from alignlab.constitution.train_pm import fit_pm

    train, held, where = harmless_pairs(config)
    outcome = fit_pm(config.pm_config(where), [("human", c) for c in train], [("human", c) for c in held],
                     run.path, trained_on={"source": where, "pairs": config.pairs, "split": config.split},
                     purpose="harmlessness")
    run.append([{"section": "train-pm", "model": config.base, "key": f"step{i + 1}", "step": i + 1, "loss": loss}
                for i, loss in enumerate(outcome["losses"])])
    return summary(outcome, where)


def summary(outcome: dict[str, Any], where: str) -> dict[str, Any]:
    """Headline: held-out accuracy with its CI; the soft loss against ln 2; the curve; the PM folder."""
    held, pm = outcome["heldout"], outcome["pm_path"]
    ci = [held["ci_low"], held["ci_high"]] if "ci_low" in held else None
    results = [result("train-pm", "train_pairs", outcome["train_pairs"], model=pm)]
    if held.get("n"):
        results += [result("heldout", "accuracy", held["accuracy"], model=pm, n=held["n"], ci=ci),
                    result("heldout", "soft_loss", held["soft_loss"], model=pm, n=held["n"])]
    if outcome["losses"]:
        results += [result("train-pm", "first_loss", outcome["losses"][0], model=pm),
                    result("train-pm", "last_loss", outcome["losses"][-1], model=pm)]
    losses = outcome["losses"]
    seen = outcome["config"]["steps"] * outcome["config"]["batch_size"]
    return {"title": "Red teaming: harmlessness preference model", "headline": [
        {"label": "held-out pair accuracy", "value": round(held["accuracy"], 4) if held.get("n") else None,
         "ci": ci, "note": f"n={held.get('n', 0)}, chance 0.5"},
        {"label": "held-out soft loss (ln 2 = chance)", "value": round(held["soft_loss"], 4) if held.get("n")
         else None},
        {"label": "training-split pairs", "value": outcome["train_pairs"],
         "note": f"{min(outcome['train_pairs'], seen)} seen (steps x batch)"},
        {"label": "PM folder (use as --scorer pm:<path>)", "value": pm}],
        "sections": [{"id": "train-pm", "title": "Harmlessness PM on human comparisons",
                      "description": f"Data: {where}. Loss −log σ(r(chosen) − r(rejected)).",
                      "figures": [{"kind": "line", "title": "Training curve", "xlabel": "step",
                                   "series": [{"label": "loss", "x": list(range(1, len(losses) + 1)),
                                               "y": losses}]}],
                      "tables": [{"title": "Held-out comparisons", "columns": ["metric", "value"],
                                  "rows": [[k, v] for k, v in held.items()]}]}],
        "notes": outcome["notes"], "results": results}


STUDY = Study("redteam-pm", HarmlessPMConfig, _train,
              title="Harmlessness PM on human comparisons (hh-rlhf harmless-base); saves <run>/pm")


def run_train_pm(config: HarmlessPMConfig, *, out: str | os.PathLike[str] = "runs", report: bool = True,
                 command: str | None = None, on_open: Callable[[Run], None] | None = None,
                 progress: Progress | None = None) -> tuple[Run, dict[str, Any]]:
    """Train into a new run directory (a trainer does not resume); returns ``(run, summary)``."""
    run = Run.create(STUDY.name, {"study": config.as_dict()}, root=Path(out), seed=int(config.seed), command=command)
    if on_open is not None:
        on_open(run)
    with marking_failure(run):
        outcome = STUDY.evaluate(run, None, config, None)
    finish(run, outcome, report=report)
    return run, outcome
