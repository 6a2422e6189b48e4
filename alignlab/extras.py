"""Optional features whose heavy dependencies live in pip extras, and the error that names the install command.

``alignlab[map]`` (umap-learn, which pulls numba and llvmlite) draws the red-team attack map;
``alignlab[train]`` (trl, peft, datasets, which pull pyarrow and pandas) trains: constitution SFT/RL and
preference models, LoRA P(IK) heads, and the one-time TriviaQA download. Everything else, the audit included,
runs on the core install. Import an extra's module through :func:`require` inside the function that needs it,
never at module level, so that ``import alignlab`` and the CLI's help never load them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# extra -> what it is for
EXTRAS = {"map": "the red-team attack map (UMAP)",
          "train": "training (constitution SFT/RL/preference models, LoRA P(IK) heads, the TriviaQA download)"}
# import name -> distribution name, where they differ
DISTRIBUTIONS = {"umap": "umap-learn"}


class MissingExtra(ModuleNotFoundError):
    """An optional dependency is not installed; the message names the ``pip install "alignlab[...]"`` command."""

    def __init__(self, module: str, extra: str, cause: BaseException | None = None):
        top = module.split(".")[0]
        detail = f" ({cause})" if cause is not None and getattr(cause, "name", None) not in (None, top) else ""
        super().__init__(f"{DISTRIBUTIONS.get(top, top)} is needed for {EXTRAS[extra]} but is not installed"
                         f"{detail}: pip install \"alignlab[{extra}]\"", name=top)
        self.extra = extra


def require(module: str, *, extra: str) -> ModuleType:
    """Import ``module`` (from the optional ``extra``) or raise :class:`MissingExtra` naming the pip command.

    Any import failure counts, including one of the module's own dependencies (``trl`` without ``datasets``)."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}: one of {', '.join(EXTRAS)}")
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtra(module, extra, err) from err
