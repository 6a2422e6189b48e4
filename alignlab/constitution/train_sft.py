"""SL-CAI fine-tuning (Bai et al. 2022 §3.1): TRL's SFTTrainer on the revisions (plus helpfulness samples).

Rows are ``prompt``/``completion`` (``sft.jsonl`` from ``revise``), so the loss covers the completion only. The paper
fine-tunes a *pretrained* LM for one epoch at half the pretraining LR; here any causal LM (base or instruct), full or
LoRA, for a fixed number of steps. ``max_round`` keeps revisions up to round n (the paper's SL-CAI-n variants).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from alignlab.constitution.config import SLConfig
from alignlab.constitution.data import read_jsonl
from alignlab.constitution.training import (
    lora_config,
    losses,
    model_path,
    save_policy,
    tokenizer_for,
    trainer_args,
)
from alignlab.data.errors import DataError
from alignlab.extras import require


def sft_rows(path: str | Path, max_round: int | None) -> list[dict[str, str]]:
    rows = []
    for number, row in read_jsonl(path):
        for name in ("prompt", "completion"):
            if not isinstance(row.get(name), str) or not row[name].strip():
                raise DataError("must be a non-empty string", path=path, line=number, field=name)
        if max_round is None or row.get("round", 0) <= max_round:
            rows.append({"prompt": row["prompt"], "completion": row["completion"]})
    if not rows:
        raise DataError("no SFT rows", path=path)
    return rows


def train_sft(config: SLConfig, out: Path) -> dict[str, Any]:
    require("trl", extra="train")
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    path = model_path(config.model)
    tokenizer = tokenizer_for(path)
    torch.manual_seed(config.seed)
    data = Dataset.from_list(sft_rows(config.data, config.max_round))
    args = SFTConfig(**trainer_args(config, out / "trainer"), max_length=config.max_length)
    trainer = SFTTrainer(model=path, args=args, train_dataset=data, processing_class=tokenizer,
                         peft_config=lora_config(config, "CAUSAL_LM"))
    trainer.train()
    policy = save_policy(trainer.model, tokenizer, out / "policy", method="sft", base=config.model,
                         config=config.as_dict())
    return {"policy": str(policy), "steps": trainer.state.global_step, "rows": len(data),
            "losses": losses(trainer.state.log_history), "config": config.as_dict()}
