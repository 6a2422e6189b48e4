"""Run directories (manifest, samples, summary, report) and the persistent request cache."""

from alignlab.models.cache import RequestCache
from alignlab.runs.lock import RunLockedError
from alignlab.runs.run import Run

__all__ = ["RequestCache", "Run", "RunLockedError"]
