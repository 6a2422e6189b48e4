"""lm-evaluation-harness ``hf`` on the GPU MC workload of ``mc_scoring.py --gpu-llama-1b``, in the same run.

    LMEVAL_PATH=/folder/with/lm_eval python benchmarks/gpu_lmeval.py OUT/mc_scoring_gpu.json OUT/lmeval_gpu.json

Rebuilds the same random-init ~1B Llama (same seed, bf16), saves it with the SmolLM2 tokenizer, runs
``HFLM(...).loglikelihood`` on one ``Instance`` per (question, option) and compares its argmax per question with
alignlab's (read from the first JSON). Prints questions/s of both and the agreement; writes the second JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from mc_gpu_llama import build_model
from mc_questions import continuations, make_questions


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("alignlab_json", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--batch-size", default="64", help="HFLM batch_size (an int or 'auto')")
    args = p.parse_args()
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoTokenizer

    from alignlab.models.embedded import embedded_path

    ours = json.loads(args.alignlab_json.read_text())
    config = ours["config"]
    tiny, device, seed = config["tiny_llama"] == "True", config["device"], int(config["seed"])
    with tempfile.TemporaryDirectory() as folder:
        build_model(tiny, device, seed).save_pretrained(folder)
        AutoTokenizer.from_pretrained(embedded_path()).save_pretrained(folder)
        t0 = time.perf_counter()
        lm = HFLM(pretrained=folder, dtype="bfloat16", device=device, batch_size=args.batch_size)
        load_s = time.perf_counter() - t0
    prefix, questions = make_questions(ours["questions"], seed)
    items = [(prefix + q.text(), list(continuations(q))) for q in questions]
    requests = [Instance(request_type="loglikelihood", doc={}, arguments=(ctx, c), idx=i)
                for i, (ctx, c) in enumerate((ctx, c) for ctx, conts in items for c in conts)]
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    results = iter(lm.loglikelihood(requests, disable_tqdm=True))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    score_s = time.perf_counter() - t0
    theirs = [[float(next(results)[0]) for _ in conts] for _, conts in items]
    agree = sum(max(range(len(a)), key=a.__getitem__) == max(range(len(b)), key=b.__getitem__)
                for a, b in zip(ours["logliks_bf16"], theirs, strict=True))
    out = {"questions": len(items), "lmeval_load_s": load_s, "lmeval_score_s": score_s,
           "lmeval_questions_per_s": len(items) / score_s, "alignlab_questions_per_s": len(items) / ours["score_s"],
           "speedup": score_s / ours["score_s"], "same_prediction": agree / len(items),
           "max_abs_dlogl": max(abs(x - y) for a, b in zip(ours["logliks_bf16"], theirs, strict=True)
                                for x, y in zip(a, b, strict=True))}
    args.out.write_text(json.dumps(out, indent=1))
    print(f"lm-eval hf: {out['lmeval_questions_per_s']:.1f} q/s, alignlab {out['alignlab_questions_per_s']:.1f} q/s "
          f"({out['speedup']:.1f}x); same prediction {out['same_prediction']:.1%}, "
          f"max |dlogL| {out['max_abs_dlogl']:.3f} (bf16, different batching)")


if __name__ == "__main__":
    main()
