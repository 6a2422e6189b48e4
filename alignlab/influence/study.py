"""The work of the influence study's two run types: ``fit`` (factors into ``<run>/factors``) and ``query`` (top-k
per query); ``runner.py`` opens, resumes and finishes their run directories.

Both load the model through the model layer (``load_model``) and take its torch module, tokenizer and BOS
policy; gradients are computed here, outside the request types (DESIGN.md: the one exception). Under
``torchrun`` every process runs these functions; rank 0 alone writes the run directory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from alignlab.influence import distributed as dist
from alignlab.influence.candidates import tfidf_candidates
from alignlab.influence.config import FactorConfig, QueryConfig
from alignlab.influence.data import encode_queries, encode_texts, make_batches, read_texts
from alignlab.influence.modules import find_tracked
from alignlab.influence.pipeline import rank_queries
from alignlab.influence.report import fit_summary, query_summary
from alignlab.influence.scores import Preconditioner
from alignlab.influence.store import Factors, fit_factors, load_factors

Progress = Callable[[str, int, int], None]


def load_backend(spec: Any, dtype: str, device: str) -> Any:
    """The hf backend of a spec (torch module + tokenizer), or a model already loaded; other backends cannot give
    gradients."""
    from alignlab.models.hf import HFBackend
    from alignlab.models.spec import load_model

    model = load_model(spec, dtype=dtype, device=dist.device_for_rank(device), cache=False) \
        if isinstance(spec, str) else spec
    if not isinstance(model.backend, HFBackend):
        name = spec if isinstance(spec, str) else model.spec
        raise ValueError(f"influence needs gradients: {name!r} is not a local transformers model (embedded or hf:)")
    return model


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pad_id(tokenizer: Any) -> int:
    return int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id or 0)


def training_sequences(backend: Any, train: Path, max_length: int, max_sequences: int | None
                       ) -> tuple[list[str], list[list[int]]]:
    texts = read_texts(train)[:max_sequences]
    seqs = encode_texts(backend.encode, texts, max_length)
    short = [i for i, s in enumerate(seqs) if len(s) < 2]
    if short:
        raise ValueError(f"{train}: sequence {short[0] + 1} has fewer than 2 tokens (nothing to predict)")
    return texts, seqs


def run_fit(run_path: Path | None, model: Any, train: Path, config: FactorConfig,
            progress: Progress | None = None) -> tuple[Factors, dict[str, Any]]:
    """Fit (or resume) factors into ``<run>/factors``; returns them and the fit summary (rank 0)."""
    backend = model.backend
    texts, seqs = training_sequences(backend, train, config.max_length, config.max_sequences)
    tracked = find_tracked(backend.model, torch.tensor([seqs[0]]), config.scope, config.pattern)
    rows = dist.shard(list(range(len(seqs))), config.batch_size)
    batches = make_batches(seqs, rows, config.batch_size, pad_id(backend.tokenizer))
    identity = {"model": model.fingerprint_id, "train_sha256": file_sha256(train), "n_train": len(seqs)}
    folder = dist.broadcast_object(str(run_path / "factors") if run_path is not None else None)
    factors = fit_factors(backend.model, tracked, batches, config, Path(folder), identity,
                          progress if dist.rank() == 0 else None)
    pre = Preconditioner(factors)
    stats = {n: (float(v.mean()), float(v.max())) for n, v in factors.lam.items()}
    return factors, fit_summary(factors.meta, pre.damping, stats, model.spec, len(seqs))


def query_key(prompt: str, completion: str) -> str:
    return hashlib.sha256(f"{prompt}\x00{completion}".encode()).hexdigest()[:20]


def run_query(model: Any, fit_dir: Path, queries: list[tuple[str, str]], config: QueryConfig, done: set[str],
              progress: Progress | None = None) -> tuple[list[dict[str, Any]], Any]:
    """Score the queries not in ``done`` against the fit run's training file; returns their sample records."""
    fit_meta = fit_manifest(fit_dir)
    factor_cfg = FactorConfig.from_dict(fit_meta["factor_config"])
    train = Path(fit_meta["train"])
    factors = load_factors(fit_dir / "factors")
    if factors.meta["identity"].get("model") != model.fingerprint_id:
        raise ValueError(f"{fit_dir}: factors were fitted on another model (fingerprint differs)")
    if factors.meta["identity"].get("train_sha256") != file_sha256(train):
        raise ValueError(f"{train}: the training file changed since the factors were fitted")
    backend = model.backend
    device = next(backend.model.parameters()).device
    pre = Preconditioner(factors.to(device), config.damping_factor, config.damping)
    texts, seqs = training_sequences(backend, train, factor_cfg.max_length, factor_cfg.max_sequences)
    todo = [(p, c) for p, c in queries if query_key(p, c) not in done]
    if not todo:
        return [], pre
    q_ids, starts = encode_queries(backend.encode, [p for p, _ in todo], [c for _, c in todo], factor_cfg.max_length)
    cands = tfidf_candidates(texts, [p + c for p, c in todo], config.candidates) if config.candidates else None
    results = rank_queries(backend.model, pre, seqs, q_ids, starts, cands, config, pad_id(backend.tokenizer),
                           progress if dist.rank() == 0 else None)
    records = []
    for (prompt, completion), result in zip(todo, results, strict=True):
        records.append({"section": "influence", "model": model.spec, "key": query_key(prompt, completion),
                        "prompt": prompt, "completion": completion, **result,
                        "query_index": queries.index((prompt, completion))})
    return records, pre


def query_report(model: Any, fit_dir: Path, samples: list[dict[str, Any]], config: QueryConfig,
                 pre: Preconditioner) -> dict[str, Any]:
    fit_meta = fit_manifest(fit_dir)
    factor_cfg = FactorConfig.from_dict(fit_meta["factor_config"])
    texts, seqs = training_sequences(model.backend, Path(fit_meta["train"]), factor_cfg.max_length,
                                     factor_cfg.max_sequences)
    decode = model.backend.tokenizer.decode
    needed = {e["train_index"] for s in samples for e in s["top"]}
    tokens = [[decode([t]) for t in s] if i in needed else [] for i, s in enumerate(seqs)]
    return query_summary(samples, texts, tokens, model.spec, config.scoring(), pre.damping)


def fit_manifest(fit_dir: Path) -> dict[str, Any]:
    import json

    path = fit_dir / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --fit must name an 'alignlab influence fit' run directory")
    config = json.loads(path.read_text(encoding="utf-8")).get("config", {})
    if "factor_config" not in config or "train" not in config:
        raise ValueError(f"{path}: not an influence fit run (config lacks factor_config/train)")
    return config
