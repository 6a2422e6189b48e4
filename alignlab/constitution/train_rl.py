"""RL-CAI (Bai et al. 2022 §4) through TRL: an online trainer against a preference model, and DPO as the cheap path.

- ``rloo`` (default) / ``grpo``: sample ``num_generations`` completions per red-team prompt, rendered in the run's
  format (``--format``: the chat template or raw ``Human:/Assistant:`` text); each completion stops after one reply
  (:mod:`alignlab.constitution.rl_reward`) and its reward is the PM score of ``Human: question / Assistant: reply``,
  with a KL penalty ``beta`` against the starting policy (with LoRA, the adapter-disabled base). The paper used PPO
  with λ_KL = 0.001; TRL 1.16 has no PPO, so RLOO/GRPO stand in (a documented deviation). Every completion and
  reward is saved per step in ``<out>/completions.jsonl``.
- ``dpo``: offline preference optimisation on revision ≻ original pairs (``dpo.jsonl`` from ``revise``) or on
  AI-labelled pairs binarised at P(A) > 0.5 (``labels.jsonl``), as in the HF H4 recipe.

The trained policy is merged and saved as ``<out>/policy``; ``hf:<out>/policy`` is then a model spec (a train-sft
policy folder is a valid starting ``--model``, as the paper starts RL from the SL-CAI model). The outcome reports
how far the weights moved: ‖θ_end − θ_start‖ / ‖θ_start‖.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from alignlab.constitution import prompts as P
from alignlab.constitution.config import RLConfig
from alignlab.constitution.data import load_prompts, parse_transcript, read_jsonl
from alignlab.constitution.formats import Format, end_of_turn, pair_row, resolve
from alignlab.constitution.measures import weight_distance
from alignlab.constitution.preference_model import PreferenceModel
from alignlab.constitution.rl_reward import Reward, Score, one_turn_trainer, pm_score
from alignlab.constitution.training import (
    lora_config,
    losses,
    merged,
    model_path,
    save_policy,
    tokenizer_for,
    trainer_args,
)
from alignlab.data.errors import DataError
from alignlab.extras import require

COMPLETIONS = "completions.jsonl"


def dpo_rows(path: str | Path, limit: int | None, fmt: Format | None = None) -> list[dict[str, Any]]:
    """prompt/chosen/rejected rows from dpo.jsonl (either format, kept as written), or from labels.jsonl binarised
    at pref > 0.5 (ties dropped) and written in ``fmt`` (default raw_hh)."""
    rows = []
    for number, row in read_jsonl(path):
        if "prompt" in row:
            for name in ("prompt", "chosen", "rejected"):
                if not isinstance(row.get(name), (str, list)):
                    raise DataError("must be a string (or chat messages)", path=path, line=number, field=name)
            rows.append({k: row[k] for k in ("prompt", "chosen", "rejected")})
        elif "pref" in row:
            if row["pref"] == 0.5:
                continue
            a, b = (parse_transcript(row[k], path=path, line=number, field=k) for k in ("chosen", "rejected"))
            win, lose = (a, b) if row["pref"] > 0.5 else (b, a)
            pair = pair_row(win[0].content, win[-1].content, lose[-1].content, fmt or "raw_hh")
            rows.append({k: pair[k] for k in ("prompt", "chosen", "rejected")})
        else:
            raise DataError("needs prompt/chosen/rejected (dpo.jsonl) or chosen/rejected/pref (labels.jsonl)",
                            path=path, line=number)
    if not rows:
        raise DataError("no usable pairs", path=path)
    return rows[:limit] if limit else rows


def _pairs_format(path: str | Path) -> Format | None:
    """The format of a dpo.jsonl (None for labels.jsonl, whose transcripts any format can render)."""
    for _, row in read_jsonl(path):
        prompt = row.get("prompt")
        return None if prompt is None else "chat" if isinstance(prompt, list) else "raw_hh"
    return None


def rl_format(config: RLConfig, tokenizer: Any) -> Format:
    if config.method == "dpo" and config.prompt_format == "auto" and config.pairs:
        return _pairs_format(config.pairs) or resolve("auto", tokenizer)
    return resolve(config.prompt_format, tokenizer)


def rl_dataset_rows(questions: list[str], fmt: Format) -> list[dict[str, Any]]:
    """The online trainer's prompts in ``fmt``: raw_hh text or one user message (TRL renders the template)."""
    return [{"prompt": P.response_prompt(q) if fmt == "raw_hh" else [{"role": "user", "content": q}],
             "question": q} for q in questions]


def rendered_prompt(row: dict[str, Any], tokenizer: Any) -> str:
    """The text the online trainer generates from for ``row`` (TRL's own chat-template step for chat rows)."""
    from trl.data_utils import maybe_apply_chat_template

    return maybe_apply_chat_template({"prompt": row["prompt"]}, tokenizer)["prompt"]


def train_rl(config: RLConfig, out: Path, *, score: Score | None = None) -> dict[str, Any]:
    """Run the chosen trainer for ``config.steps`` steps and save the merged policy to ``out/policy``. ``score``
    (questions, replies) -> rewards replaces the PM (tests use a scripted reward)."""
    require("trl", extra="train")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    path = model_path(config.model)
    tokenizer = tokenizer_for(path)
    tokenizer.padding_side = "left"
    fmt = rl_format(config, tokenizer)
    common = trainer_args(config, out / "trainer")
    torch.manual_seed(config.seed)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    start = {k: v.detach().clone().cpu() for k, v in model.state_dict().items()}
    log, example = None, None
    if config.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        data = Dataset.from_list(dpo_rows(config.pairs, config.limit, fmt))  # type: ignore[arg-type]
        args = DPOConfig(**common, beta=config.beta, max_length=config.max_length)
        trainer = DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                             peft_config=lora_config(config, "CAUSAL_LM"))
    else:
        items = load_prompts(config.prompts, data=config.data, limit=config.limit, seed=config.seed)
        data = Dataset.from_list(rl_dataset_rows([q for _, q in items], fmt))
        example = rendered_prompt(data[0], tokenizer)
        if score is None:
            device = "cpu" if not torch.cuda.is_available() else "auto"
            score = pm_score(PreferenceModel.load(config.pm, device=device))  # type: ignore[arg-type]
        eot = end_of_turn(tokenizer) if fmt == "chat" else ""
        log = out / COMPLETIONS
        log.unlink(missing_ok=True)
        reward = Reward(score, fmt, eot, log)
        online = {**common, "beta": config.beta, "num_generations": config.num_generations,
                  "max_completion_length": config.max_completion_length, "temperature": 1.0,
                  "remove_unused_columns": False}
        if config.method == "rloo":
            from trl import RLOOConfig as OnlineConfig
            from trl import RLOOTrainer as Online
        else:
            from trl import GRPOConfig as OnlineConfig  # type: ignore[assignment]
            from trl import GRPOTrainer as Online  # type: ignore[assignment]
        trainer = one_turn_trainer(Online, fmt, tokenizer, eot)(
            model=model, reward_funcs=reward, args=OnlineConfig(**online), train_dataset=data,
            processing_class=tokenizer, peft_config=lora_config(config, "CAUSAL_LM"))
    trainer.train()
    history = trainer.state.log_history
    final = merged(trainer.model)
    distance = weight_distance(start, final.state_dict())
    policy = save_policy(final, tokenizer, out / "policy", method=config.method, base=config.model, format=fmt,
                         config=config.as_dict())
    return {"policy": str(policy), "steps": trainer.state.global_step, "losses": losses(history),
            "rewards": losses(history, "rewards/margins" if config.method == "dpo" else "reward"),
            "kl": losses(history, "kl"), "format": fmt, "weight_distance": distance,
            "completions": str(log) if log else None, "example_input": example, "config": config.as_dict()}
