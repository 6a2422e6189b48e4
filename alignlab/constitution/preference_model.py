"""A preference model (PM): a scalar-head transformers model that scores a whole conversation.

Saved as a folder that ``AutoModelForSequenceClassification.from_pretrained`` reads (``num_labels=1``, LoRA
already merged), with its tokenizer and ``alignlab_pm.json`` (the transcript format it was trained on, held-out
accuracy, the training lines). The constitution and red-team studies train PMs in this format; red teaming and PM
evaluation load them here, or load any off-the-shelf reward model as ``hf:<id-or-path>``. Higher = better (more
harmless / more preferred), as in Bai et al. 2022 §4.

One tokenisation, :func:`encode`, serves training and scoring: the rendered transcript, tokenised as is (no EOS
appended, unlike TRL's default for plain text), cut from the left to ``max_length``; the head reads its last token.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
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


def encode(tokenizer: Any, transcripts: Sequence[Sequence[Message]], fmt: TranscriptFormat,
           max_length: int) -> list[list[int]]:
    """Token ids a PM reads, for training and scoring alike: a chat template already writes its special tokens."""
    texts = [render_transcript(t, tokenizer, fmt) for t in transcripts]
    side, tokenizer.truncation_side = tokenizer.truncation_side, "left"  # keep the turn being judged
    try:
        return tokenizer(texts, add_special_tokens=fmt != "chat", truncation=True, max_length=max_length)["input_ids"]
    finally:
        tokenizer.truncation_side = side


@dataclass
class PreferenceModel:
    model: Any  # a transformers *ForSequenceClassification with one label
    tokenizer: Any
    format: TranscriptFormat = "raw_hh"
    weights_id: str | None = None
    max_length: int = 1024
    batch_size: int = 8
    meta: dict[str, Any] = field(default_factory=dict)  # alignlab_pm.json: held-out accuracy, training lines, ...

    def __post_init__(self) -> None:
        self.model.eval()
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.weights_id = self.weights_id or tensors_hash(self.model.state_dict())

    @classmethod
    def load(cls, path: str | Path, *, dtype: str = "float32", device: str = "auto") -> PreferenceModel:
        """A PM folder, or ``hf:<id-or-path>``: any reward model ``AutoModelForSequenceClassification`` loads with
        one label, read through its own tokenizer and chat template (``raw_hh`` text when it has none)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        spec = str(path)
        target = spec.removeprefix("hf:")
        folder = Path(target)
        if not (folder / PM_CONFIG).is_file():
            if spec.startswith("hf:"):
                return cls._off_the_shelf(target, dtype, device)
            raise FileNotFoundError(f"{folder} is not an alignlab preference model: {PM_CONFIG} is missing "
                                    "(train one with `alignlab redteam train-pm` or `alignlab constitution "
                                    "train-pm`, or name a reward model as hf:<id-or-path>)")
        config = json.loads((folder / PM_CONFIG).read_text())
        model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=DTYPES[dtype], num_labels=1)
        weights = sorted(folder.glob("*.safetensors"))
        return cls(model.to(pick_device(device)), AutoTokenizer.from_pretrained(folder),
                   format=config.get("format", "raw_hh"), weights_id=files_hash(weights) if weights else None,
                   max_length=int(config.get("max_length", 1024)), meta=config)

    @classmethod
    def _off_the_shelf(cls, target: str, dtype: str, device: str) -> PreferenceModel:
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        labels = AutoConfig.from_pretrained(target).num_labels
        if labels != 1:
            raise ValueError(f"hf:{target} has {labels} labels; a reward model scores with exactly one "
                             "(AutoModelForSequenceClassification with num_labels=1)")
        model = AutoModelForSequenceClassification.from_pretrained(target, dtype=DTYPES[dtype])
        tokenizer = AutoTokenizer.from_pretrained(target)
        fmt: TranscriptFormat = "chat" if getattr(tokenizer, "chat_template", None) else "raw_hh"
        limit = getattr(model.config, "max_position_embeddings", None) or 1024
        return cls(model.to(pick_device(device)), tokenizer, format=fmt, max_length=min(int(limit), 4096),
                   meta={"format": fmt, "base_model": f"hf:{target}"})

    def save(self, path: str | Path, **extra: Any) -> Path:
        """Write the folder ``load`` reads; ``extra`` (e.g. the base model, training data) goes into the config."""
        folder = Path(path)
        self.model.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)
        meta = {"format": self.format, "max_length": self.max_length, **extra}
        (folder / PM_CONFIG).write_text(json.dumps(meta, indent=2))
        self.meta = meta
        return folder

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "preference-model", "weights": self.weights_id, "format": self.format,
                "max_length": self.max_length, "tokenizer": text_hash(json.dumps(self.tokenizer.get_vocab(),
                                                                                   sort_keys=True))}

    def encode(self, transcripts: Sequence[Sequence[Message]]) -> list[list[int]]:
        """The token ids :meth:`score` reads (and PM training trains on)."""
        return encode(self.tokenizer, transcripts, self.format, self.max_length)

    @torch.no_grad()
    def score(self, transcripts: Sequence[Sequence[Message]]) -> list[float]:
        """One scalar per transcript, batched by length (sorted, so padding stays small)."""
        ids = self.encode(transcripts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        scores = [0.0] * len(ids)
        device = next(self.model.parameters()).device
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            padded = self.tokenizer.pad({"input_ids": [ids[i] for i in batch]}, return_tensors="pt").to(device)
            rewards = self.model(**padded).logits[:, 0].float().tolist()
            for i, reward in zip(batch, rewards, strict=True):
                scores[i] = reward
        return scores
