"""Prompts/hour for SL-CAI critique/revision (a response + two critique/revision rounds) on the embedded model:
batched across prompts within each round vs one prompt at a time, measured side by side in one process.

    ALIGNLAB_DATA=../shared/data .venv/bin/python benchmarks/constitution_revisions.py --prompts 8 --tokens 32

The request cache is off, both modes generate the same requests (per-row seeds), and they alternate order over
``--repeats`` so machine load affects both alike. One torch thread. Prints a JSON line with both rates and the ratio.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=32, help="max new tokens per generation")
    parser.add_argument("--repeats", type=int, default=1, help="alternating repetitions of the pair of modes")
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--format", default="raw_hh", choices=["raw_hh", "chat", "auto"],
                        help="transcript format (the published rate was measured in raw_hh, the format of its time)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from alignlab.constitution.revise import ReviseConfig, run_revisions
    from alignlab.models.spec import load_model
    from alignlab.runs.run import Run

    model = load_model(args.model, cache=False)
    seconds: dict[str, list[float]] = {"batched": [], "one_at_a_time": []}
    outputs: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as root:
        for rep in range(args.repeats):
            order = ["batched", "one_at_a_time"] if rep % 2 == 0 else ["one_at_a_time", "batched"]
            for mode in order:
                config = ReviseConfig(rounds=2, limit=args.prompts, max_new_tokens=args.tokens,
                                      chunk_size=args.prompts if mode == "batched" else 1, prompt_format=args.format)
                run = Run.create(f"bench-{mode}", {}, root=root)
                start = time.perf_counter()
                run_revisions(run, model, config)
                seconds[mode].append(time.perf_counter() - start)
                outputs[mode] = {s["key"]: s.get("revision", s.get("text")) for s in run.samples()}
    rate = {mode: args.prompts * 3600 / min(values) for mode, values in seconds.items()}
    print(json.dumps({"model": args.model, "format": args.format, "prompts": args.prompts,
                      "max_new_tokens": args.tokens, "rounds": 2,
                      "seconds": seconds, "prompts_per_hour": rate,
                      "speedup": rate["batched"] / rate["one_at_a_time"],
                      "same_outputs": outputs["batched"] == outputs["one_at_a_time"]}))


if __name__ == "__main__":
    main()
