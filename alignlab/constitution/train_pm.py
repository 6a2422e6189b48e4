"""Preference-model training (Bai et al. 2022 §4.1; Kundu et al. 2023 §2.2): TRL's RewardTrainer with soft labels.

With reward difference d = r(chosen) − r(rejected) and target pref = P(chosen is better) the loss is
``−[pref·log σ(d) + (1 − pref)·log σ(−d)]``; pref ∈ {0, 1} gives the standard Bradley–Terry loss, soft AI labels
floor it at their entropy. AI harmlessness labels (``labels.jsonl`` from ``label``) are mixed with human helpfulness
comparisons (hh-rlhf format, pref = 1), as the paper's PM data mixes 135k human helpfulness with 183k AI harmlessness
comparisons. A seeded fraction of each source is held out; accuracy counts held-out pairs whose PM ordering agrees
with the label's side (pairs labelled exactly 0.5 are skipped). The PM is saved through ``PreferenceModel.save``.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from alignlab.constitution.config import PMConfig
from alignlab.constitution.data import Comparison, helpful_comparisons, load_comparisons, parse_transcript
from alignlab.constitution.preference_model import PreferenceModel
from alignlab.constitution.training import (
    lora_config,
    losses,
    merged,
    model_path,
    tokenizer_for,
    trainer_args,
)
from alignlab.extras import require


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
            items = [Comparison(c.chosen, c.rejected, float(c.pref > 0.5), c.source) for c in items]
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


def accuracy(pm: PreferenceModel, held: list[tuple[str, Comparison]]) -> dict[str, Any]:
    """Held-out agreement per source and overall, plus the mean soft loss."""
    if not held:
        return {"n": 0}
    chosen = pm.score([parse_transcript(c.chosen) for _, c in held])
    rejected = pm.score([parse_transcript(c.rejected) for _, c in held])
    d = torch.tensor(chosen) - torch.tensor(rejected)
    pref = torch.tensor([c.pref for _, c in held])
    decided = pref != 0.5
    hits = ((d > 0) == (pref > 0.5)) & decided
    out: dict[str, Any] = {"n": int(decided.sum()), "accuracy": float(hits.sum() / max(int(decided.sum()), 1)),
                           "soft_loss": float(soft_preference_loss(d, pref))}
    for kind in ("ai", "human"):
        mask = torch.tensor([k == kind for k, _ in held]) & decided
        if mask.any():
            out[f"accuracy_{kind}"] = float(hits[mask].sum() / mask.sum())
            out[f"n_{kind}"] = int(mask.sum())
    return out


def train_pm(config: PMConfig, out: Path) -> dict[str, Any]:
    """Train, evaluate on held-out pairs, save the PM to ``out/pm``; returns metrics."""
    require("trl", extra="train")
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig

    train, held = gather(config)
    path = model_path(config.base)
    tokenizer = tokenizer_for(path)
    torch.manual_seed(config.seed)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    collator_cls, trainer_cls = _trl_classes()
    dataset = Dataset.from_list([{"chosen": c.chosen, "rejected": c.rejected, "pref": c.pref} for _, c in train])
    args = RewardConfig(**trainer_args(config, out / "trainer"), max_length=config.max_length)
    trainer = trainer_cls(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                          data_collator=collator_cls(pad_token_id=tokenizer.pad_token_id),
                          peft_config=lora_config(config, "SEQ_CLS"))
    trainer.train()
    pm = PreferenceModel(merged(trainer.model), tokenizer, format="raw_hh")
    pm.save(out / "pm", base_model=config.base, trained_on={"ai_labels": config.ai_labels, "human": config.human,
                                                              "helpful_base": config.helpful_base},
            pairs_train=len(train), pairs_heldout=len(held), binarized=config.binarize)
    return {"train_pairs": len(train), "heldout": accuracy(pm, held), "losses": losses(trainer.state.log_history),
            "pm_path": str(out / "pm"), "config": config.as_dict()}
