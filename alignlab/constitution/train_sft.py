"""SL-CAI fine-tuning (Bai et al. 2022 §3.1): TRL's SFTTrainer on the revisions (plus helpfulness samples).

Rows are ``prompt``/``completion`` (``sft.jsonl`` from ``revise``), so the loss covers the completion only. The paper
fine-tunes a *pretrained* LM for one epoch at half the pretraining LR; here any causal LM (base or instruct), full or
LoRA, for a fixed number of steps. ``max_round`` keeps revisions up to round n (the paper's SL-CAI-n variants).

Training uses the format the data was generated in (``--format auto``): raw_hh rows are text, chat rows are TRL
conversational messages that the trainer renders with the model's chat template. An explicit ``--format`` converts
single-turn rows to it; the format trained in is recorded in the summary and the policy's ``alignlab_training.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from alignlab.constitution.config import SLConfig
from alignlab.constitution.data import read_jsonl
from alignlab.constitution.formats import Format, resolve, row_question_and_answers, sft_row
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


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(m.get("content", "")) for m in value if isinstance(m, dict))
    return value if isinstance(value, str) else ""


def sft_rows(path: str | Path, max_round: int | None, fmt: Format | None = None) -> list[dict[str, Any]]:
    """prompt/completion rows of ``path``, converted to ``fmt`` when given (each row's own format otherwise)."""
    rows = []
    for number, row in read_jsonl(path):
        for name in ("prompt", "completion"):
            if not _text(row.get(name)).strip():
                raise DataError("must be a non-empty string (or chat messages)", path=path, line=number, field=name)
        if max_round is not None and row.get("round", 0) > max_round:
            continue
        own: Format = "chat" if isinstance(row["prompt"], list) else "raw_hh"
        if fmt is None or fmt == own:
            rows.append({"prompt": row["prompt"], "completion": row["completion"]})
            continue
        parsed = row_question_and_answers(row, ("completion",))
        if parsed is None:
            raise DataError(f"cannot convert this {own} row to {fmt}: not a single Human/Assistant exchange",
                            path=path, line=number, field="prompt")
        converted = sft_row(parsed[0], parsed[1][0], fmt)
        rows.append({"prompt": converted["prompt"], "completion": converted["completion"]})
    if not rows:
        raise DataError("no SFT rows", path=path)
    return rows


def data_format(path: str | Path) -> Format:
    """The format sft.jsonl was written in (its first row's)."""
    for _, row in read_jsonl(path):
        return "chat" if isinstance(row.get("prompt"), list) else "raw_hh"
    raise DataError("no SFT rows", path=path)


def train_sft(config: SLConfig, out: Path) -> dict[str, Any]:
    require("trl", extra="train")
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    path = model_path(config.model)
    tokenizer = tokenizer_for(path)
    fmt = data_format(config.data) if config.prompt_format == "auto" else resolve(config.prompt_format, tokenizer)
    resolve(fmt, tokenizer)  # chat data needs a chat template
    torch.manual_seed(config.seed)
    data = Dataset.from_list(sft_rows(config.data, config.max_round, fmt))
    args = SFTConfig(**trainer_args(config, out / "trainer"), max_length=config.max_length)
    trainer = SFTTrainer(model=path, args=args, train_dataset=data, processing_class=tokenizer,
                         peft_config=lora_config(config, "CAUSAL_LM"))
    trainer.train()
    policy = save_policy(trainer.model, tokenizer, out / "policy", method="sft", base=config.model, format=fmt,
                         config=config.as_dict())
    first = trainer.train_dataset[0]
    example = tokenizer.decode(first["input_ids"]) if "input_ids" in first else None
    return {"policy": str(policy), "steps": trainer.state.global_step, "rows": len(data), "format": fmt,
            "example_input": example,
            "losses": losses(trainer.state.log_history), "config": config.as_dict()}
