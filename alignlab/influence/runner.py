"""The influence study from Python: ``fit`` and ``query`` each make (or finish) one run directory; ``run`` picks
one by the config's type.

Influence computes gradients, so it does not fit the one-model ``Study.evaluate`` contract of the other studies
(``alignlab.runs.study``): ``fit`` loads the model itself and writes EK-FAC factors into ``<run>/factors``;
``query`` reloads the fit run's model. The run directories are those of ``alignlab influence fit|query`` (the CLI
calls these functions): the manifest's study is ``influence``, its config holds ``kind`` (``fit`` or ``query``)
and the settings. Under ``torchrun`` every process calls the function; rank 0 alone writes the run directory and
gets ``(run, summary)``, the other ranks get ``(None, ...)``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from alignlab.influence import distributed as dist
from alignlab.influence.config import FitConfig, QueryConfig
from alignlab.runs.run import Run
from alignlab.runs.study import finish, marking_failure

NAME = "influence"  # the manifest's study and the run directories' prefix, for fit and query alike
C = TypeVar("C", FitConfig, QueryConfig)
Progress = Callable[[str, int, int], None]
PathLike = str | os.PathLike[str]
OnOpen = Callable[[Run], None]


def fit(config: FitConfig | None = None, model: Any = "embedded", *, out: PathLike = "runs",
        resume: PathLike | None = None, dtype: str = "float32", device: str = "auto",
        progress: Progress | None = None, report: bool = True, command: str | None = None,
        on_open: OnOpen | None = None) -> tuple[Run | None, dict[str, Any]]:
    """Fit EK-FAC factors on ``config.train`` into ``<run>/factors``; returns ``(run, summary)``.

    ``model`` is a spec (``embedded``, ``hf:<id-or-path>``) or a loaded local transformers model; ``dtype`` and
    ``device`` are how a spec is loaded. ``resume`` finishes an interrupted fit with its saved config, model and
    dtype (finished layers and saved covariances are reused; ``config`` and ``model`` are then ignored).
    """
    from alignlab.influence.study import load_backend, run_fit

    dist.setup()
    if resume is not None:
        saved = _saved(resume, "fit")
        config = FitConfig.from_dict({**saved["factor_config"], "train": saved["train"]})
        model, dtype = saved["model"], saved["dtype"]
        run = Run.resume(resume, study=NAME) if dist.rank() == 0 else None
    else:
        config = _typed(config, FitConfig, "fit")
        if not isinstance(model, str):
            dtype = model.fingerprint.get("dtype", dtype)
        manifest = {"kind": "fit", "model": model if isinstance(model, str) else model.spec, "dtype": dtype,
                    "train": str(Path(str(config.train)).resolve()),
                    "factor_config": config.factor_config().as_dict()}
        run = Run.create(NAME, manifest, root=out, seed=config.seed, command=command) if dist.rank() == 0 else None
    train, factor_config = Path(str(config.train)), config.factor_config()

    def body() -> dict[str, Any]:
        loaded = load_backend(model, dtype, device)
        try:
            if run is not None:
                run.record_model(loaded)
            return run_fit(run.path if run is not None else None, loaded, train, factor_config, progress)[1]
        finally:
            if loaded is not model:
                loaded.close()

    return _execute(run, body, on_open, report)


def query(config: QueryConfig | None = None, model: Any = None, *, out: PathLike = "runs",
          resume: PathLike | None = None, device: str = "auto", progress: Progress | None = None,
          report: bool = True, command: str | None = None, on_open: OnOpen | None = None
          ) -> tuple[Run | None, dict[str, Any]]:
    """Rank the fit run's training sequences by influence on each query; returns ``(run, summary)``.

    ``config.fit`` names the fit run (default: the newest complete one under ``out``); the queries are
    ``config.prompt`` + ``config.completion`` and/or the JSONL file ``config.queries``. ``model`` defaults to the
    fit run's model (its spec and dtype); a loaded model must have the fit's fingerprint. ``resume`` finishes an
    interrupted query run: queries already in its ``samples.jsonl`` are not scored again.
    """
    from alignlab.influence.study import fit_manifest, load_backend, query_report, run_query

    dist.setup()
    if resume is not None:
        saved = _saved(resume, "query")
        config = QueryConfig.from_dict({**saved["query"], "fit": saved["fit"]})
        fit_dir, pairs = Path(saved["fit"]), [tuple(q) for q in saved["queries"]]
        fit_config = fit_manifest(fit_dir)
        run = Run.resume(resume, study=NAME) if dist.rank() == 0 else None
    else:
        config = _typed(config, QueryConfig, "query")
        fit_dir = Path(config.fit).resolve() if config.fit else latest_fit(Path(out))
        pairs = query_pairs(config)
        fit_config = fit_manifest(fit_dir)
        manifest = {"kind": "query", "fit": str(fit_dir), "queries": pairs, "query": config.scoring()}
        run = Run.create(NAME, manifest, root=out, seed=config.seed, command=command) if dist.rank() == 0 else None
    settings = config

    def body() -> dict[str, Any]:
        loaded = load_backend(model if model is not None else fit_config["model"], fit_config["dtype"], device)
        try:
            if run is not None:
                run.record_model(loaded)
            done = dist.broadcast_object(run.done_keys() if run is not None else set())
            records, pre = run_query(loaded, fit_dir, pairs, settings, done, progress)  # type: ignore[arg-type]
            if run is None:
                return {}
            run.append(records)
            return query_report(loaded, fit_dir, run.samples(), settings, pre)
        finally:
            if loaded is not model:
                loaded.close()

    return _execute(run, body, on_open, report)


def run(config: FitConfig | QueryConfig | None = None, model: Any = None, *, out: PathLike = "runs",
        resume: PathLike | None = None, **options: Any) -> tuple[Run | None, dict[str, Any]]:
    """:func:`fit` for a :class:`FitConfig` (``model`` defaults to ``embedded``), :func:`query` for a
    :class:`QueryConfig` (``model`` defaults to the fit run's); with ``resume``, the run's own kind. ``options``
    go to that function (``dtype``, ``device``, ``progress``, ``report``)."""
    if config is None and resume is not None:
        kind = Run.read_manifest(resume)["config"].get("kind")
        if kind not in ("fit", "query"):
            raise ValueError(f"{resume} is not an influence fit or query run")
    elif isinstance(config, FitConfig):
        kind = "fit"
    elif isinstance(config, QueryConfig):
        kind = "query"
    elif config is None:
        raise ValueError("give a FitConfig or a QueryConfig (or resume=RUN_DIR)")
    else:
        raise TypeError(f"influence runs take a FitConfig or a QueryConfig, not {type(config).__name__}")
    if kind == "fit":
        return fit(config, "embedded" if model is None else model, out=out, resume=resume,  # type: ignore[arg-type]
                   **options)
    return query(config, model, out=out, resume=resume, **options)  # type: ignore[arg-type]


def latest_fit(out: Path) -> Path:
    """The newest complete ``influence fit`` run under ``out`` (resolved)."""
    fits = []
    for manifest in out.glob(f"{NAME}-*/manifest.json"):
        data = json.loads(manifest.read_text(encoding="utf-8"))
        if data.get("config", {}).get("kind") == "fit" and data.get("status") == "complete":
            fits.append((data.get("finished", ""), manifest.parent))
    if not fits:
        raise FileNotFoundError(f"no complete 'influence fit' run under {out}: run 'alignlab influence fit' first "
                                f"or pass --fit")
    return max(fits)[1].resolve()


def query_pairs(config: QueryConfig) -> list[tuple[str, str]]:
    """The (prompt, completion) pairs of a query config: its ``queries`` file, then its prompt and completion."""
    from alignlab.influence.data import read_queries

    pairs = list(read_queries(Path(config.queries))) if config.queries else []
    if config.prompt is not None and config.completion is not None:
        pairs.append((config.prompt, config.completion))
    if not pairs:
        raise ValueError("give --prompt and --completion, or --queries FILE")
    return pairs


def _execute(run: Run | None, body: Callable[[], dict[str, Any]], on_open: OnOpen | None,
             report: bool) -> tuple[Run | None, dict[str, Any]]:
    """Run ``body`` for ``run`` (rank 0; None elsewhere): mark the run failed if it raises, else finish it
    (``summary.json``, ``results.json``, the report)."""
    if run is not None and on_open is not None:
        on_open(run)
    with marking_failure(run):
        summary = body()
    if run is not None:
        finish(run, summary, report=report)
    return run, summary


def _saved(resume: PathLike, kind: str) -> dict[str, Any]:
    """The saved config of an influence run of ``kind``, read without changing the run."""
    manifest = Run.read_manifest(resume)
    saved = manifest["config"]
    if manifest.get("study") != NAME or saved.get("kind") != kind:
        what = f"an influence {saved.get('kind')}" if manifest.get("study") == NAME else f"a {manifest.get('study')!r}"
        raise ValueError(f"{resume} is {what} run, not an influence {kind} run: resume it with its own command")
    return saved


def _typed(config: Any, cls: type[C], kind: str) -> C:
    if config is None:
        raise ValueError(f"influence {kind}: give a {cls.__name__} (or resume=RUN_DIR)")
    if not isinstance(config, cls):
        raise TypeError(f"influence {kind} takes a {cls.__name__}, not a {type(config).__name__}")
    return config
