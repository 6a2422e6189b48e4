"""RL-CAI (Bai et al. 2022 §4) through TRL: an online trainer against a preference model, and DPO as the cheap path.

- ``rloo`` (default) / ``grpo``: sample ``num_generations`` completions per red-team prompt, reward = PM score of the
  raw transcript, KL penalty ``beta`` against the starting policy (with LoRA, the adapter-disabled base). The paper
  used PPO with λ_KL = 0.001; TRL 1.16 has no PPO, so RLOO/GRPO stand in (a documented deviation).
- ``dpo``: offline preference optimisation on revision ≻ original pairs (``dpo.jsonl`` from ``revise``) or on
  AI-labelled pairs binarised at P(A) > 0.5 (``labels.jsonl``), as in the HF H4 recipe.

The trained policy is merged and saved as ``<out>/policy``; ``hf:<out>/policy`` is then a model spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from alignlab.constitution import prompts as P
from alignlab.constitution.config import RLConfig
from alignlab.constitution.data import load_prompts, parse_transcript, read_jsonl
from alignlab.constitution.preference_model import PreferenceModel
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
from alignlab.models.types import Message


class PMReward:
    """A TRL reward function: the PM's score of ``Human: question / Assistant: completion``."""

    __name__ = "preference_model"

    def __init__(self, pm: PreferenceModel) -> None:
        self.pm = pm

    def __call__(self, prompts: list[str], completions: list[str], question: list[str], **_: Any) -> list[float]:
        return self.pm.score([[Message("user", q), Message("assistant", c.strip())]
                              for q, c in zip(question, completions, strict=True)])


def dpo_rows(path: str | Path, limit: int | None) -> list[dict[str, str]]:
    """prompt/chosen/rejected rows from dpo.jsonl, or from labels.jsonl binarised at pref > 0.5 (ties dropped)."""
    rows = []
    for number, row in read_jsonl(path):
        if "prompt" in row:
            for name in ("prompt", "chosen", "rejected"):
                if not isinstance(row.get(name), str):
                    raise DataError("must be a string", path=path, line=number, field=name)
            rows.append({k: row[k] for k in ("prompt", "chosen", "rejected")})
        elif "pref" in row:
            if row["pref"] == 0.5:
                continue
            a, b = (parse_transcript(row[k], path=path, line=number, field=k) for k in ("chosen", "rejected"))
            win, lose = (a, b) if row["pref"] > 0.5 else (b, a)
            rows.append({"prompt": P.response_prompt(win[0].content), "chosen": " " + win[-1].content,
                         "rejected": " " + lose[-1].content})
        else:
            raise DataError("needs prompt/chosen/rejected (dpo.jsonl) or chosen/rejected/pref (labels.jsonl)",
                            path=path, line=number)
    if not rows:
        raise DataError("no usable pairs", path=path)
    return rows[:limit] if limit else rows


def train_rl(config: RLConfig, out: Path) -> dict[str, Any]:
    """Run the chosen trainer for ``config.steps`` steps and save the merged policy to ``out/policy``."""
    require("trl", extra="train")
    from datasets import Dataset

    path = model_path(config.model)
    tokenizer = tokenizer_for(path)
    tokenizer.padding_side = "left"
    common = trainer_args(config, out / "trainer")
    torch.manual_seed(config.seed)
    if config.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        data = Dataset.from_list(dpo_rows(config.pairs, config.limit))  # type: ignore[arg-type]
        args = DPOConfig(**common, beta=config.beta, max_length=config.max_length)
        trainer = DPOTrainer(model=path, args=args, train_dataset=data, processing_class=tokenizer,
                             peft_config=lora_config(config, "CAUSAL_LM"))
    else:
        items = load_prompts(config.prompts, data=config.data, limit=config.limit, seed=config.seed)
        data = Dataset.from_list([{"prompt": P.response_prompt(q), "question": q} for _, q in items])
        reward = PMReward(PreferenceModel.load(config.pm, device="cpu" if not torch.cuda.is_available() else "auto"))
        online = {**common, "beta": config.beta, "num_generations": config.num_generations,
                  "max_completion_length": config.max_completion_length, "temperature": 1.0,
                  "remove_unused_columns": False}
        if config.method == "rloo":
            from trl import RLOOConfig, RLOOTrainer

            trainer = RLOOTrainer(model=path, reward_funcs=reward, args=RLOOConfig(**online), train_dataset=data,
                                  processing_class=tokenizer, peft_config=lora_config(config, "CAUSAL_LM"))
        else:
            from trl import GRPOConfig, GRPOTrainer

            trainer = GRPOTrainer(model=path, reward_funcs=reward, args=GRPOConfig(**online), train_dataset=data,
                                  processing_class=tokenizer, peft_config=lora_config(config, "CAUSAL_LM"))
    trainer.train()
    history = trainer.state.log_history
    policy = save_policy(trainer.model, tokenizer, out / "policy", method=config.method, base=config.model,
                         config=config.as_dict())
    return {"policy": str(policy), "steps": trainer.state.global_step, "losses": losses(history),
            "rewards": losses(history, "rewards/margins" if config.method == "dpo" else "reward"),
            "kl": losses(history, "kl"), "config": config.as_dict()}
