"""The audit's config: each field is a flag of ``alignlab audit``."""

from __future__ import annotations

from dataclasses import dataclass

from alignlab.runs.config import StudyConfig, option

BUDGETS = ("small", "full")
# Each study's ``audit.py`` declares its part as ``AUDIT``; a study added later adds its module here.
STUDY_MODULES = ("alignlab.bigbench.audit", "alignlab.behaviors.audit", "alignlab.honesty.audit",
                 "alignlab.fairness.audit", "alignlab.reasoning.audit", "alignlab.redteam.audit")
STUDY_NAMES = tuple(module.split(".")[1] for module in STUDY_MODULES)


@dataclass
class AuditConfig(StudyConfig):
    """Which studies, under which budget, on which data."""

    budget: str = option("small", "small (minutes on a CPU) or full (every item).", choices=BUDGETS)
    studies: list[str] = option(help="Comma-separated subset of studies (default: all).", factory=list, csv=True)
    data: str | None = option(None, "Dataset folder (else $ALIGNLAB_DATA, the user cache, then a download).")
    redteam_scorer: str | None = option(
        None, "The one harmlessness scorer of the red-team part, for every audited model: pm:<folder> or "
        "judge:<model spec>. Default: each model judges itself when one model is audited; with --compare an "
        "external judge (judge:embedded when neither audited model is it), never an audited model.")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.studies = list(self.studies or [])
        unknown = sorted(set(self.studies) - set(STUDY_NAMES))
        if unknown:
            raise ValueError(f"studies (--studies): unknown {', '.join(unknown)}; available: "
                             f"{', '.join(STUDY_NAMES)}")
        kind, _, target = (self.redteam_scorer or "").partition(":")
        if self.redteam_scorer is not None and (kind not in ("pm", "judge") or not target):
            raise ValueError(f"redteam_scorer (--redteam-scorer): {self.redteam_scorer!r} is not pm:<folder> or "
                             "judge:<model spec>")
