"""Shared pieces of the TRL trainers (``trl>=1.16,<2``, the ``train`` extra): model paths, LoRA, arguments, saving.

A trained policy is saved merged (LoRA folded in) as safetensors with its tokenizer, so ``hf:<folder>`` loads it
anywhere a model spec is accepted (``alignlab audit --model embedded --compare hf:<folder>``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from alignlab.constitution.config import TrainConfig
from alignlab.extras import require

LORA_TARGETS = "all-linear"


def model_path(spec: str) -> str:
    """The local folder or hub id behind a model spec; API models cannot be trained."""
    from alignlab.models.spec import parse_spec

    parsed = parse_spec(spec)
    if parsed.kind == "openai":
        raise ValueError(f"{spec} is served over an API and cannot be trained: use embedded or hf:<id-or-path>")
    if parsed.kind == "embedded":
        from alignlab.models.embedded import embedded_path

        return str(embedded_path())
    return parsed.target


def lora_config(config: TrainConfig, task_type: str, layers: list[int] | None = None) -> Any:
    """LoRA on all linear layers (of the transformer blocks ``layers`` only, when given); ``SEQ_CLS`` also trains
    and saves the score head (a PM)."""
    if not config.lora:
        return None
    require("peft", extra="train")
    from peft import LoraConfig

    return LoraConfig(r=config.lora_r, lora_alpha=2 * config.lora_r, lora_dropout=0.0, target_modules=LORA_TARGETS,
                      task_type=task_type, layers_to_transform=layers, layers_pattern="layers" if layers else None)


def freeze_below(model: Any, top: int) -> list[int]:
    """Freeze the embeddings and every transformer block but the top ``top``; the blocks above, the final norm and
    the head still train. Backpropagation then stops at the lowest trained block. Returns the trained blocks."""
    from torch import nn

    blocks = next(m for m in model.modules() if isinstance(m, nn.ModuleList))
    first = max(len(blocks) - top, 0)
    for module in [model.get_input_embeddings(), *blocks[:first]]:
        module.requires_grad_(False)
    return list(range(first, len(blocks)))


def trainer_args(config: TrainConfig, out: Path) -> dict[str, Any]:
    """TrainingArguments fields common to SFT, reward, DPO, RLOO and GRPO configs: fp32 and no activation
    checkpointing (TRL defaults to bf16 and checkpointing, which only slow small models down)."""
    import torch

    return {"bf16": False, "use_cpu": not torch.cuda.is_available(), "gradient_checkpointing": False,
            "output_dir": str(out), "max_steps": config.steps, "per_device_train_batch_size": config.batch_size,
            "learning_rate": config.learning_rate, "logging_steps": 1, "save_strategy": "no", "report_to": "none",
            "seed": config.seed, "data_seed": config.seed, "dataloader_num_workers": 0, "disable_tqdm": True}


def tokenizer_for(path: str) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def merged(model: Any) -> Any:
    """Fold a peft adapter into the base weights (no-op for a plain model)."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def save_policy(model: Any, tokenizer: Any, folder: Path, **meta: Any) -> Path:
    """A merged causal LM folder that ``hf:<folder>`` loads, plus ``alignlab_training.json`` describing it.

    Under a launcher (torchrun, accelerate) every rank holds the same weights: only rank 0 writes the folder."""
    if int(os.environ.get("RANK", "0")) != 0:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    merged(model).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (folder / "alignlab_training.json").write_text(json.dumps(meta, indent=2, default=str))
    return folder


def losses(log_history: list[dict[str, Any]], key: str = "loss") -> list[float]:
    return [float(entry[key]) for entry in log_history if key in entry]
