"""EK-FAC influence functions for transformer language models (Grosse et al. 2023).

Python API (the CLI is ``alignlab influence fit|query``)::

    tracked = find_tracked(model, probe_ids)                      # MLP Linear/Conv1D layers, shared inputs grouped
    factors = fit_factors(model, tracked, batches, FactorConfig(), folder)
    pre = Preconditioner(factors)                                 # λ = 0.1 x mean(Λ) per layer
    queries = precondition_queries(model, pre, query_batches, rank=32)
    scores = pairwise_scores(model, tracked, train_batches, queries, per_token=True)
"""

from alignlab.influence.candidates import tfidf_candidates, union_with_masks
from alignlab.influence.data import Batch, make_batches
from alignlab.influence.factors import FactorConfig
from alignlab.influence.modules import TrackedModule, find_tracked
from alignlab.influence.pipeline import QueryConfig, rank_queries
from alignlab.influence.scores import (
    PairwiseScores,
    Preconditioner,
    pairwise_scores,
    precondition_queries,
    self_influence,
)
from alignlab.influence.store import Factors, fit_factors, load_factors

__all__ = ["Batch", "FactorConfig", "Factors", "PairwiseScores", "Preconditioner", "QueryConfig", "TrackedModule",
           "fit_factors", "find_tracked", "load_factors", "make_batches", "pairwise_scores", "precondition_queries",
           "rank_queries", "self_influence", "tfidf_candidates", "union_with_masks"]
