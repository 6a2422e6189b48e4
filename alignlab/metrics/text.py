"""BIG-bench's generative-text metrics: exact and case-insensitive string match, corpus BLEU, ROUGE, sequence
F1 and numeric match within 10% relative error.

Srivastava et al. 2022 (arXiv 2206.04615); the definitions are ``exact_str_match_fn``,
``case_insensitive_str_match_fn``, ``bleu_fn``, ``rouge_fn``, ``sequence_f1_fn`` and
``numeric_match_with_0_1_relative_error_fn`` of ``bigbench/api/task_metrics.py`` in BIG-bench 1.0.0, which call
``bleu``, ``rouge`` and ``sequence_accuracy`` of ``t5.evaluation.metrics`` (sacrebleu and rouge-score underneath).
Each response has a list of acceptable targets; a bare string counts as a one-target list, as in BIG-bench.
BLEURT (a learned metric whose checkpoint BIG-bench downloads) is not computed here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sacrebleu

ROUGE_TYPES = ("rouge1", "rouge2", "rougeLsum")


def exact_str_match(targets: Sequence[Sequence[str]], responses: Sequence[str]) -> float:
    """Fraction of responses equal to one of their targets (case and spaces count)."""
    target_lists = _targets(targets, responses)
    matches = sum(response in options for options, response in zip(target_lists, responses, strict=True))
    return matches / len(responses)


def case_insensitive_str_match(targets: Sequence[Sequence[str]], responses: Sequence[str]) -> float:
    """Fraction of responses equal to one of their targets once both are stripped and lower-cased."""
    target_lists = _targets(targets, responses)
    matches = sum(response.strip().lower() in [t.strip().lower() for t in options]
                  for options, response in zip(target_lists, responses, strict=True))
    return matches / len(responses)


def sequence_f1(targets: Sequence[Sequence[str]], responses: Sequence[str]) -> float:
    """BIG-bench's ``sequence_f1`` (0-100), despite its name a per-position tag accuracy.

    The response and the first target are split on single spaces; the response is cut to the target's length
    or padded with ``"O"`` tags; an example scores ``100 * mean(response tag == target tag)`` (t5's
    ``sequence_accuracy`` over the tag lists); the result is the mean over examples.
    """
    target_lists = _targets(targets, responses)
    scores = []
    for options, response in zip(target_lists, responses, strict=True):
        gold = options[0].split(" ")
        predicted = response.split(" ")[:len(gold)]
        predicted += ["O"] * (len(gold) - len(predicted))
        scores.append(100 * np.mean([p == t for p, t in zip(predicted, gold, strict=True)]))
    return float(np.mean(scores))


def numeric_match_with_0_1_relative_error(targets: Sequence[Sequence[str]], responses: Sequence[str],
                                          rel_error: float = 0.1) -> float:
    """Fraction of responses that parse as a number within ``rel_error`` of the (single) target's number:
    ``|response - target| / target <= rel_error``, the absolute error when the target is 0. A response or
    target that ``float()`` cannot read does not match. BIG-bench divides by the signed target, so a negative
    target matches every numeric response; kept, as BIG-bench has it."""
    target_lists = _targets(targets, responses)
    good = 0
    for i, (options, response) in enumerate(zip(target_lists, responses, strict=True)):
        if len(options) != 1:
            raise ValueError(f"example {i}: numeric match needs exactly one target, got {len(options)}")
        try:
            target, value = float(options[0]), float(response)
        except ValueError:
            continue
        good += abs(value - target) / (target if target != 0 else 1) <= rel_error
    return good / len(responses)


def bleu(targets: Sequence[Sequence[str]], responses: Sequence[str]) -> float:
    """Corpus BLEU (0-100) as BIG-bench computes it.

    References are padded to the largest target count by repeating each response's first target, then
    transposed into reference streams for ``sacrebleu.corpus_bleu`` with t5's settings: ``intl`` tokenisation,
    exponential smoothing, case-sensitive, no effective order.
    """
    target_lists = _targets(targets, responses)
    width = max(len(options) for options in target_lists)
    padded = [options + [options[0]] * (width - len(options)) for options in target_lists]
    streams = [[options[k] for options in padded] for k in range(width)]
    result = sacrebleu.corpus_bleu(
        list(responses), streams, smooth_method="exp", smooth_value=0.0, force=False, lowercase=False,
        tokenize="intl", use_effective_order=False,
    )
    return float(result.score)


def rouge(targets: Sequence[Sequence[str]], responses: Sequence[str]) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-Lsum F-measures (0-100), each with the best target per response.

    As BIG-bench: for each response and ROUGE type the target with the highest F-measure is kept (Lin 2004),
    then the kept pairs are averaged and scaled by 100. Texts go through t5's preparation (``" . "`` becomes
    ``" .\\n"``, so ROUGE-Lsum sees sentences) and rouge-score's default tokenizer, without stemming.
    BIG-bench reports the median of 1,000 unseeded bootstrap means (rouge-score's ``BootstrapAggregator``),
    a random estimate of this mean; the mean itself is returned here, so results are reproducible.
    """
    target_lists = _targets(targets, responses)
    from rouge_score import rouge_scorer  # imports nltk (~1 s): only when ROUGE is computed

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES))
    best = {rouge_type: [] for rouge_type in ROUGE_TYPES}
    for options, response in zip(target_lists, responses, strict=True):
        pair_scores = [scorer.score(target=_prepare(t), prediction=_prepare(response)) for t in options]
        for rouge_type in ROUGE_TYPES:
            best[rouge_type].append(max(scores[rouge_type].fmeasure for scores in pair_scores))
    return {rouge_type: float(np.mean(values)) * 100 for rouge_type, values in best.items()}


def _prepare(text: str) -> str:
    """t5's summary preparation: a newline after each spaced full stop, so ROUGE-Lsum splits sentences."""
    return text.replace(" . ", " .\n")


def _targets(targets: Sequence[Sequence[str]], responses: Sequence[str]) -> list[list[str]]:
    """Validated target lists (a bare string becomes a one-item list); a ValueError names the example."""
    if isinstance(responses, str):
        raise ValueError("responses must be a sequence of strings, got a single string")
    if len(targets) != len(responses):
        raise ValueError(f"targets has {len(targets)} examples but responses has {len(responses)}")
    if len(responses) == 0:
        raise ValueError("no examples: targets and responses are empty")
    lists = []
    for i, (options, response) in enumerate(zip(targets, responses, strict=True)):
        options = [options] if isinstance(options, str) else list(options)
        if not options:
            raise ValueError(f"example {i}: no targets")
        if not all(isinstance(t, str) for t in options):
            raise ValueError(f"example {i}: targets must be strings, got {options!r}")
        if not isinstance(response, str):
            raise ValueError(f"example {i}: response must be a string, got {type(response).__name__}")
        lists.append(options)
    return lists
