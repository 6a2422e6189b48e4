"""transformers 5 renamed the KV cache's forward argument and output field from ``past_key_values`` to ``cache``
(5.24 has ``cache``; 5.17 still has ``past_key_values``). These two helpers accept either, so the hf backend runs
on every transformers 5 release."""

from __future__ import annotations

import functools
import inspect
from typing import Any


@functools.cache
def _cache_argument(model_type: type) -> str:
    return "cache" if "cache" in inspect.signature(model_type.forward).parameters else "past_key_values"


def with_cache(model: Any, cache: Any) -> dict[str, Any]:
    """The keyword arguments that pass ``cache`` to ``model``'s forward."""
    return {_cache_argument(type(model)): cache}


def output_cache(output: Any) -> Any:
    """The KV cache a forward returned."""
    return output.cache if hasattr(output, "cache") else output.past_key_values
