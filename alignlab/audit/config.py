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

    def __post_init__(self) -> None:
        super().__post_init__()
        self.studies = list(self.studies or [])
        unknown = sorted(set(self.studies) - set(STUDY_NAMES))
        if unknown:
            raise ValueError(f"studies (--studies): unknown {', '.join(unknown)}; available: "
                             f"{', '.join(STUDY_NAMES)}")
