"""The red-team run, stage by stage, each appending records to the run's samples.jsonl (section ``redteam``):

1. attacks       ``attack|<id>``                 every attack, LM-generated ones included (written only here)
2. conversations ``conv|<target>|<attack id>``   each attack played against each target for ``turns`` turns
3. scores        ``threshold|<scorer>`` and ``score|<scorer>|<conv key>``: per-turn and min harmlessness
4. landscape     ``map|<hash>``                  UMAP coordinates and LM-labelled clusters (:mod:`.mapping`)

A stage skips every key already present, so ``--resume`` redoes nothing; the request cache makes a repeated
model call free. With the ``few-shot`` source, stages 1-3 run twice (Perez et al. 2022's loop): round 1 attacks
from the other sources, round 2 generated from round 1's attacks weighted by how harmful the replies were.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alignlab.data.errors import DataError, nothing_usable
from alignlab.data.resolve import resolve_dataset
from alignlab.models.base import Model
from alignlab.models.types import Message, PromptFormat
from alignlab.redteam import attacks as A
from alignlab.redteam.config import RedteamConfig
from alignlab.redteam.mapping import map_run
from alignlab.redteam.records import HARMLESS_BASE, SECTION, records
from alignlab.redteam.scoring import JudgeScorer, PMScorer, Scorer, calibrate, min_harmlessness, turn_scores
from alignlab.redteam.splits import CalibrationData, calibration_pairs, opening, pm_training
from alignlab.redteam.targets import Target, respond
from alignlab.redteam.transcripts import Skip, load_pairs
from alignlab.runs.run import Run

Progress = Callable[[str, int, int], None]


class Resources:
    """Models and scorers by spec, each loaded once (the CLI passes a loader, the audit its loaded models)."""

    def __init__(self, load: Callable[[str], Model], preloaded: dict[str, Model] | None = None) -> None:
        self._load, self.models = load, dict(preloaded or {})
        self._preloaded = set(self.models)  # the caller's: closed by the caller
        self.scorers: dict[str, Scorer] = {}

    def model(self, spec: str) -> Model:
        if spec not in self.models:
            self.models[spec] = self._load(spec)
        return self.models[spec]

    def scorer(self, spec: str, prompt_format: PromptFormat = "chat") -> Scorer:
        if spec not in self.scorers:
            kind, _, target = spec.partition(":")
            if kind == "pm" and target:
                from alignlab.constitution.preference_model import PreferenceModel

                self.scorers[spec] = PMScorer(PreferenceModel.load(target), spec)
            elif kind == "judge" and target:
                self.scorers[spec] = JudgeScorer(self.model(target), spec, prompt_format)
            else:
                raise ValueError(f"bad scorer {spec!r}: use judge:<model spec>, pm:<preference model folder> or "
                                 "pm:hf:<reward model id or path>")
        return self.scorers[spec]

    def close(self) -> None:
        """Close the models loaded here (not the preloaded ones)."""
        for spec, m in self.models.items():
            if spec not in self._preloaded:
                m.close()


# -- 1. attacks ----------------------------------------------------------------------------------------------
def collect_attacks(run: Run, config: RedteamConfig, res: Resources, sources: list[str], round_: int,
                    skips: list[Skip]) -> list[A.Attack]:
    """Attacks of ``sources``: reread from the run when already collected, else loaded or generated and saved."""
    saved = records(run, "attack")
    out: list[A.Attack] = []
    for source in sources:
        have = [A.Attack.from_record(r) for r in saved if r["source_spec"] == source]
        if have:
            out += have
            continue
        new, model_spec = _attacks_of(run, config, res, source, skips), "data"
        if source.startswith(("zero-shot", "few-shot")):
            model_spec = config.attacker
            run.record_model(res.model(config.attacker))
        new = new[:config.limit] if config.limit else new
        run.append([{"section": SECTION, "kind": "attack", "model": model_spec, "key": f"attack|{a.id}",
                     "source_spec": source, "round": round_, **a.to_record()} for a in new])
        out += new
    return list({a.id: a for a in out}.values())


def _attacks_of(run: Run, config: RedteamConfig, res: Resources, source: str, skips: list[Skip]) -> list[A.Attack]:
    kind, _, arg = source.partition(":")
    if kind == "harmless-base":
        found, _ = A.from_harmless_base(resolve_dataset(HARMLESS_BASE, data=config.data), config.limit,
                                        seed=config.seed, trained=pm_training(scorer_specs(config)))
        bad = []  # the built-in file's invalid rows are never used (counted in the calibration record)
    elif kind == "attempts":  # no path: the released file, found locally or downloaded
        from alignlab.redteam.data import red_team_attempts_path

        found, bad = A.from_attempts(arg or red_team_attempts_path(config.data))
    elif kind == "jsonl":
        found, bad = A.from_jsonl(arg)
    elif kind == "zero-shot":
        return A.generate_attacks(res.model(config.attacker), config.limit or 16, seed=config.seed)
    else:
        pool = _pool(run, config, arg)
        examples = A.few_shot_examples(pool, config.limit or 16, config.few_shot_k, seed=config.seed)
        return A.generate_attacks(res.model(config.attacker), len(examples), seed=config.seed + 10_000,
                                  examples=examples, source="few-shot")
    if not found:  # an empty file, or every row rejected: nothing to attack with
        raise nothing_usable([str(skip) for skip in bad], path=arg or None) if bad else \
            DataError(f"attack source {source!r}: empty file, no attacks")
    skips += bad
    return found


def _pool(run: Run, config: RedteamConfig, arg: str) -> list[tuple[str, float]]:
    """Few-shot pool: an attempts file with ratings, another run directory, or (no argument) this run."""
    if arg and Path(arg).is_file():
        return A.pool_from_attempts(arg)
    source_run = Run(Path(arg), {}) if arg else run  # read only: the pool's run is not reopened
    if arg and not source_run.samples_path.is_file():
        raise FileNotFoundError(f"few-shot pool {arg}: neither an attempts file nor a run directory with samples")
    scores = [s for s in records(source_run, "score") if s["scorer"] == config.measuring_scorer]
    if not scores:
        raise ValueError(f"few-shot: no scored conversations in {source_run.path} to draw examples from")
    convs = {c["key"]: c for c in records(source_run, "conversation")}
    firsts = [(convs[s["conv_key"]]["messages"][0]["content"], s["min_harmlessness"]) for s in scores
              if s["min_harmlessness"] is not None and s["conv_key"] in convs]
    harm = A.harm_from_scores([m for _, m in firsts])
    return list({t: h for (t, _), h in zip(firsts, harm, strict=True)}.items())


# -- 2. conversations ----------------------------------------------------------------------------------------
def conv_key(target: Target, attack_id: str) -> str:
    return f"conv|{target.label}|{attack_id}"


def play(run: Run, config: RedteamConfig, res: Resources, attacks: list[A.Attack],
         progress: Progress | None = None) -> None:
    """Each attack against each target for ``config.turns`` turns: one generate call per turn per chunk."""
    for target in config.target_list():
        model = res.model(target.model)
        run.evaluate_in_chunks(model, attacks, lambda a, t=target: conv_key(t, a.id),
                               lambda chunk, t=target, m=model: _play_chunk(config, res, t, m, chunk),
                               chunk_size=config.chunk_size, progress=progress, label=f"attack {target.label}")


def _play_chunk(config: RedteamConfig, res: Resources, target: Target, model: Model, chunk: list[A.Attack]
                ) -> list[dict[str, Any]]:
    convs = [list(a.messages) for a in chunk]
    candidates: list[list[Any]] = [[] for _ in chunk]
    pick = config.pick_spec(target) if target.type == "rejection" else None
    scorer = res.scorer(pick, config.prompt_format) if pick else None
    for turn in range(config.turns):
        replies = respond(model, target.type, convs, prompt_format=config.prompt_format, seed=config.seed + turn,
                          max_new_tokens=config.max_new_tokens, rejection_n=config.rejection_n, scorer=scorer)
        for conv, cands, reply in zip(convs, candidates, replies, strict=True):
            conv.append(Message("assistant", reply.text))
            if reply.candidates:
                cands.append({"samples": list(reply.candidates), "scores": list(reply.candidate_scores)})
        if turn + 1 < config.turns:
            attacker = res.model(config.attacker)
            for conv, text in zip(convs, A.continue_attacks(attacker, convs, seed=config.seed + turn), strict=True):
                conv.append(Message("user", text))
    return [{"section": SECTION, "kind": "conversation", "model": target.model, "key": conv_key(target, a.id),
             "target": target.label, "target_type": target.type, "attack_id": a.id, "source": a.source,
             "task_description": a.task_description, "tags": list(a.tags),
             "messages": [{"role": m.role, "content": m.content} for m in conv],
             **({"rejection_candidates": cands, "pick_scorer": pick} if cands else {})}
            for a, conv, cands in zip(chunk, convs, candidates, strict=True)]


# -- 3. scores -----------------------------------------------------------------------------------------------
def score(run: Run, config: RedteamConfig, res: Resources, scorers: list[str] | None = None,
          progress: Progress | None = None, only_targets: set[str] | None = None) -> list[Skip]:
    """Calibrate each scorer once, then score every conversation it has not scored (of ``only_targets`` when
    given); returns calibration skips."""
    skips: list[Skip] = []
    conversations = [c for c in records(run, "conversation") if only_targets is None or c["target"] in only_targets]
    specs = scorers or config.scorers
    data: CalibrationData | None = None
    for spec in specs:
        scorer = res.scorer(spec, config.prompt_format)
        if isinstance(scorer, JudgeScorer):
            run.record_model(scorer.model)
        done = run.done_keys()
        if f"threshold|{spec}" not in done:
            if data is None:
                data, bad = calibration_data(run, config, [*config.scorers, *specs])
                skips += bad
            if not data.pairs:
                raise DataError("no calibration pairs left: every pair was trained on by a PM scorer or shares its "
                                "opening turn with an attack", path=data.info["path"] or None)
            cal = calibrate(scorer, data.pairs, quantile=config.threshold_quantile,
                            source=config.calibration or HARMLESS_BASE, seed=config.seed)
            run.append([{"section": SECTION, "kind": "calibration", "model": spec, "key": f"threshold|{spec}",
                         "scorer": spec, "scorer_info": scorer.describe(), **cal.to_dict(), "data": data.info}])
        todo = [c for c in conversations if f"score|{spec}|{c['key']}" not in done]
        for start in range(0, len(todo), config.chunk_size):
            if progress:
                progress(f"score {spec}", start, len(todo))
            run.append(score_records(scorer, todo[start:start + config.chunk_size]))
        if progress:
            progress(f"score {spec}", len(todo), len(todo))
    return skips


def scorer_specs(config: RedteamConfig) -> list[str]:
    """Every scorer the config names (measuring scorers and the pick scorer)."""
    return [*config.scorers, *([] if config.pick_scorer == "self" else [config.pick_scorer])]


def calibration_data(run: Run, config: RedteamConfig, specs: list[str]) -> tuple[CalibrationData, list[Skip]]:
    """The pairs that set the thresholds (see :mod:`alignlab.redteam.splits`): ``--calibration`` or harmless-base,
    never a pair a PM among ``specs`` was trained on, disjoint from the run's attacks (a user file: counted)."""
    path = Path(config.calibration or resolve_dataset(HARMLESS_BASE, data=config.data)).resolve()
    pairs, bad = load_pairs(path)
    openings = {opening(r["messages"]) for kind in ("attack", "conversation") for r in records(run, kind)}
    trained = pm_training([*specs, *scorer_specs(config)])
    data = calibration_pairs(pairs, config.calibration_pairs, seed=config.seed, attack_openings=openings - {""},
                             trained=trained, user_file=config.calibration is not None)
    data.info["invalid_rows"] = len(bad)
    metas = [a.get("attack_meta") or {} for a in records(run, "attack")]
    rows = {(str(m["path"]), m["line"]) for m in metas if m.get("path") and m.get("line")}
    if rows & trained.lines:  # a PM added later (``redteam score``) was trained on rows this run attacked with
        data.info["attack_warning"] = "; ".join(
            f"{spec} was trained on {len(rows & lines)} of this run's {len(rows)} attack rows: its scores of those "
            "conversations are in-sample" for spec in trained.sources
            if (lines := pm_training([spec], texts=False).lines) & rows)
    for key in ("warning", "attack_warning"):
        if key in data.info:
            warnings.warn(data.info[key], stacklevel=2)
    return data, bad if config.calibration else []  # a user file's bad rows are listed


def score_records(scorer: Scorer, conversations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-turn harmlessness, its minimum and the intent harmlessness of each conversation's task."""
    messages = [[Message(m["role"], m["content"]) for m in c["messages"]] for c in conversations]
    per_turn = turn_scores(scorer, messages)
    intents = scorer.intent([c.get("task_description") or msgs[0].content for c, msgs in
                             zip(conversations, messages, strict=True)])
    return [{"section": SECTION, "kind": "score", "model": scorer.name, "key": f"score|{scorer.name}|{c['key']}",
             "scorer": scorer.name, "conv_key": c["key"], "target": c["target"], "source": c.get("source"),
             "turn_scores": turns, "min_harmlessness": min_harmlessness(turns), "intent_harmlessness": intent}
            for c, turns, intent in zip(conversations, per_turn, intents, strict=True)]


# -- the whole attack run ------------------------------------------------------------------------------------
def run_attack(run: Run, config: RedteamConfig, res: Resources, progress: Progress | None = None) -> list[Skip]:
    """Collect, play and score every round, then map; returns the data rows skipped (for the summary)."""
    skips: list[Skip] = []
    first = [s for s in config.sources if s != "few-shot"]
    rounds = [first] + ([["few-shot"]] if "few-shot" in config.sources else [])
    for number, sources in enumerate(rounds, start=1):
        if not sources:
            continue
        attacks = collect_attacks(run, config, res, sources, number, skips)
        play(run, config, res, attacks, progress)
        skips += score(run, config, res, progress=progress)
    if config.landscape:
        map_run(run, config, res, progress)
    return skips


def import_transcripts(run: Run, path: str | Path) -> list[Skip]:
    """Released red-team attempts (or any transcript JSONL) as conversation records, so ``score`` and ``map``
    work on them; the target is the row's ``model_type`` (and ``num_params``) when present."""
    from alignlab.redteam.transcripts import load_transcripts

    transcripts, skips = load_transcripts(path)
    if not transcripts:
        raise nothing_usable([str(skip) for skip in skips], path=path) if skips else \
            DataError("empty file: no transcripts", path=path)
    done = run.done_keys()
    rows = []
    for t in transcripts:
        kind = str(t.meta.get("model_type") or "data")
        label = f"{kind} ({t.meta['num_params']})" if t.meta.get("num_params") else kind
        key = f"conv|{label}|{t.id}"
        if key in done:
            continue
        done.add(key)
        rows.append({"section": SECTION, "kind": "conversation", "model": "data", "key": key, "target": label,
                     "target_type": kind, "attack_id": t.id, "source": f"file:{Path(path).name}",
                     "task_description": t.meta.get("task_description"), "tags": t.tags,
                     "rating": t.meta.get("rating"),
                     "messages": [{"role": m.role, "content": m.content} for m in t.messages]})
    run.append(rows)
    return skips
