"""summary.json sections for influence runs: data only (the report layer draws and escapes).

- Fit: one table of layers (shape, shared-input group, damping λ, Λ statistics) and the phase timings.
- Query: per query a top-k table and token highlights of each top sequence (training-side per-token scores),
  the layer-wise distribution (share of |score| per layer over each query's top-k), and the sparsity plot
  (sorted positive scores vs rank on log-log axes, with the fitted power-law exponent).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from alignlab.influence.pipeline import power_law_exponent
from alignlab.runs.results import result

SIGN_NOTE = ("Positive score = up-weighting the training sequence lowers the query's negative log-likelihood of "
             "the completion (a proponent); negative = an opponent. Scores are unnormalised (summed over tokens).")
PREVIEW = 200


def fit_summary(meta: dict[str, Any], damping: dict[str, float], lam_stats: dict[str, tuple[float, float]],
                spec: str, n_train: int) -> dict[str, Any]:
    rows = []
    results = [result("fit", "training_sequences", n_train, model=spec),
               result("fit", "tracked_layers", len(meta["tracked"]), model=spec)]
    for t in meta["tracked"]:
        mean, top = lam_stats[t["name"]]
        rows.append([t["name"], f"{t['d_out']}x{t['d_in']}", t["group"], _num(damping[t["name"]]), _num(mean),
                     _num(top)])
        results += [result("fit", metric, value, model=spec, n=n_train, layer=t["name"])
                    for metric, value in (("damping", damping[t["name"]]), ("mean_lambda", mean),
                                          ("max_lambda", top))]
    timings = meta.get("timings", {})
    results.append(result("fit", "fit_seconds", sum(timings.values()), model=spec))
    return {
        "title": f"EK-FAC factors for {spec}",
        "headline": [{"label": "training sequences", "value": n_train},
                     {"label": "tracked layers", "value": len(rows)},
                     {"label": "fit seconds", "value": round(sum(timings.values()), 1)}],
        "sections": [{
            "id": "factors", "title": "EK-FAC factors (Grosse et al. 2023)",
            "description": "Damping λ = damping factor × mean(Λ) per layer (the value shown is the one query uses by "
                           "default). Layers in one group share one activation covariance.",
            "tables": [{"title": "Tracked layers", "columns": ["layer", "shape (out x in)", "input group",
                                                               "damping λ", "mean Λ", "max Λ"], "rows": rows},
                       {"title": "Phase timings (s)", "columns": ["phase", "seconds"],
                        "rows": [[k, round(v, 2)] for k, v in timings.items()]}],
        }],
        "notes": [f"fisher: {meta['config']['fisher']}", f"block size: {meta['config']['block_size']}"],
        "results": results,
    }


def query_summary(records: Sequence[dict[str, Any]], texts: Sequence[str], tokens: Sequence[Sequence[str]],
                  spec: str, config: dict[str, Any], damping: dict[str, float]) -> dict[str, Any]:
    """Sections for every query record (``samples.jsonl`` rows written by ``alignlab influence query``)."""
    records = sorted(records, key=lambda r: r["query_index"])
    sections = [_query_section(r, texts, tokens) for r in records]
    sections.append(_layer_section(records))
    sections.append(_sparsity_section(records))
    lam = list(damping.values())
    return {
        "title": f"Influence queries on {spec}",
        "headline": [{"label": "queries", "value": len(records)},
                     {"label": "training sequences scored per query (mean)",
                      "value": round(float(np.mean([r["n_scored"] for r in records])), 1) if records else 0},
                     {"label": "top-1 score (median)",
                      "value": _num(float(np.median([r["top"][0]["score"] for r in records]))) if records else None}],
        "sections": sections,
        "notes": [SIGN_NOTE, f"ranking rank: {config.get('rank') or 'full'}; top-k re-scored at full rank",
                  f"damping λ per layer: {_num(min(lam))} to {_num(max(lam))}" if lam else "no layers"],
        "results": query_results(records, spec),
    }


def query_results(records: Sequence[dict[str, Any]], spec: str) -> list[dict[str, Any]]:
    """``results.json`` entries: per query its top-1 score (n = sequences scored), the power-law exponent of its
    positive ranking-pass scores (n = their count), and each top-k sequence's full-rank score."""
    out = [result("query", "queries", len(records), model=spec)]
    for r in records:
        where = {"query_index": r["query_index"], "prompt": r["prompt"], "completion": r["completion"]}
        out.append(result("query", "top1_score", r["top"][0]["score"] if r["top"] else None, model=spec,
                          n=r["n_scored"], **where))
        out.append(result("query", "power_law_exponent", power_law_exponent(r["sorted_scores"]), model=spec,
                          n=sum(1 for s in r["sorted_scores"] if s > 0), **where))
        out += [result("query", "score", e["score"], model=spec, n=r["n_scored"], rank=rank,
                       train_index=e["train_index"], **where) for rank, e in enumerate(r["top"], start=1)]
    return out


def _query_section(record: dict[str, Any], texts: Sequence[str], tokens: Sequence[Sequence[str]]) -> dict[str, Any]:
    q = record["query_index"]
    rows, highlights = [], []
    for rank, entry in enumerate(record["top"], start=1):
        i = entry["train_index"]
        rows.append([rank, i, _num(entry["score"]), _num(entry["score_ranking_pass"]), texts[i][:PREVIEW]])
        if entry.get("token_scores") is not None:
            toks = list(tokens[i])[:len(entry["token_scores"])]
            highlights.append({"title": f"#{rank}: training sequence {i} (score {_num(entry['score'])})",
                               "tokens": toks, "scores": entry["token_scores"][:len(toks)]})
    return {"id": f"query-{q}", "title": f"Query {q}",
            "description": f"Prompt: {record['prompt']!r}; completion: {record['completion']!r}. {SIGN_NOTE}",
            "tables": [{"title": f"Top {len(rows)} training sequences",
                        "columns": ["rank", "train index", "score (full rank)", "score (ranking pass)", "text"],
                        "rows": rows}],
            "highlights": highlights}


def _layer_section(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    series = []
    for r in records[:8]:
        shares = np.zeros(len(r["top"][0]["layers"]))
        for entry in r["top"]:
            shares += np.abs(entry["layer_scores"])
        total = shares.sum() or 1.0
        series.append({"label": f"query {r['query_index']}", "x": [float(x) for x in r["top"][0]["layers"]],
                       "y": (shares / total).tolist()})
    return {"id": "layers", "title": "Layer-wise distribution of influence",
            "description": "Share of |score| per transformer layer, summed over each query's top-k sequences "
                           "(first 8 queries).",
            "figures": [{"kind": "line", "title": "Influence by layer", "xlabel": "layer",
                         "ylabel": "share of |score|", "series": series}]}


def _sparsity_section(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    series, rows = [], []
    for r in records:
        pos = [s for s in r["sorted_scores"] if s > 0]
        alpha = power_law_exponent(r["sorted_scores"])
        rows.append([r["query_index"], len(r["sorted_scores"]), len(pos), None if alpha is None else round(alpha, 3)])
        if pos and len(series) < 8:
            series.append({"label": f"query {r['query_index']}", "x": [float(i) for i in range(1, len(pos) + 1)],
                           "y": pos})
    return {"id": "sparsity", "title": "Sparsity of influence (power law)",
            "description": "Positive scores of the ranking pass sorted in decreasing order against their rank, both "
                           "axes logarithmic; a straight line is a power law, α its fitted exponent.",
            "tables": [{"title": "Power-law fit", "columns": ["query", "scored", "positive", "exponent α"],
                        "rows": rows}],
            "figures": [{"kind": "line", "title": "Sorted influence scores", "xlabel": "rank", "ylabel": "score",
                         "xscale": "log", "yscale": "log", "series": series}]}


def _num(value: float) -> float:
    return float(f"{value:.4g}")
