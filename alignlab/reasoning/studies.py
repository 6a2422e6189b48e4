"""The reasoning studies as the runner sees them: name, config class, and how one model is evaluated.

Besides the evaluated models, a study may use helper models (``mistake_model``, ``paraphrase_model``: specs in the
config). :class:`Helpers` loads each helper once per run with the run's dtype and closes it at the end;
:func:`with_helpers` binds one to a study (``reasoning.run`` and the CLI do, with their ``cache`` and ``load``).
A study evaluated without one loads its helpers with :func:`alignlab.models.load_model` for each evaluated model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

from alignlab.models.base import Model
from alignlab.reasoning.config import DecomposeConfig, FaithfulnessConfig
from alignlab.reasoning.runner import run_decomposition, run_faithfulness
from alignlab.runs.run import Run
from alignlab.runs.study import Progress, Study

S = TypeVar("S", bound=Study[Any])
Load = Callable[[str, str, bool], Model]  # (spec, dtype, cache) -> model, as run_study's ``load``


class Helpers:
    """The helper models of one run, each (spec, dtype) loaded on first use by ``load(spec, dtype, cache)``
    (default: :func:`alignlab.models.load_model`) and closed by :meth:`close`."""

    def __init__(self, load: Load | None = None, cache: bool = True) -> None:
        self._load, self._cache = load, cache
        self._models: dict[tuple[str, str], Model] = {}

    def get(self, spec: str | None, dtype: str) -> Model | None:
        """The helper ``spec`` (None: none, the evaluated model stands in)."""
        if not spec:
            return None
        if (spec, dtype) not in self._models:
            self._models[(spec, dtype)] = (self._load or _load_model)(spec, dtype, self._cache)
        return self._models[(spec, dtype)]

    def close(self) -> None:
        models, self._models = list(self._models.values()), {}
        for model in models:
            model.close()

    def __enter__(self) -> Helpers:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


def evaluate_faithfulness(run: Run, model: Model, config: FaithfulnessConfig, progress: Progress | None, *,
                          helpers: Helpers | None = None) -> dict[str, Any]:
    """Lanham et al.'s tests for one model into ``run``; the summary of every model in the run so far."""
    with _helpers(helpers) as pool:
        dtype = run_dtype(run)
        mistakes, paraphrases = pool.get(config.mistake_model, dtype), pool.get(config.paraphrase_model, dtype)
        return run_faithfulness(run, [model], config, mistakes, paraphrases, progress=progress)


def evaluate_decomposition(run: Run, model: Model, config: DecomposeConfig, progress: Progress | None, *,
                           helpers: Helpers | None = None) -> dict[str, Any]:
    """Radhakrishnan et al.'s methods for one model into ``run``; the summary of every model in the run so far."""
    with _helpers(helpers) as pool:
        return run_decomposition(run, [model], config, pool.get(config.mistake_model, run_dtype(run)),
                                 progress=progress)


FAITHFULNESS = Study("reasoning-faithfulness", FaithfulnessConfig, evaluate_faithfulness,
                     title="CoT faithfulness (Lanham et al. 2023): early answering, adding mistakes, paraphrasing, "
                           "filler tokens")
DECOMPOSE = Study("reasoning-decompose", DecomposeConfig, evaluate_decomposition,
                  title="Question decomposition (Radhakrishnan et al. 2023): accuracy, faithfulness AOCs, biased "
                        "contexts")
STUDIES = (FAITHFULNESS, DECOMPOSE)


def with_helpers(study: S, helpers: Helpers) -> S:
    """``study`` whose evaluations share ``helpers`` (loaded once for every evaluated model of the run)."""
    return dataclasses.replace(study, evaluate=partial(study.evaluate, helpers=helpers))


def run_dtype(run: Run) -> str:
    """The dtype the run's models are loaded with (saved in its manifest)."""
    return str(run.manifest.get("config", {}).get("dtype", "float32"))


@contextmanager
def _helpers(helpers: Helpers | None) -> Iterator[Helpers]:
    if helpers is not None:
        yield helpers
        return
    with Helpers() as own:
        yield own


def _load_model(spec: str, dtype: str, cache: bool) -> Model:
    from alignlab.models.spec import load_model

    return load_model(spec, dtype=dtype, cache=cache)
