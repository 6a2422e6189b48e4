"""Red-team throughput: attacked conversations per hour on the embedded SmolLM2-135M-Instruct (quantized build,
de-quantized to float32) as both attacker and target, batched across conversations against one at a time.

    .venv/bin/python benchmarks/redteam_throughput.py                  # 8 conversations, 2 turns, 32 tokens
    .venv/bin/python benchmarks/redteam_throughput.py --conversations 4 --turns 1   # a smoke run

One conversation = a harmless-base opening turn, the plain target's reply, the attacker's next Human turn and
the target's second reply (``--turns``), exactly as ``alignlab redteam attack`` plays it (``pipeline._play_chunk``),
plus judge scoring of every assistant turn (``--score``, on by default). Both modes run in this one process on
the same model with no request cache, one torch thread; "batched" sends all conversations in one call per turn,
"sequential" one conversation per call. Writes ``benchmarks/out/redteam_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from alignlab.models.spec import load_model
from alignlab.redteam.pipeline import HARMLESS_BASE, RedteamConfig, Resources, _play_chunk, score_records
from alignlab.redteam.scoring import JudgeScorer
from alignlab.redteam.targets import Target

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
OUT = HERE / "out" / "redteam_throughput.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=8)
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--score", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from alignlab.redteam.attacks import from_harmless_base

    attacks, _ = from_harmless_base(DATA / HARMLESS_BASE, args.conversations)
    model = load_model("embedded", cache=False)
    res = Resources(lambda spec: model, {"embedded": model})
    config = RedteamConfig(targets=["plain"], turns=args.turns, max_new_tokens=args.max_new_tokens)
    target = Target("plain", "embedded")
    judge = JudgeScorer(model, "judge:embedded")
    _play_chunk(config, res, target, model, attacks[:1])  # warm-up (weights paged in, kernels chosen)

    results = {}
    for mode, chunk in (("batched", len(attacks)), ("sequential", 1)):
        start = time.perf_counter()
        records = []
        for i in range(0, len(attacks), chunk):
            convs = _play_chunk(config, res, target, model, attacks[i:i + chunk])
            for c in convs:
                c["target"] = target.label
            if args.score:
                score_records(judge, convs)
            records += convs
        seconds = time.perf_counter() - start
        results[mode] = {"seconds": round(seconds, 2), "conversations": len(records),
                         "conversations_per_hour": round(3600 * len(records) / seconds, 1),
                         "replies": [c["messages"][-1]["content"] for c in records]}
        print(f"{mode:>10}: {len(records)} conversations in {seconds:.1f} s = "
              f"{results[mode]['conversations_per_hour']:.0f} conversations/hour")
    speedup = results["sequential"]["seconds"] / results["batched"]["seconds"]
    same = results["batched"]["replies"] == results["sequential"]["replies"]
    print(f"batched is {speedup:.2f}x faster; identical replies in both modes: {same}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"args": vars(args), "results": results, "speedup": round(speedup, 3),
                               "identical_replies": same}, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
