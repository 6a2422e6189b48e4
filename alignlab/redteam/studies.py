"""The red-team commands as the runner sees them (``attack``, ``generate``, ``score``, ``map``), and the runner.

A red-team run uses several models at once (targets, attacker, scorers, labeler), named by spec in its config,
so each study's ``evaluate(run, resources, config, progress) -> summary`` gets the run's :class:`Resources` (every
model by spec, each loaded once) where other studies get one model, and :func:`run_redteam` plays the part of
:func:`alignlab.runs.study.run_study`: it opens the run, evaluates, marks a failed run, and writes
``summary.json``, ``results.json`` and the report.

Every red-team run keeps today's manifest: ``config.study`` is a :class:`RedteamConfig` and ``config.dtype`` the
dtype (``score`` and ``map`` of a transcript file add ``config.transcripts``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alignlab.models.base import Model
from alignlab.models.distributed import led
from alignlab.redteam.attacks import write_attacks
from alignlab.redteam.config import GenerateConfig, MapConfig, RedteamConfig, ScoreConfig
from alignlab.redteam.mapping import map_run
from alignlab.redteam.pipeline import Progress, Resources, collect_attacks, import_transcripts, run_attack, score
from alignlab.redteam.summary import build_summary, generate_summary
from alignlab.runs.run import Run
from alignlab.runs.study import Study, finish, load_item, marking_failure

Loader = Callable[[str, str, bool], Model]


def _summary(run: Run, skips: list[Any]) -> dict[str, Any]:
    saved = RedteamConfig.from_dict(run.manifest["config"]["study"])
    return build_summary(run.samples(), run.manifest, seed=saved.seed, skips=[f"skipped {s}" for s in skips])


def _attack(run: Run, res: Resources, config: RedteamConfig, progress: Progress | None) -> dict[str, Any]:
    return _summary(run, run_attack(run, config, res, progress))


def _generate(run: Run, res: Resources, config: GenerateConfig, progress: Progress | None) -> dict[str, Any]:
    attacks = collect_attacks(run, config.redteam(), res, [config.source], 1, [])
    path = write_attacks(attacks, run.path / "attacks.jsonl")
    return generate_summary(attacks, config.method, config.attacker, path)


def _imported(run: Run, config: ScoreConfig | MapConfig) -> list[Any]:
    """A transcript file's conversations, read into the new run (the rows skipped, for the notes)."""
    return import_transcripts(run, config.path) if Path(config.path).is_file() else []


def _score(run: Run, res: Resources, config: ScoreConfig, progress: Progress | None) -> dict[str, Any]:
    skips = _imported(run, config)
    return _summary(run, skips + score(run, config.redteam(), res, list(config.scorers), progress))


def _map(run: Run, res: Resources, config: MapConfig, progress: Progress | None) -> dict[str, Any]:
    skips = _imported(run, config)
    map_run(run, config.redteam(), res, progress, label_model=config.labeler)
    return _summary(run, skips)


ATTACK = Study("redteam", RedteamConfig, _attack,  # type: ignore[arg-type]
               title="Attack success rate per target type and scorer (min harmlessness), attack landscape")
GENERATE = Study("redteam-generate", GenerateConfig, _generate,  # type: ignore[arg-type]
                 title="LM-written attacks (zero-shot or few-shot) into attacks.jsonl")
SCORE = Study("redteam-score", ScoreConfig, _score,  # type: ignore[arg-type]
              title="More scorers for a red-team run, or a transcript file scored")
MAP = Study("redteam-map", MapConfig, _map,  # type: ignore[arg-type]
            title="The attack landscape of a red-team run or a transcript file")
STUDIES = (ATTACK, GENERATE, SCORE, MAP)
IN_PLACE = (SCORE, MAP)  # a run directory is scored or mapped in place; a transcript file makes a new run


@led(lambda: (None, {}))
def run_redteam(study: Study[Any], config: Any = None, model: Any = None, *, out: str | os.PathLike[str] = "runs",
                resume: str | os.PathLike[str] | None = None, dtype: str = "float32", cache: bool = True,
                progress: Progress | None = None, report: bool = True, load: Loader | None = None,
                command: str | None = None, on_open: Callable[[Run], None] | None = None
                ) -> tuple[Run, dict[str, Any]]:
    """Run one red-team command (see :func:`alignlab.redteam.run`); ``load(spec, dtype, cache)`` loads a model
    (default :func:`alignlab.models.load_model`). Under ``torchrun`` rank 0 runs it while the other ranks lend it
    their replicas of each model (:func:`alignlab.models.distributed.lead`); they return ``(None, {})``."""
    config, preloaded = _with_model(study, config, model, resume)
    run, config, dtype = open_run(study, config, out=out, resume=resume, dtype=dtype, command=command)
    if on_open is not None:
        on_open(run)
    res = Resources(lambda spec: load_item(spec, dtype, cache, load), preloaded)
    try:
        with marking_failure(run):
            summary = study.evaluate(run, res, config, progress)  # type: ignore[arg-type]
    finally:
        res.close()
    finish(run, summary, report=report)
    return run, summary


def _with_model(study: Study[Any], config: Any, model: Any, resume: Any) -> tuple[Any, dict[str, Model]]:
    """``model`` is the model under attack (``RedteamConfig.model``): a spec or a loaded model. Loaded models
    (also a list of them) serve every spec they carry and stay open."""
    items = [] if model is None else [model] if isinstance(model, (str, os.PathLike, Model)) else list(model)
    loaded = {m.spec: m for m in items if isinstance(m, Model)}
    if isinstance(model, (str, os.PathLike, Model)) and resume is None:
        if not isinstance(config, RedteamConfig):
            raise ValueError(f"{study.name}: model= is the model under attack of a RedteamConfig; this command "
                             f"names its models in the config")
        config = dataclasses.replace(config, model=model.spec if isinstance(model, Model) else os.fspath(model))
    elif any(not isinstance(m, Model) for m in items) and resume is None:
        raise ValueError(f"{study.name}: model= takes one spec or loaded model, or a list of loaded models")
    return config, loaded


def open_run(study: Study[Any], config: Any, *, out: str | os.PathLike[str], resume: str | os.PathLike[str] | None,
             dtype: str, command: str | None) -> tuple[Run, Any, str]:
    """A new run (or the one resumed, with its saved config and dtype); ``score`` and ``map`` of a run directory
    reopen it, of a transcript file create a run."""
    if resume is not None:
        saved = Run.read_manifest(resume)
        if study in IN_PLACE:
            config = study.config.of(RedteamConfig.from_dict(saved["config"].get("study", {})), resume)
            dtype = saved["config"].get("dtype", dtype)
        else:
            run = Run.resume(resume, study=study.name)
            saved_config = RedteamConfig.from_dict(run.manifest["config"].get("study", {}))
            config = saved_config if study.config is RedteamConfig else study.config.of(saved_config)
            return run, config, run.manifest["config"].get("dtype", dtype)
    if config is None:
        raise ValueError(f"{study.name}: give a config (or resume a run)")
    if not isinstance(config, study.config):
        raise TypeError(f"{study.name} takes a {study.config.__name__}, not a {type(config).__name__}")
    if study in IN_PLACE and Path(config.path).is_dir():
        name = Run.read_manifest(config.path).get("study")
        if name not in {s.name for s in STUDIES}:
            raise ValueError(f"{config.path} is a {name!r} run, not a red-team run")
        return Run.resume(config.path), config, dtype
    if study in IN_PLACE and not Path(config.path).is_file():
        raise FileNotFoundError(f"{config.path} is neither a run directory nor a transcript file")
    saved = config if isinstance(config, RedteamConfig) else config.redteam()
    extra = {"transcripts": config.path} if study in IN_PLACE else {}
    run = Run.create(study.name, {"study": saved.as_dict(), "dtype": dtype, **extra}, root=out, seed=saved.seed,
                     command=command)
    return run, config, dtype
