"""A preference model (PM): a scalar-head transformers model that scores a whole conversation.

Saved as a folder that ``AutoModelForSequenceClassification.from_pretrained`` reads (``num_labels=1``, LoRA
already merged), with its tokenizer and ``alignlab_pm.json`` (the transcript format it was trained on). The
constitution study trains PMs in this format; red teaming and PM evaluation load them here. Higher = better
(more harmless / more preferred), as in Bai et al. 2022 §4.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from alignlab.models.fingerprint import files_hash, tensors_hash, text_hash
from alignlab.models.hf import DTYPES, pick_device
from alignlab.models.render import RAW_HH_ROLES
from alignlab.models.types import Message

PM_CONFIG = "alignlab_pm.json"
TranscriptFormat = Literal["raw_hh", "chat"]


def render_transcript(messages: Sequence[Message], tokenizer: Any, fmt: TranscriptFormat) -> str:
    """The text a PM reads: the conversation up to and including its last turn (no generation prompt).

    ``raw_hh`` is the hh-rlhf format ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``; ``chat`` is the tokenizer's template.
    """
    if fmt == "raw_hh":
        return "".join(m.content if m.role == "system" else f"\n\n{RAW_HH_ROLES[m.role]}: {m.content}"
                       for m in messages)
    return tokenizer.apply_chat_template([{"role": m.role, "content": m.content} for m in messages], tokenize=False)


@dataclass
class PreferenceModel:
    model: Any  # a transformers *ForSequenceClassification with one label
    tokenizer: Any
    format: TranscriptFormat = "raw_hh"
    weights_id: str | None = None
    max_length: int = 1024
    batch_size: int = 8

    def __post_init__(self) -> None:
        self.model.eval()
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.tokenizer.truncation_side = "left"  # keep the turn being judged when a transcript is too long
        self.weights_id = self.weights_id or tensors_hash(self.model.state_dict())

    @classmethod
    def load(cls, path: str | Path, *, dtype: str = "float32", device: str = "auto") -> PreferenceModel:
        """Load a PM folder; a clear error when it is not one."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(path)
        config_path = folder / PM_CONFIG
        if not config_path.is_file():
            raise FileNotFoundError(f"{folder} is not an alignlab preference model: {PM_CONFIG} is missing "
                                    "(train one with `alignlab constitution train-pm`)")
        config = json.loads(config_path.read_text())
        model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=DTYPES[dtype], num_labels=1)
        weights = sorted(folder.glob("*.safetensors"))
        return cls(model.to(pick_device(device)), AutoTokenizer.from_pretrained(folder),
                   format=config.get("format", "raw_hh"), weights_id=files_hash(weights) if weights else None)

    def save(self, path: str | Path, **extra: Any) -> Path:
        """Write the folder ``load`` reads; ``extra`` (e.g. the base model, training data) goes into the config."""
        folder = Path(path)
        self.model.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)
        (folder / PM_CONFIG).write_text(json.dumps({"format": self.format, **extra}, indent=2))
        return folder

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "preference-model", "weights": self.weights_id, "format": self.format,
                "max_length": self.max_length, "tokenizer": text_hash(json.dumps(self.tokenizer.get_vocab(),
                                                                                   sort_keys=True))}

    @torch.no_grad()
    def score(self, transcripts: Sequence[Sequence[Message]]) -> list[float]:
        """One scalar per transcript, batched by length (sorted, so padding stays small)."""
        texts = [render_transcript(t, self.tokenizer, self.format) for t in transcripts]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        scores = [0.0] * len(texts)
        device = next(self.model.parameters()).device
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            encoded = self.tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True, truncation=True,
                                     max_length=self.max_length).to(device)
            rewards = self.model(**encoded).logits[:, 0].float().tolist()
            for i, reward in zip(batch, rewards, strict=True):
                scores[i] = reward
        return scores
