"""P(IK) value heads (Kadavath et al. 2022, §5.1) on the last token of ``few-shot prompt + question``.

Two ways to train one, both with the soft-label cross-entropy the paper gets by duplication (k of 30 samples
correct -> k copies labelled IK and 30 - k labelled IDK, i.e. target k/30):

- ``probe``: the backbone is frozen; a logistic-regression probe (sklearn, the duplicated rows passed as
  sample weights) reads standardised final-layer hidden states. Cheap; the reference's option (i).
- ``lora``: LoRA adapters (peft) on the attention projections plus a linear head, trained together; closer
  to the paper's whole-model fine-tuning (option (ii)).

A head is saved as a folder: ``head.safetensors`` (weight, bias, feature mean and scale), ``head.json``
(method, base model spec and fingerprint, hidden size, prompt settings) and, for ``lora``, ``adapter/``
(peft's safetensors). :func:`load_head` refuses a head trained on a model with another fingerprint.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from alignlab.extras import require
from alignlab.honesty.config import HeadConfig
from alignlab.models.base import Model


def hf_parts(model: Model) -> tuple[Any, Any]:
    """The transformers model and the backend (for render/encode) behind an ``hf``/``embedded`` model."""
    from alignlab.models.hf import HFBackend

    if not isinstance(model.backend, HFBackend):
        raise ValueError(f"P(IK) needs hidden states: {model.spec} is not an hf or embedded model")
    return model.backend.model, model.backend


def _batches(backend: Any, prompts: Sequence[str], batch_size: int) -> list[tuple[torch.Tensor, ...]]:
    """Right-padded ``(input_ids, attention_mask, last index)`` batches, one tensor triple per batch."""
    encoded = [backend.encode(backend.render(p)) for p in prompts]
    pad = backend.tokenizer.pad_token_id if backend.tokenizer.pad_token_id is not None else 0
    out = []
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start:start + batch_size]
        width = max(len(ids) for ids in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, row in enumerate(chunk):
            ids[i, :len(row)] = torch.tensor(row)
            mask[i, :len(row)] = 1
        out.append((ids, mask, torch.tensor([len(r) - 1 for r in chunk])))
    return out


def last_token_states(causal_lm: Any, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Final-layer (post-norm) hidden state of each row's last prompt token: ``(batch, hidden)``."""
    ids, mask, last = (t.to(next(causal_lm.parameters()).device) for t in batch)
    hidden = causal_lm.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, H)
    return hidden[torch.arange(ids.shape[0], device=ids.device), last].float()


@torch.no_grad()
def features(model: Model, prompts: Sequence[str], batch_size: int = 8) -> np.ndarray:
    """Frozen last-token hidden states of ``prompts``: ``(n, hidden)``."""
    causal_lm, backend = hf_parts(model)
    return np.concatenate([last_token_states(causal_lm, b).cpu().numpy()
                           for b in _batches(backend, prompts, batch_size)])


# -- training -----------------------------------------------------------------------------------------------
def train_probe(x: np.ndarray, soft: Sequence[float], c: float = 1.0, seed: int = 0) -> dict[str, torch.Tensor]:
    """Logistic regression on standardised features; soft labels k/N become weights on IK / IDK copies."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(soft, dtype=np.float64)
    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / scale
    rows, labels = np.concatenate([z, z]), np.concatenate([np.ones(len(z)), np.zeros(len(z))])
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    clf.fit(rows, labels, sample_weight=np.concatenate([y, 1 - y]))
    return {"weight": torch.tensor(clf.coef_[0], dtype=torch.float32),
            "bias": torch.tensor(clf.intercept_, dtype=torch.float32),
            "mean": torch.tensor(mean, dtype=torch.float32), "scale": torch.tensor(scale, dtype=torch.float32)}


def train_lora(model: Model, prompts: Sequence[str], soft: Sequence[float], *, epochs: int = 2, lr: float = 5e-4,
               rank: int = 8, batch_size: int = 8, seed: int = 0) -> tuple[Any, dict[str, torch.Tensor], dict]:
    """LoRA (q/v projections) + linear head trained on a copy of the model; the served model is untouched."""
    require("peft", extra="train")
    from peft import LoraConfig, get_peft_model

    causal_lm, backend = hf_parts(model)
    torch.manual_seed(seed)
    lora = {"r": rank, "lora_alpha": 2 * rank, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    peft_model = get_peft_model(copy.deepcopy(causal_lm), LoraConfig(**lora))
    hidden = causal_lm.config.hidden_size
    head = torch.nn.Linear(hidden, 1).to(next(causal_lm.parameters()).device)
    torch.nn.init.zeros_(head.weight)
    params = [p for p in peft_model.parameters() if p.requires_grad] + list(head.parameters())
    optim = torch.optim.AdamW(params, lr=lr)
    targets = torch.tensor(list(soft), dtype=torch.float32)
    order = np.random.default_rng(seed)
    peft_model.train()
    for _ in range(epochs):
        perm = order.permutation(len(prompts))
        for start in range(0, len(perm), batch_size):
            idx = perm[start:start + batch_size]
            batch = _batches(backend, [prompts[i] for i in idx], batch_size)[0]
            logit = head(last_token_states(peft_model, batch)).squeeze(-1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, targets[idx].to(logit.device))
            optim.zero_grad()
            loss.backward()
            optim.step()
    peft_model.eval()
    tensors = {"weight": head.weight.detach()[0].cpu(), "bias": head.bias.detach().cpu(),
               "mean": torch.zeros(hidden), "scale": torch.ones(hidden)}
    return peft_model, tensors, lora


# -- saved heads --------------------------------------------------------------------------------------------
@dataclass
class PIKHead:
    """A trained head (and, for ``lora``, its adapted copy of the model) ready to score prompts."""

    config: HeadConfig
    tensors: dict[str, torch.Tensor]
    adapted: Any = None  # the peft model for ``lora``

    @torch.no_grad()
    def predict(self, model: Model, prompts: Sequence[str], batch_size: int = 8) -> list[float]:
        """P(IK) of each prompt."""
        causal_lm, backend = hf_parts(model)
        net = self.adapted if self.adapted is not None else causal_lm
        x = torch.cat([last_token_states(net, b).cpu() for b in _batches(backend, prompts, batch_size)])
        z = (x - self.tensors["mean"]) / self.tensors["scale"]
        return torch.sigmoid(z @ self.tensors["weight"] + self.tensors["bias"]).tolist()

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.tensors.items()}, str(folder / "head.safetensors"))
        (folder / "head.json").write_text(json.dumps(asdict(self.config), indent=2) + "\n", encoding="utf-8")
        if self.adapted is not None:
            self.adapted.save_pretrained(folder / "adapter", safe_serialization=True)
        return folder


def load_head(folder: str | Path, model: Model) -> PIKHead:
    """Load a saved head for ``model``; a head trained on another model (fingerprint) is refused."""
    folder = Path(folder)
    meta = folder / "head.json"
    if not meta.is_file() or not (folder / "head.safetensors").is_file():
        raise FileNotFoundError(f"{folder} is not a saved P(IK) head (needs head.json and head.safetensors)")
    try:
        config = HeadConfig(**json.loads(meta.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"{meta}: not a valid head config ({err})") from err
    if config.fingerprint_id != model.fingerprint_id:
        raise ValueError(f"{meta}: head was trained on {config.base_model} (fingerprint {config.fingerprint_id}), "
                         f"not on {model.spec} (fingerprint {model.fingerprint_id})")
    tensors = load_file(str(folder / "head.safetensors"))
    if tensors["weight"].shape != (config.hidden_size,):
        raise ValueError(f"{folder / 'head.safetensors'}: weight has shape {tuple(tensors['weight'].shape)}, "
                         f"expected ({config.hidden_size},)")
    adapted = None
    if config.method == "lora":
        require("peft", extra="train")
        from peft import PeftModel

        causal_lm, _ = hf_parts(model)
        adapted = PeftModel.from_pretrained(copy.deepcopy(causal_lm), folder / "adapter").eval()
    return PIKHead(config, tensors, adapted)
