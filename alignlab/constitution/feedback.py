"""AI feedback (Bai et al. 2022 §4.1; Kundu et al. 2023 §2.2): soft preference labels for pairs of responses.

For each pair, ``ensemble`` principles are drawn (one per comparison in the paper; more gives an ensemble whose
labels are averaged). Each principle gives the multiple-choice prompt ending ``"The answer is: ("``; ``next_token``
reads the log-probabilities of ``A`` and ``B`` and the soft label is P(A) = e^lA / (e^lA + e^lB). Options:

- ``swap``: also score the order (B, A) and use p = ½(p_AB + 1 − p_BA) (not in the paper; later RLAIF work);
- ``cot``: sample ``cot_samples`` chains of thought (``"Let's think step-by-step:"``), read P(A) after each, average,
  and clamp to [0.4, 0.6] as §4.1 prescribes (CoT probabilities are near 0 or 1).

Each few-shot example in a feedback prompt carries its own principle, a seeded draw from the constitution made
independently of the pair's principle and of the other examples (as in the paper). Prompts are in the run's format
(``--format``). Records keep every intermediate (principle, the examples' principles, raw and swapped P(A),
reasoning, clamped label); ``labels.jsonl`` holds hh-rlhf-format comparisons (``chosen`` = response A,
``rejected`` = response B, ``pref`` = P(A is better)). The summary reports position bias and label spread
(:func:`alignlab.constitution.measures.label_bias`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alignlab.constitution import prompts as P
from alignlab.constitution.config import LabelConfig
from alignlab.constitution.constitutions import load_constitution, require
from alignlab.constitution.data import load_prompts, read_jsonl, write_jsonl
from alignlab.constitution.formats import Format, resume_format, stops
from alignlab.constitution.measures import label_bias
from alignlab.data.errors import DataError
from alignlab.models.base import Model
from alignlab.models.types import GenerateParams, GenerateRequest, NextTokenRequest
from alignlab.runs.results import result
from alignlab.runs.run import Run

SECTION = "label"
COT_CLAMP = (0.4, 0.6)


def soft_label(logprob_a: float, logprob_b: float) -> float:
    """P(A) normalised over the two options: e^lA / (e^lA + e^lB), computed stably."""
    top = max(logprob_a, logprob_b)
    ea, eb = math.exp(logprob_a - top), math.exp(logprob_b - top)
    return ea / (ea + eb)


def swap_average(p_ab: float, p_ba: float) -> float:
    """P(A) from both orders: p_BA is P(first option) when B is shown first, so 1 − p_BA is P(A) there."""
    return 0.5 * (p_ab + 1.0 - p_ba)


def clamp(p: float, bounds: tuple[float, float] = COT_CLAMP) -> float:
    return min(max(p, bounds[0]), bounds[1])


def ensemble(labels: Sequence[float]) -> float:
    """Mean over principles (and CoT samples)."""
    if not labels:
        raise ValueError("ensemble of no labels")
    return float(np.mean(labels))


def load_pairs(path: str | Path, limit: int | None, seed: int) -> list[dict[str, str]]:
    """Pairs to label: ``question``, ``response_a``, ``response_b`` (``id`` optional)."""
    out = []
    for number, row in read_jsonl(path):
        for name in ("question", "response_a", "response_b"):
            if not isinstance(row.get(name), str) or not row[name].strip():
                raise DataError("must be a non-empty string", path=path, line=number, field=name)
        out.append({"id": str(row.get("id", f"{Path(path).stem}:{number}")), "question": row["question"],
                    "response_a": row["response_a"], "response_b": row["response_b"]})
    if limit is not None and len(out) > limit:
        rng = np.random.default_rng([seed, zlib.crc32(str(path).encode())])
        out = [out[i] for i in np.sort(rng.choice(len(out), limit, replace=False))]
    return out


def sample_pairs(model: Model, items: list[tuple[str, str]], config: LabelConfig,
                 fmt: Format = "raw_hh") -> list[dict[str, str]]:
    """Two responses per prompt at T = 1 (§4.1: the SL-CAI model samples the pairs)."""
    def params(salt: str) -> GenerateParams:
        return GenerateParams(max_new_tokens=config.max_new_tokens, temperature=1.0, stop=stops(fmt),
                              seed=config.seed + zlib.crc32(salt.encode()) % 100_000)

    requests = [GenerateRequest(P.response_prompt(q, fmt), params(f"{pid}|{side}"))
                for pid, q in items for side in "ab"]
    texts = [r.text.strip() for r in model.generate(requests)]
    return [{"id": pid, "question": q, "response_a": texts[2 * i], "response_b": texts[2 * i + 1]}
            for i, (pid, q) in enumerate(items)]


def _principles(feedback: tuple[str, ...], seed: int, pair_id: str, k: int) -> list[str]:
    rng = np.random.default_rng([seed, zlib.crc32(pair_id.encode())])
    return [feedback[int(i)] for i in rng.integers(len(feedback), size=k)]


def example_principles(feedback: tuple[str, ...], seed: int, pair_id: str, member: int) -> list[str]:
    """One principle per few-shot example of ensemble member ``member``: each its own seeded draw, independent of
    the pair's principle (:func:`_principles` uses another stream) and of the other examples."""
    return [feedback[int(np.random.default_rng([seed, zlib.crc32(pair_id.encode()), member, k, 1]).integers(
        len(feedback)))] for k in range(len(P.FEEDBACK_EXAMPLES))]


Job = tuple[str, str, str, str, list[str]]  # question, principle, first option, second option, examples' principles


def _direct(model: Model, jobs: list[Job], few_shot: bool, fmt: Format) -> list[float]:
    """P(first option) for each job."""
    results = model.next_token([NextTokenRequest(P.feedback_prompt(q, pr, a, b, few_shot, shots, fmt), P.OPTIONS)
                                for q, pr, a, b, shots in jobs])
    return [soft_label(*r.logprobs) for r in results]


def _cot(model: Model, jobs: list[Job], config: LabelConfig, fmt: Format) -> tuple[list[float], list[list[str]]]:
    """Mean over CoT samples of P(first option) after the reasoning, and the reasoning texts."""
    contexts = [P.cot_prompt(q, pr, a, b, config.few_shot, fmt) for q, pr, a, b, _ in jobs]
    requests = [GenerateRequest(c, GenerateParams(max_new_tokens=config.max_new_tokens, temperature=1.0,
                                                  stop=P.cot_stop(fmt), seed=config.seed + s))
                for c in contexts for s in range(config.cot_samples)]
    reasons = [g.text for g in model.generate(requests)]
    n = config.cot_samples
    answers = model.next_token([NextTokenRequest(P.cot_answer_prompt(contexts[i // n], reasons[i]), P.OPTIONS)
                                for i in range(len(reasons))])
    probs = [soft_label(*r.logprobs) for r in answers]
    return ([ensemble(probs[i * n:(i + 1) * n]) for i in range(len(jobs))],
            [reasons[i * n:(i + 1) * n] for i in range(len(jobs))])


def label_chunk(model: Model, pairs: list[dict[str, str]], feedback: tuple[str, ...],
                config: LabelConfig, fmt: Format = "raw_hh") -> list[dict[str, Any]]:
    """Soft labels for a chunk of pairs: all principles, both orders and CoT samples in a few batched calls."""
    members = [(pair, pr, example_principles(feedback, config.seed, pair["id"], j)) for pair in pairs
               for j, pr in enumerate(_principles(feedback, config.seed, pair["id"], config.ensemble))]
    jobs: list[Job] = [(p["question"], pr, p["response_a"], p["response_b"], shots) for p, pr, shots in members]
    if config.swap:
        jobs += [(p["question"], pr, p["response_b"], p["response_a"], shots) for p, pr, shots in members]
    probs, reasons = (_cot(model, jobs, config, fmt) if config.cot
                      else (_direct(model, jobs, config.few_shot, fmt), None))
    m = len(members)
    records = []
    for i, pair in enumerate(pairs):
        detail = []
        for j in range(i * config.ensemble, (i + 1) * config.ensemble):
            p_ab = probs[j]
            p_ba = probs[m + j] if config.swap else None
            p = swap_average(p_ab, p_ba) if p_ba is not None else p_ab
            entry = {"principle": members[j][1], "p_ab": p_ab, "p_ba": p_ba, "p_a": p}
            if config.few_shot and not config.cot:
                entry["example_principles"] = members[j][2]
            if config.cot:
                entry["p_a_unclamped"], entry["p_a"] = p, clamp(p)
                entry["reasoning"] = reasons[j] + (reasons[m + j] if config.swap else [])  # type: ignore[index]
            detail.append(entry)
        records.append({"section": SECTION, "model": model.spec, "key": f"{pair['id']}|label", **pair,
                        "members": detail, "p_a": ensemble([d["p_a"] for d in detail]), "format": fmt})
    return records


def run_labels(run: Run, model: Model, config: LabelConfig,
               progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Label every pair not yet in ``run``; writes pairs.jsonl and labels.jsonl and returns the summary."""
    const = load_constitution(config.constitution)
    require(const, "feedback")
    run.record_model(model)
    samples = run.samples()
    fmt = resume_format(samples, SECTION, config.prompt_format, model)
    pairs_path = run.path / "pairs.jsonl"
    if not any(s.get("section") == SECTION for s in samples) and pairs_path.exists() and not config.pairs:
        fmt = next((row.get("format", "raw_hh") for _, row in read_jsonl(pairs_path)), fmt)  # the sampled pairs'

    if config.pairs:
        pairs = load_pairs(config.pairs, config.limit, config.seed)
    elif pairs_path.exists():  # a resumed run labels the pairs it sampled before
        pairs = load_pairs(pairs_path, None, config.seed)
    else:
        items = load_prompts(config.prompts, data=config.data, limit=config.limit, seed=config.seed)
        pairs = []
        for start in range(0, len(items), config.chunk_size):
            pairs += sample_pairs(model, items[start:start + config.chunk_size], config, fmt)
            if progress:
                progress("sample pairs", len(pairs), len(items))
        pairs = [p for p in pairs if p["response_a"] and p["response_b"]]
        write_jsonl(pairs_path, [{**p, "format": fmt} for p in pairs])
    done = run.done_keys()
    todo = [p for p in pairs if f"{p['id']}|label" not in done]
    for start in range(0, len(todo), config.chunk_size):
        run.append(label_chunk(model, todo[start:start + config.chunk_size], const.feedback, config, fmt))
        if progress:
            progress("label", len(pairs) - len(todo) + min(start + config.chunk_size, len(todo)), len(pairs))
    records = [s for s in run.samples() if s.get("section") == SECTION]
    write_jsonl(run.path / "labels.jsonl", [to_comparison(r) for r in records])
    return summarize(records, config, const.name, model=model.spec, fmt=fmt)


def to_comparison(record: dict[str, Any]) -> dict[str, Any]:
    """A labelled pair in hh-rlhf comparison format with the soft label as ``pref``."""
    return {"chosen": P.conversation_text(record["question"], record["response_a"]),
            "rejected": P.conversation_text(record["question"], record["response_b"]),
            "pref": record["p_a"], "id": record["id"]}


BIAS_ROWS = (("mean_p_a", "mean P(A) (the labels)"), ("std_p_a", "std of P(A)"),
             ("share_near_half", "share with |P(A) - 0.5| <= 0.05"), ("mean_p_a_first", "mean P(A), A shown first"),
             ("mean_p_a_second", "mean P(A), A shown second (1 - p_BA)"),
             ("order_gap", "order gap: first - second (0 = no position bias)"),
             ("mean_p_first", "mean P(first option), both orders (0.5 = no position bias)"))


def summarize(records: list[dict[str, Any]], config: LabelConfig, name: str, *, model: str = "",
              fmt: str = "raw_hh") -> dict[str, Any]:
    p = np.array([r["p_a"] for r in records], dtype=float)
    consistency = [abs(d["p_ab"] - (1 - d["p_ba"])) for r in records for d in r["members"] if d["p_ba"] is not None]
    task = f"{SECTION}/{name}"
    results = [result(task, "pairs_labelled", len(records), model=model, n=len(records))]
    if len(p):
        results += [result(task, "mean_p_a", float(np.mean(p)), model=model, n=len(p)),
                    result(task, "decisiveness", float(np.mean(np.abs(p - 0.5))), model=model, n=len(p))]
    if consistency:
        results.append(result(task, "position_inconsistency", float(np.mean(consistency)), model=model,
                              n=len(consistency)))
    bias = label_bias(records) if records else {}
    results += [result(task, key, bias[key], model=model, n=len(records)) for key, _ in BIAS_ROWS
                if key in bias and key != "mean_p_a"]
    rows = [[r["question"][:120], r["response_a"][:120], r["response_b"][:120], round(r["p_a"], 3)]
            for r in records[:8]]
    headline = [{"label": "pairs labelled", "value": len(records)},
                {"label": "mean |P(A) - 0.5|", "value": round(float(np.mean(np.abs(p - 0.5))), 4) if len(p) else None,
                 "note": "how decisive the feedback model is"}]
    if consistency:
        headline.append({"label": "position inconsistency |p_AB - (1 - p_BA)|",
                         "value": round(float(np.mean(consistency)), 4)})
    if "order_gap" in bias:
        headline.append({"label": "position bias: P(A) first - P(A) second", "value": round(bias["order_gap"], 4)})
    if bias:
        headline += [{"label": "label spread: std of P(A)", "value": round(bias["std_p_a"], 4)},
                     {"label": "share of labels within 0.05 of 0.5", "value": round(bias["share_near_half"], 4)}]
    headline.append({"label": "format", "value": fmt})
    return {"title": f"Constitutional AI: AI feedback labels ({name})", "headline": headline,
            "sections": [{"id": SECTION, "title": "AI feedback (Bai et al. 2022 §4.1)",
                          "description": "Soft labels P(A better) from normalised next-token probabilities"
                                         + (", CoT clamped to [0.4, 0.6]" if config.cot else "") + ".",
                          "tables": [{"title": "Position bias and label spread", "columns": ["measure", "value"],
                                      "rows": [[label, round(bias[key], 4)] for key, label in BIAS_ROWS
                                               if key in bias]},
                                     {"title": "Labelled pairs", "columns": ["prompt", "A", "B", "P(A)"],
                                      "rows": rows}],
                          "figures": [{"kind": "bar", "title": "Distribution of P(A)", "ylabel": "pairs",
                                       "labels": [f"{b:.1f}" for b in np.arange(0, 1, 0.1)],
                                       "series": [{"label": "pairs", "values": np.histogram(
                                           p, bins=10, range=(0, 1))[0].astype(float).tolist()}]}]
                          if len(p) else [],
                          "sample_columns": ["question", "response_a", "response_b", "p_a"]}],
            "notes": ["A 135M feedback model gives near-chance labels; the paper's effects appear at 52B+."],
            "format": fmt, "config": config.as_dict(), "results": results}
