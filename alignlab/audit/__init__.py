"""``alignlab audit``: every available study on one model (or two, side by side), one report.

Each study declares its part (``AUDIT`` in ``<study>/audit.py``) with a cap on the items each dataset contributes
under each budget (``small`` is sized so that auditing the embedded model takes minutes on 2 CPU cores; ``full``
uses everything). Nothing is trained inside the audit: a trained model is audited by naming it with ``compare``.
Every study writes its samples into the one run directory (each sample's ``section`` says which study), so a
resumed audit never recomputes a finished sample. With ``compare``, both models answer the same items with the same
seeds, and each headline number gets a paired row: both values, n, the difference with a bootstrap CI over the same
items and, for 0/1 metrics, the exact McNemar p (``paired.py``; each study's ``audit_items`` gives the per-item
values). The red-team part of a comparison is scored by one scorer that is neither model (``redteam_scorer``)::

    from alignlab import audit
    run, summary = audit.run(audit.AuditConfig(budget="small", studies=["bigbench"]), model="embedded")
"""

from __future__ import annotations

from alignlab.audit.config import BUDGETS, STUDY_NAMES, AuditConfig
from alignlab.audit.runner import AuditStudy, available_studies, combine, run, run_audit
from alignlab.runs.study import AuditPart

__all__ = ["BUDGETS", "STUDY_NAMES", "AuditConfig", "AuditPart", "AuditStudy", "available_studies", "combine",
           "run", "run_audit"]
