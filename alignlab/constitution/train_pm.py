"""Preference-model training (Bai et al. 2022 §4.1; Kundu et al. 2023 §2.2): TRL's RewardTrainer with soft labels.

With reward difference d = r(chosen) − r(rejected) and target pref = P(chosen is better) the loss is
``−[pref·log σ(d) + (1 − pref)·log σ(−d)]``; pref ∈ {0, 1} gives the standard Bradley–Terry loss, soft AI labels
floor it at their entropy. AI harmlessness labels (``labels.jsonl`` from ``label``) are mixed with human helpfulness
comparisons (hh-rlhf format, pref = 1), as the paper's PM data mixes 135k human helpfulness with 183k AI harmlessness
comparisons. A seeded fraction of each source is held out; accuracy counts held-out pairs whose PM ordering agrees
with the label's side (pairs labelled exactly 0.5 are skipped), with a bootstrap 95% CI, and the held-out soft loss
sits next to ln 2 (the loss of a PM that cannot tell the two apart). The PM is saved through ``PreferenceModel.save``
with ``heldout`` and ``training_data`` (each file and the 1-based lines trained on) in ``alignlab_pm.json``.

Training and scoring read the same token ids (:func:`alignlab.constitution.preference_model.encode`): the dataset
is handed to TRL already tokenised, so TRL's EOS (appended to plain text) never enters training.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from alignlab.constitution.config import PMConfig
from alignlab.constitution.data import Comparison, helpful_comparisons, load_comparisons, parse_transcript
from alignlab.constitution.preference_model import PreferenceModel, TranscriptFormat, encode
from alignlab.constitution.training import (
    freeze_below,
    lora_config,
    losses,
    merged,
    model_path,
    tokenizer_for,
    trainer_args,
)
from alignlab.extras import require
from alignlab.metrics.stats import bootstrap_ci

LN2 = math.log(2)


def soft_preference_loss(d: torch.Tensor, pref: torch.Tensor) -> torch.Tensor:
    """Mean of −[pref·log σ(d) + (1 − pref)·log σ(−d)] over the batch."""
    return -(pref * nn.functional.logsigmoid(d) + (1.0 - pref) * nn.functional.logsigmoid(-d)).mean()


def _trl_classes() -> tuple[type, type]:
    require("trl", extra="train")
    from trl import RewardTrainer
    from trl.trainer.reward_trainer import DataCollatorForPreference

    class SoftPreferenceCollator(DataCollatorForPreference):
        """TRL's preference collator that also batches the ``pref`` column."""

        def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
            out = super().torch_call(examples)
            out["pref"] = torch.tensor([float(e["pref"]) for e in examples], dtype=torch.float)
            return out

    class SoftRewardTrainer(RewardTrainer):
        """RewardTrainer whose loss takes soft targets (``pref``) instead of hard chosen/rejected labels."""

        def _set_signature_columns_if_needed(self) -> None:
            if self._signature_columns is None:
                self._signature_columns = ["chosen_ids", "rejected_ids", "pref"]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
            pref = inputs.pop("pref")
            inputs["use_cache"] = False
            outputs = model(**inputs)
            chosen, rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)  # (B,), (B,)
            loss = soft_preference_loss(chosen - rejected, pref.to(chosen.dtype))
            mode = "train" if self.model.training else "eval"
            with torch.no_grad():
                agree = ((chosen > rejected) == (pref > 0.5)).float().mean().item()
                self._metrics[mode]["accuracy"].append(agree)
                self._metrics[mode]["margin"].append((chosen - rejected).mean().item())
            return (loss, outputs) if return_outputs else loss

    return SoftPreferenceCollator, SoftRewardTrainer


def split(items: list[Comparison], fraction: float, seed: int, salt: str) -> tuple[list[Comparison], list[Comparison]]:
    """Seeded train/held-out split; at least one held-out pair when fraction > 0 and there are two or more."""
    rng = np.random.default_rng([seed, zlib.crc32(salt.encode())])
    order = rng.permutation(len(items))
    n_eval = min(len(items) - 1, max(1, round(fraction * len(items)))) if fraction > 0 and len(items) > 1 else 0
    held = set(order[:n_eval].tolist())
    return [x for i, x in enumerate(items) if i not in held], [x for i, x in enumerate(items) if i in held]


def gather(config: PMConfig) -> tuple[list[tuple[str, Comparison]], list[tuple[str, Comparison]]]:
    """(source kind, comparison) for training and for held-out evaluation."""
    sources: list[tuple[str, str, list[Comparison]]] = []
    for path in config.ai_labels:
        items = load_comparisons(path, limit=config.limit, seed=config.seed)
        if config.binarize:
            items = [dataclasses.replace(c, pref=float(c.pref > 0.5)) for c in items]
        sources.append(("ai", path, items))
    for path in config.human:
        sources.append(("human", path, load_comparisons(path, limit=config.limit, seed=config.seed)))
    if config.helpful_base:
        sources.append(("human", "helpful-base", helpful_comparisons(config.data, limit=config.helpful_base,
                                                                     seed=config.seed)))
    if not sources:
        raise ValueError("no training data: pass --ai-labels and/or --human (or --helpful-base N when online)")
    train, held = [], []
    for kind, name, items in sources:
        a, b = split(items, config.eval_fraction, config.seed, name)
        train += [(kind, c) for c in a]
        held += [(kind, c) for c in b]
    return train, held


def accuracy(pm: PreferenceModel, held: list[tuple[str, Comparison]], seed: int = 0) -> dict[str, Any]:
    """Held-out agreement per source and overall (with a bootstrap 95% CI), plus the mean soft loss next to ln 2."""
    if not held:
        return {"n": 0}
    chosen = pm.score([parse_transcript(c.chosen) for _, c in held])
    rejected = pm.score([parse_transcript(c.rejected) for _, c in held])
    d = torch.tensor(chosen) - torch.tensor(rejected)
    pref = torch.tensor([c.pref for _, c in held])
    decided = pref != 0.5
    hits = ((d > 0) == (pref > 0.5)) & decided
    n = int(decided.sum())
    out: dict[str, Any] = {"n": n, "accuracy": float(hits.sum() / max(n, 1)),
                           "soft_loss": float(soft_preference_loss(d, pref)), "chance_loss": LN2}
    if n:
        out["ci_low"], out["ci_high"] = bootstrap_ci(hits[decided].float().tolist(), seed=seed)
        if not out["ci_low"] > 0.5:
            out["warning"] = (f"held-out accuracy {out['accuracy']:.3f} (95% CI {out['ci_low']:.3f}-"
                              f"{out['ci_high']:.3f}, n={n}) does not exclude chance (0.5)")
    for kind in ("ai", "human"):
        mask = torch.tensor([k == kind for k, _ in held]) & decided
        if mask.any():
            out[f"accuracy_{kind}"] = float(hits[mask].sum() / mask.sum())
            out[f"n_{kind}"] = int(mask.sum())
    return out


def heldout_notes(held: dict[str, Any]) -> list[str]:
    """Report lines for a held-out evaluation: accuracy with its CI, soft loss against ln 2, the chance warning."""
    if not held.get("n"):
        return ["no held-out pairs (eval fraction 0): the PM's accuracy is unmeasured"]
    lines = [f"held-out pair accuracy {held['accuracy']:.3f} (bootstrap 95% CI {held['ci_low']:.3f}-"
             f"{held['ci_high']:.3f}, n={held['n']}); held-out soft loss {held['soft_loss']:.4f} vs ln 2 = "
             f"{LN2:.4f} for a PM that cannot tell the replies apart"]
    return lines + ([f"WARNING: {held['warning']}"] if "warning" in held else [])


def training_data(train: list[tuple[str, Comparison]]) -> list[dict[str, Any]]:
    """Each file trained on, with the 1-based line numbers used for training (red teaming avoids them)."""
    files: dict[str, list[int]] = {}
    for _, c in train:
        if c.path:
            files.setdefault(c.path, []).append(c.line)
    return [{"path": path, "lines": sorted(lines)} for path, lines in files.items()]


def preference_dataset(tokenizer: Any, comparisons: list[Comparison], max_length: int,
                       fmt: TranscriptFormat = "raw_hh") -> Any:
    """Pre-tokenised ``chosen_ids``/``rejected_ids``/``pref`` rows, encoded exactly as :meth:`PreferenceModel.score`
    encodes a transcript (so TRL adds no EOS)."""
    from datasets import Dataset

    def ids(texts: list[str]) -> list[list[int]]:
        return encode(tokenizer, [parse_transcript(t) for t in texts], fmt, max_length)

    chosen, rejected = ids([c.chosen for c in comparisons]), ids([c.rejected for c in comparisons])
    return Dataset.from_dict({"chosen_ids": chosen, "rejected_ids": rejected, "pref": [c.pref for c in comparisons]})


def fit_pm(config: PMConfig, train: list[tuple[str, Comparison]], held: list[tuple[str, Comparison]], out: Path,
           **meta: Any) -> dict[str, Any]:
    """Train on ``train``, measure on ``held``, save the PM to ``out/pm``; returns the outcome (``meta`` is saved)."""
    require("trl", extra="train")
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig

    if not train:
        raise ValueError("no training pairs left after the held-out split")
    path = model_path(config.base)
    tokenizer = tokenizer_for(path)
    torch.manual_seed(config.seed)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    layers = freeze_below(model, config.top_layers) if config.top_layers is not None else None
    collator_cls, trainer_cls = _trl_classes()
    dataset = preference_dataset(tokenizer, [c for _, c in train], config.max_length)
    args = RewardConfig(**trainer_args(config, out / "trainer"), max_length=config.max_length)
    trainer = trainer_cls(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                          data_collator=collator_cls(pad_token_id=tokenizer.pad_token_id),
                          peft_config=None if layers == [] else lora_config(config, "SEQ_CLS", layers))
    trainer.train()
    pm = PreferenceModel(merged(trainer.model), tokenizer, format="raw_hh", max_length=config.max_length)
    heldout = accuracy(pm, held, config.seed)
    pm.save(out / "pm", base_model=config.base, pairs_train=len(train), pairs_heldout=len(held),
            heldout={k: heldout.get(k) for k in ("n", "accuracy", "ci_low", "ci_high", "soft_loss")},
            training_data=training_data(train), **meta)
    return {"train_pairs": len(train), "heldout": heldout, "losses": losses(trainer.state.log_history),
            "pm_path": str(out / "pm"), "config": config.as_dict(), "notes": heldout_notes(heldout)}


def train_pm(config: PMConfig, out: Path) -> dict[str, Any]:
    """Train on AI labels and human comparisons, evaluate on held-out pairs, save the PM to ``out/pm``."""
    require("trl", extra="train")
    train, held = gather(config)
    return fit_pm(config, train, held, out, binarized=config.binarize,
                  trained_on={"ai_labels": config.ai_labels, "human": config.human,
                              "helpful_base": config.helpful_base})
