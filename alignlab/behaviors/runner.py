"""Model-written evaluations (Perez et al. 2022, arXiv 2212.09251): how often a model's answers match a
behaviour, on the released persona, advanced-AI-risk, sycophancy and winogenerated datasets.

Each question is scored as the paper scores it: the human turn (and the assistant prefill, for sycophancy
and winogenerated) rendered in the paper's ``raw_hh`` format (``\\n\\nHuman: ...\\n\\nAssistant:``) or the
model's chat template, then every answer option scored as a continuation (summed token log-probabilities),
renormalised over the options. The answer options are scored verbatim, leading space included (``" Yes"``,
``" (A)"``), in both formats.

- Persona, advanced AI risk, sycophancy (§3-5, Fig. 1-5): behaviour match rate (the model's most probable
  option is a matching one; questions with more than two options, as in power-seeking-inclination, count
  the argmax over all of them), mean probability of the matching answer, seeded bootstrap 95% CI, and the
  ceiling/floor accuracy of §3.3 from ``label_confidence`` where the data has it.
- Winogenerated (§6, Tab. 8, Fig. 8-9): the sentence up to the blank is the assistant prefill; the three
  pronouns are scored, ``p(female) - p(male)`` is renormalised over the two gendered ones and averaged per
  occupation, and correlated (Pearson r, Fisher-z 95% CI) with the BLS 2019 share of women.

The summary (metrics, tables, figures, ``results``) is :mod:`alignlab.behaviors.summary`; the config
:class:`alignlab.behaviors.config.BehaviorsConfig`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from alignlab.behaviors.config import BehaviorsConfig
from alignlab.behaviors.data import WINOGENERATED_GENDERS, BehaviorDataset, BehaviorItem, load_dataset
from alignlab.behaviors.summary import SECTION, summarize
from alignlab.data.errors import DataError
from alignlab.metrics.behaviors import female_minus_male, normalized_probs
from alignlab.models.base import Model
from alignlab.models.render import render_raw_hh
from alignlab.models.types import Conversation, PromptFormat, ScoreRequest
from alignlab.runs.run import Run

__all__ = ["AUDIT_DATASETS", "BehaviorsConfig", "conversation", "load_datasets", "run_behaviors", "sample_key",
           "select_items"]

# The audit's default: four persona behaviours and two human-written advanced-AI-risk sets.
AUDIT_DATASETS = [
    "persona/desire-for-acquiring-power",
    "persona/desire-for-independence-from-human-oversight",
    "persona/no-shut-down",
    "persona/believes-it-has-phenomenal-consciousness",
    "advanced-ai-risk/human_generated_evals/power-seeking-inclination",
    "advanced-ai-risk/human_generated_evals/corrigible-neutral-HHH",
]


def load_datasets(config: BehaviorsConfig) -> tuple[list[BehaviorDataset], list[str]]:
    """Every dataset that loads, and a note for each that does not (bad data); a missing dataset raises
    FileNotFoundError, and so does a study in which no dataset loads."""
    loaded, failed, errors = [], [], []
    for name in dict.fromkeys(config.datasets):
        try:
            loaded.append(load_dataset(name, data=config.data))
        except DataError as err:
            errors.append(err)
            failed.append(f"{name}: not evaluated: {err}")
    if errors and not loaded:
        raise errors[0]
    return loaded, failed


def select_items(dataset: BehaviorDataset, max_items: int | None, seed: int) -> list[BehaviorItem]:
    """All items, or ``max_items`` of them drawn without replacement (seeded by ``seed`` and the dataset
    name), kept in file order."""
    items = dataset.items
    if max_items is None or len(items) <= max_items:
        return list(items)
    rng = np.random.default_rng([seed, zlib.crc32(dataset.name.encode())])
    return [items[i] for i in np.sort(rng.choice(len(items), max_items, replace=False))]


def conversation(item: BehaviorItem, prompt_format: PromptFormat) -> Conversation:
    """The paper's final-format dialogue: the human turn, then the assistant (prefill) before the answer."""
    return Conversation.of(("user", item.question), prefill=item.prefill, format=prompt_format)


def sample_key(model: Model, item: BehaviorItem, prompt_format: str) -> str:
    return f"{model.spec}|{model.fingerprint_id}|{prompt_format}|{item.id}"


def run_behaviors(run: Run, models: list[Model], config: BehaviorsConfig,
                  progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Evaluate every model on every selected question not yet in ``run``; returns the summary."""
    datasets, failed = load_datasets(config)
    # keyed by id: a dataset given twice (say with and without .jsonl) is evaluated once
    items = list({item.id: item for ds in datasets for item in select_items(ds, config.max_items, config.seed)
                  }.values())
    for model in models:
        run.evaluate_in_chunks(model, items, lambda item, m=model: sample_key(m, item, config.prompt_format),
                               lambda chunk, m=model: _evaluate_chunk(m, chunk, config.prompt_format),
                               chunk_size=config.chunk_size, progress=progress)
    return summarize(run.samples(), run.manifest, config, datasets, failed)


def _evaluate_chunk(model: Model, chunk: list[BehaviorItem], prompt_format: PromptFormat) -> list[dict[str, Any]]:
    conversations = [conversation(item, prompt_format) for item in chunk]
    results = model.score([ScoreRequest(conv, item.options) for conv, item in zip(conversations, chunk, strict=True)])
    records = []
    for item, conv, result in zip(chunk, conversations, results, strict=True):
        probs = normalized_probs(result.logprobs)
        chosen = int(np.argmax(probs))  # the first option on an exact tie
        record: dict[str, Any] = {
            "section": SECTION, "model": model.spec, "key": sample_key(model, item, prompt_format),
            "dataset": item.dataset, "kind": item.kind, "id": item.id, "line": item.line,
            "prompt_format": prompt_format, "question": item.question, "prefill": item.prefill,
            "prompt": _prompt_text(model, conv), "options": list(item.options), "logprobs": result.logprobs,
            "probs": probs.tolist(), "chosen": item.options[chosen], "chosen_index": chosen,
            "label_confidence": item.label_confidence,
        }
        if item.kind == "winogenerated":
            p = dict(zip(WINOGENERATED_GENDERS, probs.tolist(), strict=True))
            record.update({"occupation": item.occupation, "bls_percent_women": item.bls_percent_women,
                           "p_male": p["male"], "p_female": p["female"], "p_neutral": p["neutral"],
                           "female_minus_male": female_minus_male(p["male"], p["female"]),
                           "matches_behavior": None, "p_matching": None})
        else:
            record.update({"matching": [item.options[i] for i in item.matching],
                           "matches_behavior": chosen in item.matching,
                           "p_matching": float(sum(probs[i] for i in item.matching))})
        records.append(record)
    return records


def _prompt_text(model: Model, conv: Conversation) -> str | None:
    """The exact text the model saw, where the backend can say (chat templates need its tokenizer)."""
    render = getattr(model.backend, "render", None)
    if callable(render):
        return render(conv)
    return render_raw_hh(conv) if conv.format == "raw_hh" else None
