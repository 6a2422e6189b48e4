"""The transcript format each CAI stage talks to its model in: ``chat`` (the tokenizer's chat template) or ``raw_hh``
(the papers' ``"\\n\\nHuman: ...\\n\\nAssistant:"`` text).

``--format auto`` (the default of every stage) is the chat template when the model's tokenizer has one, else
raw_hh, the same choice as the audit and the red team (which use the chat template). A model served over an API
has its template on the server, so ``auto`` is ``chat`` there. A run records the format it resolved (in every
sample, ``summary.json`` and the saved policy), and a resumed run keeps it; runs written before the option existed
were raw_hh and resume as raw_hh.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

FORMAT_CHOICES = ("auto", "chat", "raw_hh")
FormatChoice = Literal["auto", "chat", "raw_hh"]
Format = Literal["chat", "raw_hh"]
RAW_STOP = ("\n\nHuman:",)  # a raw_hh model goes on to write the next Human turn: one reply ends there


def has_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def resolve(requested: str, tokenizer: Any | None, *, served: bool = False) -> Format:
    """``chat`` or ``raw_hh`` for ``requested``; ``tokenizer`` is the model's (None with ``served`` for API models,
    whose server applies the template). Asking for chat without a template is an error naming the option."""
    if requested not in FORMAT_CHOICES:
        raise ValueError(f"format (--format) must be one of {', '.join(FORMAT_CHOICES)}, got {requested!r}")
    can_chat = served or has_template(tokenizer)
    if requested == "auto":
        return "chat" if can_chat else "raw_hh"
    if requested == "chat" and not can_chat:
        raise ValueError("--format chat: this model's tokenizer has no chat template (use --format raw_hh)")
    return requested  # type: ignore[return-value]


def resolve_for_model(requested: str, model: Any) -> Format:
    """The format for a loaded :class:`~alignlab.models.base.Model` (its backend's tokenizer decides ``auto``)."""
    tokenizer = getattr(getattr(model, "backend", None), "tokenizer", None)
    return resolve(requested, tokenizer, served=tokenizer is None)


def resume_format(samples: Iterable[dict[str, Any]], section: str, requested: str, model: Any) -> Format:
    """A resumed run keeps the format its samples were made in (``raw_hh`` for runs older than the option)."""
    mine = [s for s in samples if s.get("section") == section]
    if mine:
        return mine[0].get("format", "raw_hh")
    return resolve_for_model(requested, model)


def end_of_turn(tokenizer: Any) -> str:
    """The text the chat template puts right after an assistant reply (e.g. ``<|im_end|>``), stripped; '' if none."""
    marker = "\x00reply\x00"
    text = tokenizer.apply_chat_template([{"role": "user", "content": "q"}, {"role": "assistant", "content": marker}],
                                         tokenize=False)
    return text.split(marker, 1)[1].strip() if marker in text else ""


def stops(fmt: Format) -> tuple[str, ...]:
    """Stop strings of one reply: the next Human turn in raw_hh; in chat the end-of-turn token ends generation."""
    return RAW_STOP if fmt == "raw_hh" else ()


def first_reply(text: str, fmt: Format, eot: str = "") -> str:
    """``text`` cut before the next turn: ``\\n\\nHuman:`` (and ``\\n\\nAssistant:``) in raw_hh, the template's
    end-of-turn marker in chat; stripped."""
    cuts = ("\n\nHuman:", "\n\nAssistant:") if fmt == "raw_hh" else tuple(m for m in (eot,) if m)
    for cut in cuts:
        text = text.split(cut, 1)[0]
    return text.strip()


def _turn(role: str, text: str) -> list[dict[str, str]]:
    return [{"role": role, "content": text.strip()}]


def sft_row(question: str, completion: str, fmt: Format, **extra: Any) -> dict[str, Any]:
    """A prompt/completion training row in ``fmt``: raw_hh text, or TRL's conversational messages (the trainer
    renders them with the chat template)."""
    from alignlab.constitution.prompts import conversation_text

    if fmt == "chat":
        return {"prompt": _turn("user", question), "completion": _turn("assistant", completion), "format": fmt,
                **extra}
    return {"prompt": conversation_text(question), "completion": " " + completion.strip(), "format": fmt, **extra}


def pair_row(question: str, chosen: str, rejected: str, fmt: Format, **extra: Any) -> dict[str, Any]:
    """A prompt/chosen/rejected preference row (DPO) in ``fmt``."""
    from alignlab.constitution.prompts import conversation_text

    if fmt == "chat":
        return {"prompt": _turn("user", question), "chosen": _turn("assistant", chosen),
                "rejected": _turn("assistant", rejected), "format": fmt, **extra}
    return {"prompt": conversation_text(question), "chosen": " " + chosen.strip(), "rejected": " " + rejected.strip(),
            "format": fmt, **extra}


def row_question_and_answers(row: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, list[str]] | None:
    """(question, texts of ``keys``) of a training row in either format; None when it is not one of ours."""
    prompt = row.get("prompt")
    if isinstance(prompt, list):
        users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        answers = [next((m.get("content", "") for m in row.get(k) or [] if isinstance(m, dict)), "") for k in keys]
        return (users[-1], answers) if users else None
    if isinstance(prompt, str) and prompt.startswith("\n\nHuman: ") and prompt.endswith("\n\nAssistant:"):
        question = prompt[len("\n\nHuman: "):-len("\n\nAssistant:")]
        if "\n\nHuman:" not in question and "\n\nAssistant:" not in question:
            return question, [str(row.get(k, "")).strip() for k in keys]
    return None
