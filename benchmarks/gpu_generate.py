"""Generation throughput: alignlab's ``hf`` backend against one plain transformers ``generate`` call.

    python benchmarks/gpu_generate.py [--tiny-llama --device cpu] [--prompts 64] [--new-tokens 128] [--out F.json]

The same random-init ~1B Llama (bf16) as ``mc_scoring.py --gpu-llama-1b``; greedy decoding of ``--prompts``
questions of the MC workload for up to ``--new-tokens`` tokens (or EOS) on both sides. Prints new tokens per
second of each side and the share of identical texts.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from mc_gpu_llama import build_model, sync
from mc_questions import make_questions


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny-llama", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "gpu_generate.json")
    args = p.parse_args()
    from transformers import AutoTokenizer

    from alignlab.models.base import Model
    from alignlab.models.embedded import embedded_path
    from alignlab.models.hf import HFBackend
    from alignlab.models.types import GenerateParams, GenerateRequest

    tokenizer = AutoTokenizer.from_pretrained(embedded_path())
    model = build_model(args.tiny_llama, args.device, args.seed)
    _, questions = make_questions(args.prompts, args.seed)
    prompts = [q.text() for q in questions]
    lm = Model(HFBackend(model, tokenizer, spec="hf:<random llama>", weights_id="random"), cache=None)
    params = GenerateParams(max_new_tokens=args.new_tokens, temperature=0.0)
    lm.generate([GenerateRequest(prompts[0], GenerateParams(max_new_tokens=4))])  # warm-up
    sync(args.device)
    t0 = time.perf_counter()
    ours = [r.text for r in lm.generate([GenerateRequest(text, params) for text in prompts])]
    sync(args.device)
    ours_s = time.perf_counter() - t0

    tokenizer.padding_side = "left"
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    batch = tokenizer(prompts, return_tensors="pt", padding=True).to(args.device)
    sync(args.device)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=args.new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    sync(args.device)
    plain_s = time.perf_counter() - t0
    new = out[:, batch.input_ids.shape[1]:]
    theirs = tokenizer.batch_decode(new, skip_special_tokens=True)
    tokens_ours = sum(len(tokenizer(t, add_special_tokens=False).input_ids) for t in ours)
    tokens_plain = int((new != tokenizer.pad_token_id).sum())
    result = {"prompts": len(prompts), "new_tokens": args.new_tokens, "device": args.device,
              "alignlab_s": ours_s, "plain_s": plain_s, "alignlab_tokens_per_s": tokens_ours / ours_s,
              "plain_tokens_per_s": tokens_plain / plain_s,
              "same_text": sum(a.strip() == b.strip() for a, b in zip(ours, theirs, strict=True)) / len(prompts)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"generate {len(prompts)} x {args.new_tokens} tokens: alignlab {result['alignlab_tokens_per_s']:,.0f} "
          f"tok/s, transformers generate {result['plain_tokens_per_s']:,.0f} tok/s; same text "
          f"{result['same_text']:.0%} (bf16: batching can flip near-ties)")


if __name__ == "__main__":
    main()
