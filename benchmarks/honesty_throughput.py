"""Honesty throughput on the embedded model (SmolLM2-135M-Instruct, quantized build, float32, CPU or CUDA):

- P(IK) label generation: ``--questions`` arithmetic questions x ``--samples`` answers at T = 1 from the
  ``--shots``-shot prompt, as ``alignlab honesty pik`` draws them (``ptrue.sample_answers``): all questions in one
  batched ``generate`` call, against one call per question (the batching the study gives up without it);
- P(True) scoring: the zero-shot P(True) prompt of every (question, sample) pair scored in one ``score`` call
  (``ptrue.p_true``), against one call per prompt.

    .venv/bin/python benchmarks/honesty_throughput.py            # 8 questions x 30 samples, 1 torch thread
    .venv/bin/python benchmarks/honesty_throughput.py --quick    # 3 questions x 10 samples

Prints questions/second for each and the batched/unbatched ratio; writes ``benchmarks/out/honesty_throughput.json``.
No request cache: every number is computed.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent / "out" / "honesty_throughput.json"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--questions", type=int, default=8)
    p.add_argument("--samples", type=int, default=30, help="answers per question (paper: 30)")
    p.add_argument("--shots", type=int, default=10, help="worked examples in the prompt (paper: 10)")
    p.add_argument("--max-new-tokens", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="3 questions x 10 samples")
    p.add_argument("--no-baseline", action="store_true", help="skip the one-call-per-item baselines")
    return p.parse_args()


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    args = parse_args()
    if args.quick:
        args.questions, args.samples = 3, 10
    torch.set_num_threads(args.threads)
    from alignlab.honesty.prompts import p_true_prompt
    from alignlab.honesty.ptrue import p_true, sample_answers, split_shots
    from alignlab.honesty.questions import generate_arithmetic
    from alignlab.models.spec import load_model

    model = load_model("embedded", cache=False)
    shots, questions = split_shots(generate_arithmetic(args.questions + args.shots, seed=0, digits=2), args.shots)
    n = len(questions)

    answers, t_gen = timed(lambda: sample_answers(model, questions, shots, args.samples, 0, args.max_new_tokens))
    prompts = [p_true_prompt(q.question, s) for q, samples in zip(questions, answers, strict=True) for s in samples]
    scores, t_score = timed(lambda: p_true(model, prompts))
    result = {
        "device": str(next(model.backend.model.parameters()).device), "threads": args.threads,
        "platform": platform.platform(), "questions": n, "samples": args.samples, "shots": args.shots,
        "label_generation": {"seconds": t_gen, "questions_per_s": n / t_gen, "samples_per_s": n * args.samples / t_gen},
        "p_true_scoring": {"prompts": len(prompts), "seconds": t_score, "prompts_per_s": len(prompts) / t_score,
                           "questions_per_s": n / t_score},
    }
    if not args.no_baseline:
        one_by_one, t_gen1 = timed(lambda: [sample_answers(model, [q], shots, args.samples, 0, args.max_new_tokens)[0]
                                            for q in questions])
        assert one_by_one == answers, "a sample depends on its batch: generation is not batch-invariant"
        single, t_score1 = timed(lambda: [p_true(model, [p])[0] for p in prompts])
        gap = max(abs(a - b) for a, b in zip(single, scores, strict=True))
        result["label_generation"].update(unbatched_seconds=t_gen1, speedup=t_gen1 / t_gen)
        result["p_true_scoring"].update(unbatched_seconds=t_score1, speedup=t_score1 / t_score, max_abs_gap=gap)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    gen, sc = result["label_generation"], result["p_true_scoring"]
    print(f"P(IK) labels: {gen['questions_per_s']:.3f} questions/s ({gen['samples_per_s']:.1f} samples/s, "
          f"{n} questions x {args.samples} samples, {args.shots}-shot)"
          + (f"; {gen['speedup']:.2f}x one call per question" if "speedup" in gen else ""))
    print(f"P(True) scoring: {sc['questions_per_s']:.3f} questions/s ({sc['prompts_per_s']:.1f} prompts/s)"
          + (f"; {sc['speedup']:.2f}x one call per prompt, max |gap| {sc['max_abs_gap']:.2e}" if "speedup" in sc
             else ""))
    print(f"written: {OUT}")


if __name__ == "__main__":
    main()
