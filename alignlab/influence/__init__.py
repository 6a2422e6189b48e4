"""EK-FAC influence functions for transformer language models (Grosse et al. 2023).

From Python, one call per command of ``alignlab influence fit|query`` (every CLI flag is a field of the config)::

    from alignlab import influence
    fit_run, _ = influence.run(influence.FitConfig(train="train.jsonl"), model="embedded")
    run, summary = influence.run(influence.QueryConfig(fit=str(fit_run.path), prompt="The capital of Veloria is",
                                                       completion=" Marent."))

The building blocks, for a model and data already in memory::

    tracked = find_tracked(model, probe_ids)                      # MLP Linear/Conv1D layers, shared inputs grouped
    factors = fit_factors(model, tracked, batches, FactorConfig(), folder)
    pre = Preconditioner(factors)                                 # λ = 0.1 x mean(Λ) per layer
    queries = precondition_queries(model, pre, query_batches, rank=32)
    scores = pairwise_scores(model, tracked, train_batches, queries, per_token=True)
"""

from alignlab.influence.candidates import tfidf_candidates, union_with_masks
from alignlab.influence.config import FactorConfig, FitConfig, QueryConfig
from alignlab.influence.data import Batch, make_batches
from alignlab.influence.modules import TrackedModule, find_tracked
from alignlab.influence.pipeline import rank_queries
from alignlab.influence.runner import fit, query, run
from alignlab.influence.scores import (
    PairwiseScores,
    Preconditioner,
    pairwise_scores,
    precondition_queries,
    self_influence,
)
from alignlab.influence.store import Factors, fit_factors, load_factors

__all__ = ["Batch", "FactorConfig", "Factors", "FitConfig", "PairwiseScores", "Preconditioner", "QueryConfig",
           "TrackedModule", "find_tracked", "fit", "fit_factors", "load_factors", "make_batches", "pairwise_scores",
           "precondition_queries", "query", "rank_queries", "run", "self_influence", "tfidf_candidates",
           "union_with_masks"]
