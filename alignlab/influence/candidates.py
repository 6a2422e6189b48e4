"""TF-IDF candidate filtering (Grosse et al. 2023): score only the training sequences worth
scoring for each query, then batch queries by scoring the *union* of their candidate sets with a per-query mask.

TF-IDF is scikit-learn's ``TfidfVectorizer`` (unigrams + bigrams, sublinear tf); similarity is the cosine of the
L2-normalised vectors. Ties break by training index, so the selection is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def parse_candidates(spec: str | None) -> int | None:
    """``tfidf:N`` -> N; ``None``/``all`` -> None (score every training sequence)."""
    if spec is None or spec == "all":
        return None
    kind, _, count = spec.partition(":")
    if kind != "tfidf" or not count.isdigit() or int(count) < 1:
        raise ValueError(f"bad --candidates {spec!r}: use tfidf:N (N >= 1) or all")
    return int(count)


def tfidf_candidates(train_texts: Sequence[str], query_texts: Sequence[str], n: int) -> list[list[int]]:
    """The ``n`` training indices most TF-IDF-similar to each query (best first)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    train = vectorizer.fit_transform(train_texts)
    queries = vectorizer.transform(query_texts)
    similarity = (queries @ train.T).toarray()  # rows are L2-normalised: cosine similarity
    n = min(n, len(train_texts))
    order = np.lexsort((np.arange(len(train_texts))[None, :].repeat(len(query_texts), 0), -similarity), axis=1)
    return [row[:n].tolist() for row in order]


def union_with_masks(candidates: Sequence[Sequence[int]]) -> tuple[list[int], torch.Tensor]:
    """Sorted union of the candidate sets and a ``[Q, U]`` mask: True where the row is that query's candidate."""
    union = sorted({i for c in candidates for i in c})
    column = {row: k for k, row in enumerate(union)}
    mask = torch.zeros(len(candidates), len(union), dtype=torch.bool)
    for q, rows in enumerate(candidates):
        mask[q, [column[r] for r in rows]] = True
    return union, mask
