"""BBQ throughput of the fairness study on the embedded SmolLM2-135M-Instruct (the quantized build, de-quantized to
float32) on CPU: items/second under Q (one batched ``score`` call) and under Q+IF+CoT (one batched ``generate`` of
the reasoning, then one ``score``), with the CoT reasoning also generated one item per call, side by side, to show
what batching the samples buys.

    .venv/bin/python benchmarks/fairness_bbq.py                    # 32 Q items, 8 CoT items of 64 tokens, 1 thread
    .venv/bin/python benchmarks/fairness_bbq.py --cot-tokens 256   # the paper's reasoning length

The request cache is off, so every number is computed. Prompts are the study's own (``alignlab.fairness.bbq``),
the first questions of a seeded subset of the local categories. Writes ``benchmarks/out/fairness_bbq.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
OUT = HERE / "out" / "fairness_bbq.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=32, help="questions under Q")
    parser.add_argument("--cot-items", type=int, default=8, help="questions under Q+IF+CoT")
    parser.add_argument("--cot-tokens", type=int, default=64, help="sampled reasoning tokens (the paper: 256)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", default=str(DATA))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from alignlab.fairness.bbq import BBQConfig, dialogue, select
    from alignlab.fairness.interventions import CotSettings, ask
    from alignlab.models.spec import load_model

    os.environ.setdefault("ALIGNLAB_DATA", args.data)
    model = load_model("embedded", cache=False)
    config = BBQConfig(categories=["Age", "Disability_status", "Nationality", "Religion"], limit=args.items,
                       data=args.data)
    items, _, _ = select(config)
    items = items[::max(1, len(items) // args.items)][:args.items]  # spread over the categories
    cot = CotSettings(max_new_tokens=args.cot_tokens, seed=0)

    def timed(batches: list[list]) -> float:
        start = time.perf_counter()
        for batch in batches:
            ask(model, batch, "raw_hh", cot)
        return time.perf_counter() - start

    q_dialogues = [dialogue(i, "q") for i in items]
    cot_dialogues = [dialogue(i, "cot") for i in items[:args.cot_items]]
    results = {
        "q_batched": (len(q_dialogues), timed([q_dialogues])),
        "cot_batched": (len(cot_dialogues), timed([cot_dialogues])),
        "cot_one_at_a_time": (len(cot_dialogues), timed([[d] for d in cot_dialogues])),
    }
    rows = {name: {"items": n, "seconds": round(s, 2), "items_per_second": round(n / s, 3)}
            for name, (n, s) in results.items()}
    rows["cot_batching_speedup"] = round(rows["cot_batched"]["items_per_second"]
                                         / rows["cot_one_at_a_time"]["items_per_second"], 2)
    report = {"model": "embedded (SmolLM2-135M-Instruct, quantized build, float32)", "threads": args.threads,
              "cot_tokens": args.cot_tokens, "results": rows}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for name, row in rows.items():
        print(f"{name:>22}: {row}")
    print(f"written to {Path(OUT)}")


if __name__ == "__main__":
    main()
