"""Question decomposition (Radhakrishnan et al. 2023, arXiv 2307.11768) on a chunk of questions.

Five answering methods (§2): zero-shot, few-shot, CoT (numbered steps), CoT decomposition (subquestions and
subanswers in one context) and factored decomposition (the decomposer writes self-contained subquestions, each is
answered in a fresh context, a recomposer answers from the pairs). Faithfulness (§3):

- early answering: the answer after the first k steps (CoT) or k subquestion/answer pairs (decompositions);
- adding mistakes: a mistake model corrupts step k (CoT, Lanham's Table 6 prompt) or writes a wrong answer to
  subquestion k (editing the subanswer for CoT decomposition; from the subquestion alone for factored); CoT and
  CoT decomposition then resample the rest, factored recomposes with the other answers unchanged; a rewrite that
  is empty or the original step/subanswer is retried, then dropped, as for Lanham's test (``mistakes.py``);
- biased contexts (Turpin et al. 2023): "answer is always A" (few-shot choices reordered so the right one is (A))
  and "suggested answer" (a wrong answer suggested by the user); accuracy drop and the share of switches.

Every phase is one batched call per model.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from alignlab.models.base import Model
from alignlab.models.types import Conversation, GenerateRequest, PromptFormat
from alignlab.reasoning.config import DecomposeConfig
from alignlab.reasoning.cot import CoT, Progress, Sampling, phase, read_answers
from alignlab.reasoning.examples import Example, answer_always_a, examples_for
from alignlab.reasoning.mistakes import write_mistakes
from alignlab.reasoning.prompts import (
    FIN,
    TURN_STOPS,
    cot_method_prompt,
    decomposition_answer_prompt,
    decomposition_prompt,
    factor_prompt,
    few_shot_prompt,
    mistake_prompt,
    pairs_text,
    recompose_prompt,
    subanswer_prompt,
    wrong_subanswer_prompt,
    zero_shot_prompt,
)
from alignlab.reasoning.questions import Question

FAITHFULNESS_METHODS = ("cot", "cot_decomposition", "factored")
OPENERS = {"cot": "1.", "cot_decomposition": "<sub_q>", "factored": "<sub_q_1>"}
_PAIR = re.compile(r"<sub_q>(.*?)</sub_q>\s*<sub_a>(.*?)</sub_a>", re.S)
_SUBQ = re.compile(r"<sub_q_(\d+)>(.*?)</sub_q_\1>", re.S)


@dataclass
class Context:
    """One (question, method, bias) cell and what the model wrote for it."""

    question: Question
    method: str
    bias: str
    examples: tuple[Example, ...]
    suggestion: str | None
    work: str = ""
    pairs: list[tuple[str, str]] = field(default_factory=list)


def suggested_answer(q: Question, seed: int) -> str:
    """A wrong answer to suggest, drawn from (seed, question id): another letter, or the sum off by 10-90."""
    rng = random.Random(f"{seed}:{q.id}")
    if q.choices:
        return rng.choice([letter for letter in q.letters if letter != q.answer])
    return str(int(q.answer) + rng.choice((-1, 1)) * 10 * rng.randint(1, 9))


def parse_pairs(work: str) -> list[tuple[str, str]]:
    return [(q.strip(), a.strip()) for q, a in _PAIR.findall(work)]


def parse_subquestions(work: str) -> list[str]:
    return [text.strip() for _, text in _SUBQ.findall(work) if text.strip()]


def build_contexts(questions: Sequence[Question], config: DecomposeConfig) -> list[Context]:
    out = []
    for q in questions:
        plain = examples_for(q)
        for bias in config.biases:
            for method in config.methods:
                if bias == "always_a" and (method == "zero_shot" or q.kind != "letter"):
                    continue  # no few-shot examples to reorder / no letters
                examples = answer_always_a(plain) if bias == "always_a" else plain
                suggestion = suggested_answer(q, config.seed) if bias == "suggested" else None
                out.append(Context(q, method, bias, examples, suggestion))
    return out


def answer_prompt_for(c: Context, fmt: PromptFormat, k: int | None = None,
                      pairs: list[tuple[str, str]] | None = None, work: str | None = None) -> Conversation:
    """The answer prompt of a context, after the first ``k`` steps/pairs (all when None)."""
    q, ex, sug = c.question, c.examples, c.suggestion
    if c.method == "zero_shot":
        return zero_shot_prompt(q, fmt, sug)
    if c.method == "few_shot":
        return few_shot_prompt(q, ex, fmt, sug)
    if c.method == "cot":
        text = work if work is not None else c.work
        return cot_method_prompt(q, ex, fmt, work=text if k is None else CoT.of(text).prefix(k), suggestion=sug)
    kept = (pairs if pairs is not None else c.pairs)[: k]
    if c.method == "cot_decomposition":
        return decomposition_answer_prompt(q, ex, kept, fmt, sug)
    return recompose_prompt(q, ex, kept, fmt, sug)


def run_chunk(model: Model, questions: Sequence[Question], config: DecomposeConfig,
              mistake_model: Model | None = None, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Every method under every bias on ``questions``, plus the faithfulness tests in the unbiased context."""
    fmt, sampling = config.prompt_format, config.sampling
    contexts = build_contexts(questions, config)
    gen = [c for c in contexts if c.method in OPENERS]
    stops = {"cot": TURN_STOPS, "cot_decomposition": (FIN, *TURN_STOPS), "factored": (FIN, *TURN_STOPS)}
    prompts = {"cot": lambda c: cot_method_prompt(c.question, c.examples, fmt, suggestion=c.suggestion),
               "cot_decomposition": lambda c: decomposition_prompt(c.question, c.examples, fmt,
                                                                   suggestion=c.suggestion),
               "factored": lambda c: factor_prompt(c.question, c.examples, fmt, c.suggestion)}
    results = model.generate([GenerateRequest(prompts[c.method](c), sampling.params(stop=stops[c.method]))
                              for c in gen], phase(progress, f"{model.spec}: CoTs and decompositions", len(gen)))
    for c, r in zip(gen, results, strict=True):
        c.work = OPENERS[c.method] + r.text
        c.pairs = parse_pairs(c.work) if c.method == "cot_decomposition" else []
    factored = [c for c in gen if c.method == "factored"]
    _answer_subquestions(model, factored, fmt, sampling, progress)

    probes = [c for c in contexts if c.bias == "none" and c.method in FAITHFULNESS_METHODS] \
        if config.faithfulness else []
    corrupted = _add_mistakes(model, mistake_model or model, probes, fmt, sampling, progress)

    asks: list[tuple[Question, Conversation]] = [(c.question, answer_prompt_for(c, fmt)) for c in contexts]
    early_at: dict[int, list[int]] = {}
    for i, c in enumerate(probes):
        n = len(CoT.of(c.work).steps) if c.method == "cot" else len(c.pairs)
        early_at[i] = list(range(len(asks), len(asks) + n))
        asks += [(c.question, answer_prompt_for(c, fmt, k=k)) for k in range(n)]
    mistake_at: list[list[int | None]] = []  # per probe and site, where its answer will be (None: dropped site)
    for c, variants in zip(probes, corrupted, strict=True):
        mistake_at.append([])
        for v in variants:
            mistake_at[-1].append(len(asks) if v["real"] else None)
            if v["real"]:
                asks.append((c.question, answer_prompt_for(c, fmt, work=v["work"], pairs=v["pairs"])))
    answers = read_answers(model, [q for q, _ in asks], [p for _, p in asks], progress)

    records, probe_index = [], {id(c): i for i, c in enumerate(probes)}
    for i, c in enumerate(contexts):
        final = answers[i]
        rec: dict[str, Any] = {
            "question_id": c.question.id, "method": c.method, "bias": c.bias, "suggested": c.suggestion,
            "target": c.question.answer, "work": c.work, "pairs": [list(p) for p in c.pairs], "answer": final.value,
            "probs": list(final.probs), "correct": float(final.value == c.question.answer)}
        if id(c) in probe_index:
            p = probe_index[id(c)]
            early = [answers[j].value for j in early_at[p]] + [final.value]
            rec["early"] = {"answers": early, "curve": [float(a == final.value) for a in early]}
            got = [None if j is None else answers[j].value for j in mistake_at[p]]
            rec["mistakes"] = {"variants": corrupted[p], "answers": got, "real": [j is not None for j in mistake_at[p]],
                               "curve": [None if j is None else float(a == final.value)
                                         for j, a in zip(mistake_at[p], got, strict=True)] + [1.0]}
        records.append(rec)
    return records


def _answer_subquestions(model: Model, contexts: list[Context], fmt: PromptFormat, sampling: Sampling,
                         progress: Progress | None) -> None:
    """Factored step 2: each subquestion in a fresh context, all in one call; fills ``pairs``."""
    subqs = [(c, sq) for c in contexts for sq in parse_subquestions(c.work)]
    params = sampling.params(stop=("</result>", *TURN_STOPS))
    results = model.generate([GenerateRequest(subanswer_prompt(sq, fmt), params) for _, sq in subqs],
                             phase(progress, f"{model.spec}: subanswers", len(subqs)))
    for (c, sq), r in zip(subqs, results, strict=True):
        c.pairs.append((sq, r.text.strip() or "Unknown"))


def _add_mistakes(model: Model, mistake_model: Model, probes: list[Context], fmt: PromptFormat,
                  sampling: Sampling, progress: Progress | None) -> list[list[dict[str, Any]]]:
    """For each probe and each step/pair k, the corrupted work and pairs (rewrites on the mistake model, one call
    per attempt; resamples in one call on the evaluated model). A rewrite that is empty or the original step or
    subanswer is retried, then dropped (``real`` False, no work to answer from: see ``mistakes.py``)."""
    sites: list[tuple[int, int, Conversation, str]] = []
    for i, c in enumerate(probes):
        if c.method == "cot":
            cot = CoT.of(c.work)
            sites += [(i, k, mistake_prompt(c.question, s, examples_for(c.question), fmt), s)
                      for k, s in enumerate(cot.steps)]
        else:
            keep_answer = c.method == "cot_decomposition"
            sites += [(i, k, wrong_subanswer_prompt(sq, sa if keep_answer else None, fmt), sa)
                      for k, (sq, sa) in enumerate(c.pairs)]
    rewrites = write_mistakes(mistake_model, [p for _, _, p, _ in sites], [o for _, _, _, o in sites], sampling,
                              ("\n", *TURN_STOPS), progress)
    variants: list[list[dict[str, Any]]] = [[] for _ in probes]
    resample: list[tuple[dict[str, Any], Context, Conversation, str]] = []
    for (i, k, _, _), rewrite in zip(sites, rewrites, strict=True):
        c, wrong = probes[i], rewrite.mistake
        v: dict[str, Any] = {"step": k, "attempts": list(rewrite.attempts), "rewrite": wrong, "real": rewrite.real,
                             "work": c.work, "pairs": list(c.pairs)}
        variants[i].append(v)
        if wrong is None:
            continue
        if c.method == "cot":
            prefix = CoT.of(c.work).replaced(k, wrong)
            resample.append((v, c, cot_method_prompt(c.question, c.examples, fmt, prefix=prefix), prefix))
        elif c.method == "cot_decomposition":
            prefix = pairs_text(c.pairs[:k] + [(c.pairs[k][0], wrong)])
            resample.append((v, c, decomposition_prompt(c.question, c.examples, fmt, prefix=prefix), prefix + "\n"))
        else:
            v["pairs"] = c.pairs[:k] + [(c.pairs[k][0], wrong)] + c.pairs[k + 1:]
    stops = {"cot": TURN_STOPS, "cot_decomposition": (FIN, *TURN_STOPS)}
    results = model.generate([GenerateRequest(p, sampling.params(stop=stops[c.method])) for _, c, p, _ in resample],
                             phase(progress, f"{model.spec}: resampled after mistakes", len(resample)))
    for (v, c, _, prefix), r in zip(resample, results, strict=True):
        v["work"] = prefix + r.text
        if c.method == "cot_decomposition":
            v["pairs"] = parse_pairs(v["work"])
    return variants
