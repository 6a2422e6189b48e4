"""The RL-CAI reward and rollouts: one reply per completion, scored and saved per step.

- :class:`Reward` is a TRL reward function. It cuts each completion to one reply (before the next
  ``\\n\\nHuman:`` in raw_hh, before the template's end-of-turn marker in chat), scores ``Human: question /
  Assistant: reply`` (with the PM, or any ``score(questions, replies)`` callable), and appends every completion,
  its reply and its reward to ``completions.jsonl`` with the optimizer step it belongs to.
- :func:`one_turn_trainer` subclasses a TRL online trainer so that generation itself stops there: completions are
  cut after sampling at the raw_hh stop string (tokens from the one holding the stop's first character on are
  dropped, so the policy is trained on the reply only), and in chat the end-of-turn token is an EOS token.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from alignlab.constitution.formats import RAW_STOP, Format, first_reply
from alignlab.models.types import Message

Score = Callable[[list[str], list[str]], list[float]]


def pm_score(pm: Any) -> Score:
    """``score(questions, replies)`` of a :class:`~alignlab.constitution.preference_model.PreferenceModel`."""
    return lambda questions, replies: pm.score([[Message("user", q), Message("assistant", r)]
                                                for q, r in zip(questions, replies, strict=True)])


def completion_text(completion: Any) -> str:
    """A TRL completion: text, or conversational messages (the assistant turn's content)."""
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)


class Reward:
    """A TRL reward function scoring one reply per completion and logging every rollout to ``log``."""

    __name__ = "preference_model"

    def __init__(self, score: Score, fmt: Format, eot: str = "", log: Path | None = None) -> None:
        self.score, self.fmt, self.eot, self.log = score, fmt, eot, log

    def reply(self, completion: Any) -> str:
        return first_reply(completion_text(completion), self.fmt, self.eot)

    def __call__(self, prompts: list[Any], completions: list[Any], question: list[str], **extra: Any) -> list[float]:
        replies = [self.reply(c) for c in completions]
        rewards = [float(r) for r in self.score(list(question), replies)]
        if self.log is not None:
            state = extra.get("trainer_state")
            step = (state.global_step + 1) if state is not None else None
            ids = extra.get("completion_ids") or [None] * len(completions)
            with self.log.open("a", encoding="utf-8") as out:
                for q, c, r, reward, tokens in zip(question, completions, replies, rewards, ids, strict=True):
                    out.write(json.dumps({"step": step, "question": q, "completion": completion_text(c), "reply": r,
                                          "reward": reward, "completion_ids": list(tokens) if tokens else None},
                                         ensure_ascii=False) + "\n")
        return rewards


def cut_at_stop(ids: Sequence[int], decode: Callable[[list[int]], str], stop: tuple[str, ...] = RAW_STOP
                ) -> list[int]:
    """The longest prefix of ``ids`` whose text ends before the first stop string (all of ``ids`` if none; at
    least one token)."""
    text = decode(list(ids))
    at = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    if at < 0:
        return list(ids)
    keep = 0
    for k in range(1, len(ids) + 1):
        if len(decode(list(ids[:k]))) > at:
            break
        keep = k
    return list(ids[:max(keep, 1)])  # TRL needs a token per completion: a reply that is only the stop keeps one


def one_turn_trainer(base: type, fmt: Format, tokenizer: Any, eot: str) -> type:
    """``base`` (RLOOTrainer or GRPOTrainer) whose sampled completions end after one reply."""
    eot_id = tokenizer.convert_tokens_to_ids(eot) if eot else None
    eot_id = eot_id if isinstance(eot_id, int) and eot_id != tokenizer.unk_token_id else None

    class OneTurn(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if fmt == "chat" and eot_id is not None and eot_id not in self.eos_token_ids:
                self.eos_token_ids = [*self.eos_token_ids, eot_id]
                self.generation_config.eos_token_id = self.eos_token_ids
                if isinstance(getattr(self, "generation_kwargs", None), dict):
                    self.generation_kwargs["eos_token_id"] = self.eos_token_ids

        def _generate_single_turn(self, *args: Any, **kwargs: Any) -> Any:
            out = super()._generate_single_turn(*args, **kwargs)
            if fmt != "raw_hh":
                return out
            ids, logprobs = (out if isinstance(out, tuple) else (out, None))
            cut = [cut_at_stop(c, lambda t: tokenizer.decode(t, skip_special_tokens=True)) for c in ids]
            if logprobs is not None:
                logprobs = [lp[:len(c)] for lp, c in zip(logprobs, cut, strict=True)]
            return (cut, logprobs) if isinstance(out, tuple) else cut

    OneTurn.__name__ = f"OneTurn{base.__name__}"
    return OneTurn
