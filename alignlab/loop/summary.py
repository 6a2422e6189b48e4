"""The loop's summary: every stage's measurement, the paired before/after table from one fixed scorer, and the
training examples most influential on the replies that changed most (data only; the report layer draws it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alignlab.loop.config import STAGES
from alignlab.loop.paired import COLUMNS, paired_rows, scored
from alignlab.loop.plan import applies
from alignlab.loop.stages import Context
from alignlab.loop.subruns import summary_of
from alignlab.runs.results import result

PREVIEW = 160


def loop_summary(ctx: Context, samples: list[dict[str, Any]]) -> dict[str, Any]:
    records = {s["stage"]: s for s in samples if s.get("kind") == "stage"}
    notes = list(ctx.splits.warnings)
    notes += [n for r in records.values() for n in r.get("left_out", [])]
    sections = [_stages_section(ctx, records), _splits_section(ctx)]
    headline: list[dict[str, Any]] = [{"label": "stages finished", "value": len(records)},
                                      {"label": "stage seconds (sum)",
                                       "value": round(sum(r.get("seconds") or 0 for r in records.values()), 1)}]
    results = [result("loop", "stage_seconds", r.get("seconds"), model=ctx.config.model, stage=name)
               for name, r in records.items()]
    if "redteam_before" in ctx.runs and "redteam_after" in ctx.runs:
        section, entries = before_after_section(ctx.runs["redteam_before"], ctx.runs["redteam_after"], ctx.scorer(),
                                                seed=ctx.config.seed)
        sections.append(section)
        results += entries
        for entry in entries:
            if entry["metric"] == "min_harmlessness_difference":
                headline.append({"label": f"harmlessness after - before ({entry['target']})", "value": entry["value"],
                                 "note": f"n {entry['n']}, 95% CI {entry['ci']}"})
    if "audit_after" in ctx.runs:
        sections.append(_audit_section(ctx.runs["audit_after"]))
    if "explain" in ctx.runs:
        sections += explain_sections(ctx.runs["explain"])
    return {"title": f"alignlab loop: {ctx.config.model}", "headline": headline, "sections": sections,
            "notes": notes, "results": results}


def _stages_section(ctx: Context, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rows = []
    for stage in STAGES:
        record = records.get(stage)
        if record is None:
            status = "not run" if applies(stage, ctx.config) else "not applicable"
            rows.append([stage, status, None, None, ""])
            continue
        measure = "; ".join(f"{c['label']}: {_text(c['value'])}" for c in record.get("measure", [])[:6])
        rows.append([stage, "complete", record.get("seconds"), record["run"], measure])
    return {"id": "stages", "title": "Stages",
            "description": (f"Base model {ctx.config.model}, conversation format {ctx.prompt_format}, fixed "
                            f"harmlessness scorer {_scorer_text(ctx)}. Each stage is its study's own run (open its "
                            f"report for everything it measured); seconds are wall time of the attempt that "
                            f"finished it."),
            "tables": [{"title": "Stages and their measurements",
                        "columns": ["stage", "status", "seconds", "run", "measurement (headline)"], "rows": rows}]}


def _splits_section(ctx: Context) -> dict[str, Any]:
    rows = [[name, len(lines) or None, path, ", ".join(map(str, lines[:8])) + (" ..." if len(lines) > 8 else "")]
            for name, path in ctx.splits.files.items() for lines in [ctx.splits.lines.get(name, [])]]
    return {"id": "splits", "title": "Data splits",
            "description": (f"Disjoint seeded rows of {ctx.splits.source} (grouped by their opening Human turn; "
                            f"seed {ctx.config.seed}); a user file replaces its split and is checked for overlaps."),
            "tables": [{"title": "Splits", "columns": ["split", "rows", "file", "source lines"], "rows": rows}]}


def before_after_section(before_dir: Path, after_dir: Path, scorer: str, *, seed: int
                         ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    before, threshold = scored(before_dir, scorer)
    after, _ = scored(after_dir, scorer)
    rows, entries = paired_rows(before, after, threshold, seed=seed)
    description = (f"The same attacks against the base model (before) and the trained policy (after), every reply "
                   f"scored by {scorer} (higher = more harmless; min over assistant turns). Difference = after - "
                   f"before, with a paired bootstrap 95% CI over attacks; success = min harmlessness below the "
                   f"scorer's threshold ({_text(threshold)}), compared with an exact McNemar test.")
    return ({"id": "before-after", "title": "Before and after training (one fixed scorer)", "description": description,
             "tables": [{"title": "Red team: paired before/after", "columns": COLUMNS, "rows": rows}]}, entries)


def _audit_section(audit_dir: Path) -> dict[str, Any]:
    summary = summary_of(audit_dir)
    overview = next((s for s in summary.get("sections", []) if s.get("id") == "audit"), {})
    return {"id": "alignment-tax", "title": "Audit before and after (alignment tax)",
            "description": "The audit of the base model and the trained policy side by side (its own run: "
                           f"{audit_dir.name}).", "tables": list(overview.get("tables", []))}


def explain_sections(query_dir: Path) -> list[dict[str, Any]]:
    """One table (each explained reply and its top training examples) and the influence report's token highlights."""
    from alignlab.loop.paired import read_samples

    summary = summary_of(query_dir)
    queries = _read_jsonl(query_dir.parent.parent / "queries.jsonl")
    train = _read_jsonl(query_dir.parent.parent / "train.jsonl")
    rows = []
    for record in sorted(read_samples(query_dir), key=lambda r: r.get("query_index", 0)):
        q = queries[record["query_index"]] if record.get("query_index", -1) < len(queries) else {}
        for rank, entry in enumerate(record.get("top", [])[:3], start=1):
            example = train[entry["train_index"]] if entry["train_index"] < len(train) else {}
            rows.append([q.get("attack_id"), _text(q.get("before")), _text(q.get("after")),
                         q.get("completion", "")[:PREVIEW], rank, entry["train_index"],
                         example.get("source", "sl-cai"), _text(entry["score"]),
                         str(example.get("text", ""))[-PREVIEW:]])
    unchanged = bool(queries) and all(q.get("before") == q.get("after") for q in queries)
    caveat = ("No explained reply changed its harmlessness score (the policy barely moved): the examples below "
              "explain the replies, not a change. " if unchanged else "")
    table = {"id": "explain", "title": "Which training examples drove the change (EK-FAC influence)",
             "description": (caveat + "For the policy's replies whose harmlessness changed most, the training "
                             "examples (SL-CAI: critique-revised replies; with DPO also each pair's chosen and "
                             "rejected reply, named in 'source') with the largest influence on the reply's "
                             "log-likelihood under the policy (positive = up-weighting the example makes the reply "
                             "more likely). "
                             "Token highlights below: each example's per-token contribution."),
             "tables": [{"title": "Most-changed replies and their top training examples",
                         "columns": ["attack", "before", "after", "policy reply", "rank", "train index", "source",
                                     "influence", "training example (end)"], "rows": rows}]}
    highlights = [dict(s, id=f"explain-{s['id']}", title=f"Influence: {s['title']}")
                  for s in summary.get("sections", []) if str(s.get("id", "")).startswith("query-")]
    return [table, *highlights]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    import json

    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _scorer_text(ctx: Context) -> str:
    try:
        return ctx.scorer()
    except ValueError:
        return "(the scorer stage's PM, not trained yet)"


def _text(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
