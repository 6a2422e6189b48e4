"""The red-team configs: each field is a flag of ``alignlab redteam attack|generate|score|map``.

Every red-team run saves a :class:`RedteamConfig` in its manifest (``config.study``), whichever command made it:
``generate``, ``score`` and ``map`` have their own options (:class:`GenerateConfig`, :class:`ScoreConfig`,
:class:`MapConfig`) and turn them into the :class:`RedteamConfig` they run with (``redteam()``), so ``score`` and
``map`` can reopen any red-team run and read its settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from alignlab.models.types import PromptFormat
from alignlab.redteam.targets import Target, parse_target
from alignlab.runs.config import StudyConfig, option

SOURCE_KINDS = ("harmless-base", "attempts", "jsonl", "zero-shot", "few-shot")
PROJECTIONS = ("umap", "pca")
METHODS = ("zero-shot", "few-shot")

SCORER_HELP = ("Comma-separated scorers: judge:<model spec>, pm:<preference model folder> or pm:hf:<reward model id or "
               "path>. The first pm: scorer measures the headline (else the first); every scorer is reported.")
PICK_HELP = ("Scorer that picks the rejection target's reply among its samples: self (judge:<the target's own model>, "
             "the default), judge:<spec> or pm:<folder>. When it is also a measuring scorer, that scorer's rejection "
             "numbers are biased (the report says so).")
CALIBRATION_HELP = ("hh-rlhf-format pair file (chosen/rejected JSONL) that sets each scorer's threshold (default: "
                    "harmless-base test rows disjoint from the attacks); a warning when it shares prompts with them.")
ATTACKER_HELP = "Model spec that writes attacks, continues conversations and labels clusters."
LIMIT_HELP = "At most this many attacks per source."
SEED_HELP = "Seeds sampling, few-shot draws, UMAP and clustering."
FEW_SHOT_HELP = "Examples per few-shot prompt."
CLUSTERS_HELP = "k-means clusters (default: HDBSCAN, or k-means on small maps)."
PROJECTION_HELP = "umap (the paper's) or pca (instant; UMAP compiles for tens of seconds)."
PATH_HELP = ("A red-team run directory, or a transcript file (released red_team_attempts JSON/JSONL(.gz), or JSONL "
             "with transcript/messages).")
DATA_HELP = "Dataset path (else $ALIGNLAB_DATA, the user cache, then a download)."


def _check_quantile(value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"threshold_quantile (--threshold-quantile) must lie in (0, 1), got {value}")


@dataclass
class RedteamConfig(StudyConfig):
    """One red-team run (``alignlab redteam attack``): attack sources, targets, scorers and the landscape."""

    sources: list[str] = option(help="Comma-separated attack sources: harmless-base, attempts[:PATH], jsonl:PATH, "
                                     "zero-shot, few-shot[:POOL].", factory=lambda: ["harmless-base"], flag="--source",
                                csv=True)
    targets: list[str] = option(help="Comma-separated targets TYPE[=MODEL_SPEC]; TYPE is plain, prompted, rejection "
                                     "or trained.", factory=lambda: ["plain", "prompted"], flag="--target", csv=True)
    scorers: list[str] = option(help=SCORER_HELP, factory=lambda: ["judge:embedded"], flag="--scorer", csv=True)
    model: str = option("embedded", "Model spec for targets given without =SPEC.", short="-m")
    attacker: str = option("embedded", ATTACKER_HELP)
    limit: int | None = option(8, LIMIT_HELP, minimum=1)
    turns: int = option(1, "Assistant turns per conversation; the attacker writes the Human turns after the first.",
                        minimum=1)
    few_shot_k: int = option(5, FEW_SHOT_HELP, minimum=1)
    rejection_n: int = option(16, "Samples per reply for the rejection target (the paper's 16).", minimum=1)
    pick_scorer: str = option("self", PICK_HELP)
    max_new_tokens: int = option(64, "Tokens per reply.", minimum=1)
    prompt_format: PromptFormat = option("chat", "chat (chat template) or raw_hh (Human:/Assistant: text, for base "
                                                 "models).", flag="--format", choices=("chat", "raw_hh"))
    calibration_pairs: int = option(64, "hh-rlhf harmless-base pairs that set each scorer's threshold.", minimum=1)
    calibration: str | None = option(None, CALIBRATION_HELP)
    threshold_quantile: float = option(0.5, "Threshold = this quantile of the rejected replies' scores.")
    seed: int = option(0, SEED_HELP + " Also orders the harmless-base rows (attacks and calibration pairs).",
                       minimum=0)
    data: str | None = option(None, DATA_HELP)
    chunk_size: int = option(16, "Conversations per model call.", minimum=1)
    landscape: bool = option(True, "Draw the attack landscape.", flag="--map/--no-map")
    clusters: int | None = option(None, CLUSTERS_HELP, minimum=1)
    projection: str = option("umap", PROJECTION_HELP, choices=PROJECTIONS)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_quantile(self.threshold_quantile)
        if not self.scorers:
            raise ValueError("name at least one scorer (judge:SPEC or pm:FOLDER)")
        for scorer in self.scorers:
            check_scorer(scorer, "scorers (--scorer)")
        if self.pick_scorer != "self":
            check_scorer(self.pick_scorer, "pick_scorer (--pick-scorer)")
        self.calibration = check_calibration(self.calibration)
        for source in self.sources:
            kind = source.split(":", 1)[0]
            if kind not in SOURCE_KINDS:
                raise ValueError(f"unknown attack source {source!r}: use harmless-base, attempts[:PATH], jsonl:PATH, "
                                 "zero-shot or few-shot[:POOL]")
            path = source.partition(":")[2]
            if kind in ("attempts", "jsonl") and (path or kind == "jsonl") and not Path(path).is_file():
                raise ValueError(f"attack source {source!r}: file not found")
        self.target_list()  # validates the target types

    def target_list(self) -> list[Target]:
        return [parse_target(t, self.model) for t in self.targets]

    @property
    def measuring_scorer(self) -> str:
        """The scorer of the headline: the first ``pm:`` one, else the first."""
        return measuring_scorer(self.scorers)

    def pick_spec(self, target: Target) -> str:
        """The scorer that picks a rejection target's reply (``self``: the target's own model as judge)."""
        return f"judge:{target.model}" if self.pick_scorer == "self" else self.pick_scorer

    def model_specs(self) -> list[tuple[str, str]]:
        """``(field, model spec)`` of every model this config names, checked by the CLI before a run opens."""
        return [("model", self.model), ("attacker", self.attacker),
                *(("targets", t.partition("=")[2].strip()) for t in self.targets if "=" in t),
                *_judges("scorers", self.scorers), *_judges("pick_scorer", [self.pick_scorer])]


def measuring_scorer(scorers: list[str]) -> str:
    """The first ``pm:`` scorer (a preference model measures harmlessness when one is given), else the first."""
    return next((s for s in scorers if s.startswith("pm:")), scorers[0])


def check_scorer(spec: str, field: str) -> None:
    kind, _, target = spec.partition(":")
    if kind not in ("judge", "pm") or not target.strip() or target.strip() == "hf:":
        raise ValueError(f"{field}: bad scorer {spec!r}: use judge:<model spec>, pm:<preference model folder> or "
                         "pm:hf:<reward model id or path>")


def check_calibration(path: str | os.PathLike[str] | None) -> str | None:
    if path is None:
        return None
    if not Path(path).is_file():
        raise ValueError(f"calibration (--calibration): file not found: {path}")
    return os.fspath(path)


def _judges(field: str, scorers: list[str]) -> list[tuple[str, str]]:
    return [(field, scorer.removeprefix("judge:")) for scorer in scorers if scorer.startswith("judge:")]


@dataclass
class GenerateConfig(StudyConfig):
    """``alignlab redteam generate``: LM-written attacks (Perez et al. 2022), zero-shot or few-shot from a pool."""

    method: str = option("zero-shot", "zero-shot or few-shot (needs --pool).", choices=METHODS)
    attacker: str = option("embedded", ATTACKER_HELP)
    pool: str | None = option(None, "Few-shot examples: a scored red-team run directory or a red_team_attempts file "
                                    "with ratings.")
    scorer: str = option("judge:embedded", SCORER_HELP)
    limit: int | None = option(16, LIMIT_HELP, minimum=1)
    few_shot_k: int = option(5, FEW_SHOT_HELP, minimum=1)
    seed: int = option(0, SEED_HELP, minimum=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pool is not None:
            self.pool = os.fspath(self.pool)
        if self.method == "few-shot" and not self.pool:
            raise ValueError("--method few-shot needs --pool (a scored run directory or an attempts file)")
        self.redteam()

    def model_specs(self) -> list[tuple[str, str]]:
        return [("attacker", self.attacker), *_judges("scorer", [self.scorer])]

    @property
    def source(self) -> str:
        return self.method if self.method == "zero-shot" else f"few-shot:{self.pool}"

    def redteam(self) -> RedteamConfig:
        """The config the generate run saves and runs with."""
        return RedteamConfig(sources=[self.source], targets=[], scorers=[self.scorer], attacker=self.attacker,
                             limit=self.limit, few_shot_k=self.few_shot_k, seed=self.seed, landscape=False)

    @classmethod
    def of(cls, saved: RedteamConfig) -> GenerateConfig:
        """The generate options of a saved generate run (to resume it)."""
        method, _, pool = saved.sources[0].partition(":")
        return cls(method=method, attacker=saved.attacker, pool=pool or None, scorer=saved.scorers[0],
                   limit=saved.limit, few_shot_k=saved.few_shot_k, seed=saved.seed)


@dataclass
class ScoreConfig(StudyConfig):
    """``alignlab redteam score``: more scorers for a run's conversations (in place), or a transcript file scored
    into a new run."""

    path: str = option(help=PATH_HELP, argument=True)
    scorers: list[str] = option(help=SCORER_HELP, factory=lambda: ["judge:embedded"], flag="--scorer", csv=True)
    calibration_pairs: int = option(64, "Pairs that set the threshold.", minimum=1)
    calibration: str | None = option(None, CALIBRATION_HELP)
    threshold_quantile: float = option(0.5, "Quantile of rejected scores.")
    seed: int = option(0, "Orders the harmless-base calibration rows.", minimum=0)
    data: str | None = option(None, DATA_HELP)

    def __post_init__(self) -> None:
        self.path = str(Path(self.path))
        super().__post_init__()
        self.redteam()

    def model_specs(self) -> list[tuple[str, str]]:
        return _judges("scorers", self.scorers)

    def redteam(self) -> RedteamConfig:
        """The scoring settings (a file's new run saves them; a run directory keeps its own config)."""
        return RedteamConfig(targets=[], scorers=list(self.scorers), calibration_pairs=self.calibration_pairs,
                             calibration=self.calibration, threshold_quantile=self.threshold_quantile, seed=self.seed,
                             data=self.data, landscape=False)

    @classmethod
    def of(cls, saved: RedteamConfig, path: str | os.PathLike[str]) -> ScoreConfig:
        """Score the run at ``path`` again with its saved scorers (to resume a score run)."""
        return cls(path=os.fspath(path), scorers=saved.scorers, calibration_pairs=saved.calibration_pairs,
                   calibration=saved.calibration, threshold_quantile=saved.threshold_quantile, seed=saved.seed,
                   data=saved.data)


@dataclass
class MapConfig(StudyConfig):
    """``alignlab redteam map``: the attack landscape of a run (in place) or of a transcript file (a new run)."""

    path: str = option(help=PATH_HELP, argument=True)
    labeler: str = option("embedded", "Model spec that writes the cluster labels.")
    clusters: int | None = option(None, CLUSTERS_HELP, minimum=1)
    projection: str = option("umap", PROJECTION_HELP, choices=PROJECTIONS)
    seed: int = option(0, SEED_HELP, minimum=0)

    def __post_init__(self) -> None:
        self.path = str(Path(self.path))
        super().__post_init__()

    def model_specs(self) -> list[tuple[str, str]]:
        return [("labeler", self.labeler)]

    def redteam(self) -> RedteamConfig:
        """The map settings (a file's new run saves them; a run directory keeps its own config)."""
        return RedteamConfig(targets=[], attacker=self.labeler, seed=self.seed, clusters=self.clusters,
                             projection=self.projection)

    @classmethod
    def of(cls, saved: RedteamConfig, path: str | os.PathLike[str]) -> MapConfig:
        """Map the run at ``path`` again with its saved settings (to resume a map run)."""
        return cls(path=os.fspath(path), labeler=saved.attacker, clusters=saved.clusters,
                   projection=saved.projection, seed=saved.seed)
