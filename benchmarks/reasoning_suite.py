"""Throughput of the full four-test CoT-faithfulness suite (Lanham et al. 2023: early answering, adding mistakes,
paraphrasing, filler tokens) on the embedded SmolLM2-135M-Instruct (quantized build, de-quantized to float32) on
CPU, as ``alignlab reasoning faithfulness`` runs it.

    .venv/bin/python benchmarks/reasoning_suite.py                        # defaults below
    .venv/bin/python benchmarks/reasoning_suite.py --questions 4 --samples 5 --max-new-tokens 128

Runs the suite twice on the same questions: cold (an empty request cache) and again (the cache now holds every
request, as after a crash and ``--resume``). Time inside the backend is split into generation (CoTs, mistakes,
paraphrases, resamples) and scoring (``next_token`` answer reads). Prints questions/hour, the shares, request counts
and generated tokens, and writes them to ``benchmarks/out/reasoning_suite.json``. Pin threads (``--threads``,
default 1) and compare ratios measured in one run: absolute seconds depend on machine load.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
OUT = HERE / "out" / "reasoning_suite.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default="strategyqa", help="questions (default strategyqa from ../shared/data)")
    p.add_argument("--questions", type=int, default=2, help="questions (default 2)")
    p.add_argument("--samples", type=int, default=2, help="CoT samples per question (default 2; CLI default 5)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="CoT length cap (default 64; CLI default 128)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


class Timed:
    """Wraps a backend and adds up the seconds, requests and generated tokens of each request type."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds: dict[str, float] = defaultdict(float)
        self.requests: dict[str, int] = defaultdict(int)
        self.generated_tokens = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _timed(self, kind: str, requests: Sequence[Any]) -> list[Any]:
        start = time.perf_counter()
        out = getattr(self.inner, kind)(requests)
        self.seconds[kind] += time.perf_counter() - start
        self.requests[kind] += len(requests)
        return out

    def generate(self, requests: Sequence[Any]) -> list[Any]:
        out = self._timed("generate", requests)
        self.generated_tokens += sum(len(self.inner.encode(g.text)) for r in out for g in r.samples)
        return out

    def next_token(self, requests: Sequence[Any]) -> list[Any]:
        return self._timed("next_token", requests)

    def score(self, requests: Sequence[Any]) -> list[Any]:
        return self._timed("score", requests)


def run_suite(model: Any, questions: list[Any], config: Any) -> float:
    from alignlab.reasoning.faithfulness import run_chunk

    start = time.perf_counter()
    run_chunk(model, questions, config)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from alignlab.models.base import Model
    from alignlab.models.cache import RequestCache
    from alignlab.models.embedded import embedded_path
    from alignlab.models.hf import HFBackend
    from alignlab.reasoning.config import TESTS, FaithfulnessConfig
    from alignlab.reasoning.questions import load_questions

    config = FaithfulnessConfig(source=args.source, limit=args.questions, seed=args.seed, samples=args.samples,
                                max_new_tokens=args.max_new_tokens, tests=list(TESTS))
    questions = load_questions(args.source, data=str(DATA), limit=args.questions, seed=args.seed)
    backend = HFBackend.from_pretrained(embedded_path(), spec="embedded")
    timed = Timed(backend)
    with tempfile.TemporaryDirectory() as tmp:
        model = Model(timed, cache=RequestCache(Path(tmp) / "requests.sqlite"))  # type: ignore[arg-type]
        cold = run_suite(model, questions, config)
        backend_seconds = dict(timed.seconds)
        again = run_suite(model, questions, config)
    inside = sum(backend_seconds.values())
    result = {
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads},
        "config": {"source": args.source, "questions": len(questions), "samples": args.samples,
                   "max_new_tokens": args.max_new_tokens, "tests": list(TESTS)},
        "cold_seconds": round(cold, 2),
        "questions_per_hour": round(3600 * len(questions) / cold, 2),
        "cot_samples_per_hour": round(3600 * len(questions) * args.samples / cold, 2),
        "generation_seconds": round(backend_seconds.get("generate", 0.0), 2),
        "scoring_seconds": round(backend_seconds.get("next_token", 0.0), 2),
        "generation_share": round(backend_seconds.get("generate", 0.0) / cold, 4),
        "scoring_share": round(backend_seconds.get("next_token", 0.0) / cold, 4),
        "other_share": round(1 - inside / cold, 4),
        "requests": dict(timed.requests),
        "generated_tokens": timed.generated_tokens,
        "rerun_from_cache_seconds": round(again, 2),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
