"""One way to run every study, from Python and from the CLI: ``run_study(STUDY, config, model) -> (Run, summary)``.

A study package declares a :class:`Study` (its run-directory name, its config class and a function that evaluates
one model into a run) and a ``run(config, model=...)`` that calls :func:`run_study`. The CLI command of the study
is a thin shell over the same call (``cli_common.study_command``), so a run made from Python and one made from the
command line are the same run: same manifest, same samples, same summary, resumable by either.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from alignlab.models.distributed import led
from alignlab.runs.config import StudyConfig
from alignlab.runs.results import write_results
from alignlab.runs.run import Run, kill_point

if TYPE_CHECKING:
    from alignlab.models.base import Model

C = TypeVar("C", bound=StudyConfig)
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Study(Generic[C]):
    """A study as the runner sees it.

    ``evaluate(run, model, config, progress) -> summary`` evaluates one model into ``run`` (skipping samples
    already there) and returns the summary of everything in the run so far; it is called once per model.
    """

    name: str  # the manifest's ``study`` and the run directory's prefix, e.g. "fairness-bbq"
    config: type[C]
    evaluate: Callable[[Run, Model, C, Progress | None], dict[str, Any]]
    title: str = ""  # one line for ``alignlab list``


@dataclass(frozen=True)
class AuditPart:
    """A study's part in ``alignlab audit``: ``run(run, models, cap, data, progress) -> summary`` with at most
    ``caps[budget]`` items per dataset, and ``headline(summary) -> [(label, {model spec: value})]`` for the
    audit's summary page. Each study declares one as ``AUDIT`` in its ``audit.py``."""

    name: str
    title: str
    caps: dict[str, int | None]
    run: Callable[..., dict[str, Any]]
    headline: Callable[[dict[str, Any]], list[tuple[str, dict[str, float]]]]


def model_specs(model: Any) -> list[Any]:
    """A spec, a loaded model, or a sequence of either, as a list."""
    if isinstance(model, (str, os.PathLike)) or hasattr(model, "spec"):
        return [model]
    return list(model)


def open_run(study: Study[C], config: C | None, models: Sequence[Any], *, out: str | os.PathLike[str] = "runs",
             resume: str | os.PathLike[str] | None = None, dtype: str = "float32",
             command: str | None = None) -> tuple[Run, C, list[Any], str]:
    """A new run directory for ``config`` (or the resumed one with its saved config, models and dtype).

    Resuming checks that the directory is a run of this study before anything in it is changed.
    """
    if resume is not None:
        run = Run.resume(resume, study=study.name)
        try:
            saved = run.manifest["config"]
            return run, study.config.from_dict(saved.get("study", {})), list(saved["models"]), saved.get("dtype", dtype)
        except BaseException:
            run.close()  # its manifest is not changed yet (see Run.resume)
            raise
    if config is None:
        raise ValueError(f"{study.name}: give a config (or resume a run)")
    if not isinstance(config, study.config):
        raise TypeError(f"{study.name} takes a {study.config.__name__}, not a {type(config).__name__}")
    specs = [m if isinstance(m, str) else getattr(m, "spec", str(m)) for m in models]
    run = Run.create(study.name, {"study": config.as_dict(), "models": specs, "dtype": dtype}, root=out,
                     seed=int(getattr(config, "seed", 0) or 0), command=command)
    return run, config, list(models), dtype


@led(lambda: (None, {}))
def run_study(study: Study[C], config: C | None = None, model: Any = "embedded", *,
              out: str | os.PathLike[str] = "runs", resume: str | os.PathLike[str] | None = None,
              dtype: str = "float32", cache: bool = True, progress: Progress | None = None, report: bool = True,
              load: Callable[[str, str, bool], Model] | None = None, command: str | None = None,
              on_open: Callable[[Run], None] | None = None) -> tuple[Run, dict[str, Any]]:
    """Evaluate each model (a spec string, a loaded :class:`~alignlab.models.Model`, or a list of either) in turn
    into one run directory, then write ``summary.json``, ``results.json`` and the report.

    ``resume`` finishes an interrupted run with its saved config and models (``config`` and ``model`` are then
    ignored); completed samples are never recomputed. ``load`` turns a spec into a model (default:
    :func:`alignlab.models.load_model`, called as ``load(spec, dtype, cache)``). A run that raises is marked
    ``failed`` in its manifest, with the error, before the exception propagates.

    Under ``torchrun`` rank 0 does all of this while the other ranks lend it their replicas of each model
    (:mod:`alignlab.models.distributed`); they return ``(None, {})``.
    """
    run, config, models, dtype = open_run(study, config, model_specs(model), out=out, resume=resume, dtype=dtype,
                                          command=command)
    if on_open is not None:
        on_open(run)
    summary: dict[str, Any] = {}
    with marking_failure(run):
        for item in models:
            loaded = load_item(item, dtype, cache, load)
            try:
                summary = study.evaluate(run, loaded, config, progress)
            finally:
                if loaded is not item:
                    loaded.close()
    finish(run, summary, report=report)
    return run, summary


@contextmanager
def marking_failure(run: Run | None) -> Iterator[None]:
    """Mark ``run`` ``failed`` in its manifest, with the error, when the block raises (then re-raise)."""
    try:
        yield
    except BaseException as err:
        if run is not None:
            run.fail("interrupted" if isinstance(err, KeyboardInterrupt) else err)
        raise


def finish(run: Run, summary: dict[str, Any], *, report: bool = True) -> Path | None:
    """Write ``summary.json`` and ``results.json``, mark the run complete, render the report, and close the run
    (its directory lock is held until then)."""
    if not getattr(run, "writer", True):  # a rank > 0 of a command every rank runs: rank 0 writes
        return None
    try:
        run.finish(summary, close=False)
        write_results(run.path, run.manifest, summary)
        if not report:
            return None
        from alignlab.report import write_report

        return write_report(run.path)
    finally:
        run.close()


def load_item(item: Any, dtype: str, cache: bool, load: Callable[[str, str, bool], Model] | None = None) -> Model:
    """A loaded model as it is; a spec through ``load(spec, dtype, cache)`` or :func:`alignlab.models.load_model`,
    and on every torchrun worker too when workers serve this process (``models.distributed.replicate``)."""
    if not isinstance(item, (str, os.PathLike)):
        return item
    kill_point("load")
    loaded = (load or default_load)(str(item), dtype, cache)
    from alignlab.models.distributed import leading, picklable, replicate

    if leading():  # the workers load it with the same function (the default one when ``load`` does not pickle)
        try:
            loaded.replicas = replicate(str(item), dtype, picklable(load) or default_load, loaded.fingerprint_id)
        except BaseException:
            loaded.close()
            raise
    return loaded


def default_load(spec: str, dtype: str, cache: bool) -> Model:
    """:func:`alignlab.models.load_model` as a ``load(spec, dtype, cache)`` function."""
    from alignlab.models.spec import load_model

    return load_model(spec, dtype=dtype, cache=cache)


def pick_study(studies: Sequence[Study[Any]], config: Any, resume: str | os.PathLike[str] | None) -> Study[Any]:
    """The study whose config class is ``type(config)`` or, when resuming, whose name the run's manifest has."""
    if config is not None:
        for study in studies:
            if type(config) is study.config:
                return study
        names = ", ".join(s.config.__name__ for s in studies)
        raise TypeError(f"expected one of {names}, got {type(config).__name__}")
    if resume is None:
        raise ValueError("give a config (or resume=RUN_DIR)")
    name = Run.read_manifest(resume).get("study")
    for study in studies:
        if study.name == name:
            return study
    raise ValueError(f"{resume} is a {name!r} run, not one of {', '.join(s.name for s in studies)}")
