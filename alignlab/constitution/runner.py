"""One way to run every constitution command, from Python and from the CLI: ``run_command(config, model)``.

The run directories are the ones the commands have always written, so older runs still resume:

- ``revise``, ``label``, ``questions``: ``manifest.config = {"study": <config>, "model": <spec>}`` (one model per
  run; ``--dtype`` is not saved, a resumed run takes it from the call);
- ``train-sft``, ``train-pm``, ``train-rl``, ``evaluate-pm``: ``manifest.config = {"study": <config>}``; the model
  trained or scored is a field of the config.

Only ``revise`` and ``label`` resume (their finished steps are samples); a trainer or an evaluation reruns from the
start in a new run directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from alignlab.constitution.studies import RESUMABLE, WITH_MODEL, study_for, study_named
from alignlab.runs.run import Run
from alignlab.runs.study import Progress, finish, load_item, marking_failure

if TYPE_CHECKING:
    from alignlab.models.base import Model


def run_command(config: Any = None, model: Any = None, *, out: str | os.PathLike[str] = "runs",
                resume: str | os.PathLike[str] | None = None, dtype: str = "float32", cache: bool = True,
                progress: Progress | None = None, report: bool = True,
                load: Callable[[str, str, bool], Model] | None = None, command: str | None = None,
                on_open: Callable[[Run], None] | None = None) -> tuple[Run, dict[str, Any]]:
    """Run the command of ``config`` into a new run directory (or finish ``resume``); returns ``(run, summary)``.

    ``model`` (a spec or a loaded model; default ``"embedded"``) is for ``revise``, ``label`` and ``questions``
    only. Resuming takes the config and model saved in the run (a ``config`` given with ``resume`` only checks that
    the run is of that command). ``load(spec, dtype, cache)`` turns a spec into a model (default
    :func:`alignlab.models.load_model`). A run that raises is marked ``failed`` in its manifest before the exception
    propagates. Under ``torchrun`` a command with a model (``revise``, ``label``, ``questions``) runs on rank 0 while
    the other ranks lend it their replicas (they return ``(None, {})``); a trainer runs on every rank (DDP).
    """
    if resume is not None:
        study = study_for(config) if config is not None else study_named(Run.read_manifest(resume).get("study"),
                                                                           resume)
    elif config is None:
        raise ValueError("give a config (or resume=RUN_DIR)")
    else:
        study = study_for(config)
    command_run = partial(_run, study, config, model, out=out, resume=resume, dtype=dtype, cache=cache,
                          progress=progress, report=report, load=load, command=command, on_open=on_open)
    if study not in WITH_MODEL:
        return command_run()
    from alignlab.models.distributed import lead

    return lead(command_run) or (None, {})  # type: ignore[return-value]


def _run(study: Any, config: Any, model: Any, *, out: str | os.PathLike[str],
         resume: str | os.PathLike[str] | None, dtype: str, cache: bool, progress: Progress | None, report: bool,
         load: Callable[[str, str, bool], Model] | None, command: str | None,
         on_open: Callable[[Run], None] | None) -> tuple[Run, dict[str, Any]]:
    if resume is not None:
        if study not in RESUMABLE:
            raise ValueError(f"{resume}: a {study.name} run does not resume; start a new one")
        run = Run.resume(resume, study=study.name)
        saved = run.manifest["config"]
        config, model = study.config.from_dict(saved.get("study", {})), saved["model"]
    else:
        saved = {"study": config.as_dict()}
        if study in WITH_MODEL:
            model = "embedded" if model is None else model
            if not isinstance(model, (str, os.PathLike)) and not hasattr(model, "spec"):
                raise TypeError(f"{study.name} takes one model per run (a spec or a loaded model), "
                                f"not {type(model).__name__}")
            saved["model"] = str(model) if isinstance(model, (str, os.PathLike)) else model.spec
        elif model is not None:
            field = "base" if hasattr(config, "base") else "model" if hasattr(config, "model") else "pm"
            raise TypeError(f"{study.name} takes its model from {type(config).__name__}.{field}, not model=")
        run = Run.create(study.name, saved, root=out, seed=int(config.seed), command=command)
    if on_open is not None:
        on_open(run)
    with marking_failure(run):
        loaded = load_item(model, dtype, cache, load) if study in WITH_MODEL else None
        try:
            summary = study.evaluate(run, loaded, config, progress)
        finally:
            if loaded is not None and loaded is not model:
                loaded.close()
    finish(run, summary, report=report)
    return run, summary
