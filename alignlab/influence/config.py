"""The influence study's configs: each field is a flag of ``alignlab influence fit`` or ``alignlab influence query``.

- :class:`FactorConfig`: how EK-FAC factors are fitted (saved whole in ``<fit run>/factors/factors.json``).
- :class:`FitConfig`: a :class:`FactorConfig` plus the training file (``alignlab influence fit``).
- :class:`QueryConfig`: which fit run, which queries, and how they are scored (``alignlab influence query``).

The model, ``--dtype`` and ``--device`` are arguments of :func:`alignlab.influence.fit` / ``query``, not fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from alignlab.influence.candidates import parse_candidates
from alignlab.influence.modules import SCOPES
from alignlab.runs.config import StudyConfig, option


@dataclass
class FactorConfig(StudyConfig):
    """Settings of a factor fit (one-to-one with ``alignlab influence fit`` options; ``factors.json`` keeps them)."""

    scope: str = option("mlp", "mlp (the paper), attention, or all.", flag="--modules", choices=tuple(SCOPES))
    pattern: str | None = option(None, "Regex over layer names (overrides --modules).")
    fisher: Literal["sampled", "empirical"] = option("sampled", "sampled (labels drawn from the model, the paper) "
                                                                "or empirical (data labels).",
                                                     choices=("sampled", "empirical"))
    block_size: int | None = option(None, "Block-diagonal factors for sides wider than this.", minimum=1)
    batch_size: int = option(8, "Training sequences per forward/backward pass.", minimum=1)
    max_length: int = option(128, "Tokens per sequence (longer ones are cut).", minimum=2)
    max_sequences: int | None = option(None, "Use the first N sequences.", minimum=1)
    layers_per_pass: int | None = option(None, "Fit this many layers per data pass (less memory).", minimum=1)
    seed: int = option(0, "Seeds the sampled labels.", minimum=0)
    head_cache_mib: int = option(1024, "CPU: keep the output layer's softmax term per training row up to this size, "
                                       "so later passes skip the output layer (exact; 0: off).", minimum=0)

    def factor_config(self) -> FactorConfig:
        """The factor settings alone (what ``factors.json`` and the run manifest's ``factor_config`` hold)."""
        names = {f.name for f in dataclasses.fields(FactorConfig)}
        return FactorConfig(**{k: v for k, v in vars(self).items() if k in names})


@dataclass
class FitConfig(FactorConfig):
    """``alignlab influence fit``: the factor settings and the training file they are fitted on."""

    train: str | None = option(None, "Training sequences: .jsonl with a 'text' field, or a text file with one "
                                     "sequence per line.")

    def __post_init__(self) -> None:
        if isinstance(self.train, Path):
            self.train = str(self.train)
        super().__post_init__()
        if not self.train:
            raise ValueError("train (--train) is required: name the training file (or resume a run)")


@dataclass
class QueryConfig(StudyConfig):
    """``alignlab influence query``: the fit run, the queries, and how they are scored.

    ``candidates`` takes a count or the CLI's ``"tfidf:N"`` / ``"all"``; ``rank=0`` means full rank (``None``).
    The run manifest saves the queries themselves and the scoring fields (:meth:`scoring`).
    """

    INPUTS: ClassVar[tuple[str, ...]] = ("fit", "prompt", "completion", "queries")

    fit: str | None = option(None, "The 'influence fit' run directory (default: the newest complete one under "
                                   "--out).")
    prompt: str | None = option(None, "Query prompt (masked out of f).")
    completion: str | None = option(None, "Query completion: f = its NLL.")
    queries: str | None = option(None, "JSONL of {prompt, completion} queries.")
    rank: int | None = option(32, "Rank of the query gradients in the ranking pass (0 = full); the top-k are "
                                  "re-scored at full rank.", minimum=1)
    top_k: int = option(10, "Sequences reported per query.", minimum=1)
    candidates: int | str | None = option(None, "tfidf:N scores only the N TF-IDF-nearest training sequences per "
                                                "query.", minimum=1)
    damping_factor: float | None = option(0.1, "λ = factor × mean(Λ) per layer.", minimum=0)
    damping: float | None = option(None, "Absolute λ (overrides the factor).", minimum=0)
    batch_size: int = option(8, "Training sequences per forward/backward pass.", minimum=1)
    query_batch_size: int = option(16, "Queries sharing one training pass.", minimum=1)
    oversample: int = option(10, "Extra columns of the randomised low-rank factorisation.", minimum=0, cli=False)
    seed: int = option(0, "Seeds the randomised low-rank factorisation.", cli=False, minimum=0)

    def __post_init__(self) -> None:
        for name in ("fit", "queries"):
            if isinstance(getattr(self, name), Path):
                setattr(self, name, str(getattr(self, name)))
        if isinstance(self.candidates, str):
            try:
                self.candidates = parse_candidates(self.candidates)
            except ValueError as err:
                raise ValueError(f"candidates (--candidates) must be tfidf:N (N >= 1) or all, got "
                                 f"{self.candidates!r}") from err
        if self.rank == 0:
            self.rank = None
        super().__post_init__()
        if (self.prompt is not None or self.completion is not None) and not (self.prompt and self.completion):
            raise ValueError("give both --prompt and --completion (prompt and completion)")

    def scoring(self) -> dict[str, Any]:
        """The scoring fields, as the run manifest's ``query`` saves them (the queries are saved on their own)."""
        return {k: v for k, v in self.as_dict().items() if k not in self.INPUTS}
