"""The generation pipeline (Perez et al. 2022 §3.1 persona, §5 advanced-AI-risk A/B): sample with the
generator, filter, label with the discriminator, keep the most confident and balance the labels. Every model
call goes through ``Model`` and its request cache, in chunks. The prompts and parsers are
:mod:`alignlab.behaviors.generation_prompts`; the entry point and output files are
:mod:`alignlab.behaviors.generation`."""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from alignlab.behaviors.config import GenerateConfig
from alignlab.behaviors.generation_prompts import (
    AB_OPTIONS,
    CONTENT_FREE,
    LABELS,
    MIN_WORDS,
    PERSONA_ANSWERS,
    PERSONA_OPTIONS,
    PERSONA_QUESTION,
    PERSONA_STOPS,
    RELEVANCE_OPTIONS,
    ai_risk_filter_prompt,
    ai_risk_generation_prompt,
    ai_risk_relevance_prompt,
    clean_statement,
    dedup_key,
    draw_few_shot,
    extract_question,
    load_seed_questions,
    persona_filter_prompt,
    persona_generation_prompt,
    swap_options,
)
from alignlab.models.base import Model
from alignlab.models.types import (
    Conversation,
    GenerateParams,
    GenerateRequest,
    GenerateResult,
    ModelError,
    NextTokenRequest,
    ScoreRequest,
)

SAMPLES_PER_REQUEST = 16  # persona samples per generate request (one cache entry each)

Progress = Callable[[str, int, int], None]  # (stage label, done, total), as cli_common.progress_bars yields
Checkpoint = Callable[[list["Candidate"]], None]
T = TypeVar("T")


@dataclass
class Candidate:
    """One generated sample as it moves through the pipeline; ``status`` names where it stopped."""

    id: int
    request: int
    raw: str
    text: str = ""
    label: str = ""  # persona: the intended label (agree/disagree); ai_risk: the matching answer, (A) or (B)
    status: str = "pending"
    confidence: float | None = None  # p_d(label), normalised over the two options (label correctness)
    seeds: list[int] = field(default_factory=list)  # ai_risk: the few-shot seed indices of its prompt
    flipped: bool = False  # ai_risk: options swapped for balance (``label`` is then the post-swap answer)
    relevance: float | None = None  # ai_risk: p_d(the question tests the behaviour)
    score: float | None = None  # ai_risk: the rank key, mean of label correctness and relevance (paper §5)


@dataclass
class GenerationResult:
    rows: list[dict[str, Any]]
    candidates: list[Candidate]
    stats: dict[str, Any]

# -- model calls ---------------------------------------------------------------------------------------
def request_seed(seed: int, *parts: object) -> int:
    blob = ":".join(str(p) for p in (seed, *parts)).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little") & 0x7FFF_FFFF


def run_chunks(call: Callable[[list[Any]], list[T]], requests: list[Any], chunk: int, label: str,
               progress: Progress | None) -> list[T]:
    out: list[T] = []
    if progress:
        progress(label, 0, len(requests))
    for start in range(0, len(requests), chunk):
        out.extend(call(requests[start:start + chunk]))
        if progress:
            progress(label, len(out), len(requests))
    return out


def two_way_probs(model: Model, prompts: list[Conversation], options: tuple[str, str], chunk: int,
                  label: str, progress: Progress | None) -> tuple[list[float], dict[str, Any]]:
    """p(first option) normalised over both: ``next_token``, or ``score`` when an option is several tokens."""
    if not prompts:
        return [], {"method": "none", "approximate": False}
    requests = [NextTokenRequest(p, options) for p in prompts]
    try:
        model.next_token(requests[:1])
    except ModelError as err:
        scores = run_chunks(model.score, [ScoreRequest(p, options) for p in prompts], chunk, label, progress)
        probs = []
        for s in scores:
            a, b = s.logprobs
            probs.append(1.0 / (1.0 + math.exp(b - a)))
        return probs, {"method": "score", "approximate": False, "why": str(err)}
    results = run_chunks(model.next_token, requests, chunk, label, progress)
    return [r.probs[0] for r in results], {"method": "next_token",
                                           "approximate": any(r.approximate for r in results)}


def sample_all(model: Model, requests: list[GenerateRequest], config: GenerateConfig, label: str,
               progress: Progress | None) -> list[GenerateResult]:
    return run_chunks(model.generate, requests, config.chunk_size, label, progress)


# -- persona -------------------------------------------------------------------------------------------
def persona_filter(text: str, raw: str, finish_reason: str, seen: set[str]) -> str:
    """``"pending"`` for a statement that passes, else the filter that dropped it; records passing keys."""
    if not text:
        return "empty"
    if finish_reason == "length" and not any(s in raw for s in PERSONA_STOPS):
        return "truncated"  # no stop within max_new_tokens: an unfinished list item
    if len(text.split()) < MIN_WORDS:
        return "too_short"
    key = dedup_key(text)
    if key in seen:
        return "duplicate"
    seen.add(key)
    return "pending"


def generate_persona(config: GenerateConfig, generator: Model, discriminator: Model,
                     progress: Progress | None = None, checkpoint: Checkpoint | None = None
                     ) -> GenerationResult:
    total = int(config.samples_per_label)  # type: ignore[arg-type]
    requests, owners = [], []
    for label in LABELS:
        prompt = persona_generation_prompt(config.description, label, config.prompt_format)
        for i, start in enumerate(range(0, total, SAMPLES_PER_REQUEST)):
            params = GenerateParams(max_new_tokens=int(config.max_new_tokens),  # type: ignore[arg-type]
                                    temperature=config.temperature, top_p=config.top_p, stop=PERSONA_STOPS,
                                    n=min(SAMPLES_PER_REQUEST, total - start),
                                    seed=request_seed(config.seed, label, i))
            requests.append(GenerateRequest(prompt, params))
            owners.append(label)
    results = sample_all(generator, requests, config, "generate statements", progress)

    candidates: list[Candidate] = []
    seen: set[str] = set()
    for r, (result, label) in enumerate(zip(results, owners, strict=True)):
        for sample in result.samples:
            cand = Candidate(len(candidates), r, sample.text, clean_statement(sample.text), label)
            cand.status = persona_filter(cand.text, sample.text, sample.finish_reason, seen)
            candidates.append(cand)
    if checkpoint:
        checkpoint(candidates)

    pending = [c for c in candidates if c.status == "pending"]
    prompts = [persona_filter_prompt(config.description, c.text, config.prompt_format) for c in pending]
    p_agree, method = two_way_probs(discriminator, prompts, PERSONA_OPTIONS, config.chunk_size * 8,
                                    "discriminate", progress)
    if config.calibrate != "none" and p_agree:
        p_agree, method["calibration"] = calibrate(config, discriminator, p_agree)
    for cand, p in zip(pending, p_agree, strict=True):
        cand.confidence = p if cand.label == "agree" else 1.0 - p
        cand.status = "passed" if cand.confidence > 0.5 else "wrong_label"

    k = config.n // 2
    ranked = {label: sorted((c for c in candidates if c.label == label and c.status == "passed"),
                            key=lambda c: -float(c.confidence)) for label in LABELS}  # type: ignore[arg-type]
    keep = min(k, *(len(v) for v in ranked.values()))
    for items in ranked.values():
        for i, cand in enumerate(items):
            cand.status = "selected" if i < keep else ("dropped_for_balance" if i < k else "beyond_top_k")
    selected = [c for c in candidates if c.status == "selected"]
    random.Random(f"order:{config.seed}").shuffle(selected)
    rows = [{"question": PERSONA_QUESTION.format(c.text), "statement": c.text,
             "label_confidence": c.confidence, "answer_matching_behavior": PERSONA_ANSWERS[c.label][0],
             "answer_not_matching_behavior": PERSONA_ANSWERS[c.label][1]} for c in selected]
    stats = stage_stats(config, candidates, LABELS, method)
    stats["per_label_target"] = k
    if rows:
        stats["ceiling"] = sum(r["label_confidence"] for r in rows) / len(rows)
    return GenerationResult(rows, candidates, stats)


def logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def calibrate(config: GenerateConfig, discriminator: Model, p_agree: list[float]
              ) -> tuple[list[float], dict[str, Any]]:
    """Shift p_d's log-odds of agree by a prior before the argmax rule; returns new p(agree), prior info.

    A small discriminator can prefer `` agree`` whatever the statement (SmolLM2-135M gives ``"N/A"``
    p(agree) ~ 0.8), so the paper's rule would drop nearly every disagree item. ``content_free``: the prior is
    the mean log-odds of content-free statements (contextual calibration, Zhao et al. 2021). ``balanced``: the
    median log-odds over all candidates, so half of them are called agree, as half were generated for it.
    """
    info: dict[str, Any] = {"method": config.calibrate}
    if config.calibrate == "content_free":
        prompts = [persona_filter_prompt(config.description, s, config.prompt_format) for s in CONTENT_FREE]
        p_free, _ = two_way_probs(discriminator, prompts, PERSONA_OPTIONS, len(prompts), "calibrate", None)
        prior = sum(logit(p) for p in p_free) / len(p_free)
        info["content_free"] = dict(zip(CONTENT_FREE, p_free, strict=True))
    else:
        ordered = sorted(logit(p) for p in p_agree)
        mid = len(ordered) // 2
        prior = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    info["prior_log_odds"] = prior
    return [1.0 / (1.0 + math.exp(prior - logit(p))) for p in p_agree], info


# -- advanced-AI-risk A/B ------------------------------------------------------------------------------
def generate_ai_risk(config: GenerateConfig, generator: Model, discriminator: Model,
                     progress: Progress | None = None, checkpoint: Checkpoint | None = None
                     ) -> GenerationResult:
    seeds = load_seed_questions(str(config.seed_questions))
    count = 2 * int(config.samples_per_label)  # type: ignore[arg-type]
    draws = draw_few_shot(len(seeds), config.few_shot, count, config.seed)
    stop = ("\n\n",) if config.require_block_quote else ("\n\n\n", "\nHuman:", "\nUser:")
    requests = [GenerateRequest(
        ai_risk_generation_prompt(config.description, [seeds[j] for j in draw], config.prompt_format),
        GenerateParams(max_new_tokens=int(config.max_new_tokens), temperature=config.temperature,  # type: ignore[arg-type]
                       top_p=config.top_p, stop=stop, n=1, seed=request_seed(config.seed, "ai_risk", i)))
        for i, draw in enumerate(draws)]
    results = sample_all(generator, requests, config, "generate questions", progress)

    candidates: list[Candidate] = []
    seed_keys = {dedup_key(q) for q in seeds}
    seen: set[str] = set()
    for r, result in enumerate(results):
        sample = result.samples[0]
        question, reason = extract_question(sample.text, sample.finish_reason, config.require_block_quote)
        cand = Candidate(r, r, sample.text, question, status=reason or "pending", seeds=list(draws[r]))
        if not reason:
            key = dedup_key(question)
            cand.status = "copies_seed" if key in seed_keys else "duplicate" if key in seen else "pending"
            seen.add(key)
        candidates.append(cand)
    if checkpoint:
        checkpoint(candidates)

    # Paper §5: every question was generated with the behaviour at (A) and keeps that label; the discriminator
    # scores how likely (A) is the matching answer (label correctness) and how relevant the question is, and
    # questions are ranked by the mean of the two.
    pending = [c for c in candidates if c.status == "pending"]
    prompts = [ai_risk_filter_prompt(config.description, c.text, config.prompt_format) for c in pending]
    if config.debias_order:
        prompts += [ai_risk_filter_prompt(config.description, swap_options(c.text), config.prompt_format)
                    for c in pending]
    p_first, method = two_way_probs(discriminator, prompts, AB_OPTIONS, config.chunk_size * 8, "discriminate",
                                    progress)
    relevance, method["relevance"] = two_way_probs(
        discriminator, [ai_risk_relevance_prompt(config.description, c.text, config.prompt_format) for c in pending],
        RELEVANCE_OPTIONS, config.chunk_size * 8, "relevance", progress)
    for i, cand in enumerate(pending):
        p_a = (p_first[i] + 1.0 - p_first[i + len(pending)]) / 2 if config.debias_order else p_first[i]
        cand.label, cand.confidence, cand.relevance = "(A)", p_a, relevance[i]
        cand.score = (p_a + relevance[i]) / 2
        cand.status = "passed"

    ranked = sorted((c for c in candidates if c.status == "passed"),
                    key=lambda c: -float(c.score))  # type: ignore[arg-type]
    keep = min(config.n, len(ranked)) // 2 * 2
    for i, cand in enumerate(ranked):
        cand.status = "selected" if i < keep else ("dropped_odd" if i < min(config.n, len(ranked)) else
                                                   "beyond_top_n")
    selected = ranked[:keep]
    flipped = balance_by_flipping(selected, random.Random(f"flip:{config.seed}"))
    random.Random(f"order:{config.seed}").shuffle(selected)
    rows = [{"question": c.text, "label_confidence": c.confidence, "answer_matching_behavior": f" {c.label}",
             "answer_not_matching_behavior": " (B)" if c.label == "(A)" else " (A)"} for c in selected]
    stats = stage_stats(config, candidates, None, method)
    stats["ranking"] = "mean of label correctness and relevance (paper §5)"
    stats["flipped_to_balance"] = flipped
    stats["output_labels"] = dict(Counter(c.label for c in selected))
    stats["selected_label_confidence_below_half"] = sum(float(c.confidence) < 0.5 for c in selected)  # type: ignore[arg-type]
    stats["seed_questions"] = {"path": str(config.seed_questions), "count": len(seeds)}
    return GenerationResult(rows, candidates, stats)


def balance_by_flipping(selected: list[Candidate], rng: random.Random) -> int:
    """Swap the options of random majority-label items until (A) and (B) are equally often matching: the
    question and its matching answer stay what was generated; only the answer's position moves (paper §5 repeats
    the procedure with the label at (B))."""
    by_label = {lab: [c for c in selected if c.label == lab] for lab in ("(A)", "(B)")}
    major, minor = sorted(by_label, key=lambda lab: -len(by_label[lab]))
    flips = (len(by_label[major]) - len(by_label[minor])) // 2
    for cand in rng.sample(by_label[major], flips):
        cand.text, cand.label, cand.flipped = swap_options(cand.text), minor, True
    return flips


# -- stats ---------------------------------------------------------------------------------------------
STAGE_ORDER = ("empty", "no_block_quote", "missing_a_or_b", "fewer_than_3_lines", "options_unparsed",
               "more_than_two_options", "identical_options", "truncated", "too_short", "copies_seed",
               "duplicate", "wrong_label", "beyond_top_k", "beyond_top_n", "dropped_for_balance",
               "dropped_odd")


def stage_stats(config: GenerateConfig, candidates: list[Candidate], labels: Sequence[str] | None,
                method: dict[str, Any]) -> dict[str, Any]:
    """Counts (per intended label for persona) of samples, of each reason for a drop, and of output items."""
    groups = {label: [c for c in candidates if c.label == label] for label in labels} if labels else {
        "all": candidates}
    per: dict[str, dict[str, int]] = {}
    for name, mine in groups.items():
        counts = Counter(c.status for c in mine)
        per[name] = {"samples": len(mine), **{s: counts[s] for s in STAGE_ORDER if counts[s]},
                     "output": counts["selected"]}
    out: dict[str, Any] = {"kind": config.kind, "requested_items": config.n, "discriminator": method,
                           "stages": per, "output_items": sum(r["output"] for r in per.values())}
    if out["output_items"] < config.n:
        out["shortfall"] = shortfall_note(config, per)
    return out


def shortfall_note(config: GenerateConfig, per: dict[str, dict[str, int]]) -> str:
    parts = [f"{label}: " + ", ".join(f"{k} {v}" for k, v in row.items()) for label, row in per.items()]
    got = sum(r["output"] for r in per.values())
    why = ("labels are cut to the same count" if config.kind == "persona"
           else "the output keeps an even count so (A) and (B) balance")
    return f"asked for {config.n} items, produced {got} ({why}); " + "; ".join(parts)
