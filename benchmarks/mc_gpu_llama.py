"""GPU mode of ``mc_scoring.py``: the MC workload, scaled up, through alignlab on a random-init ~1B Llama.

Needs only torch, transformers and alignlab (no lm-eval). The model is ``LlamaForCausalLM`` with hidden 2048,
16 layers, 32 heads (MHA), MLP 5632, vocabulary 49152 (the SmolLM2 tokenizer, so the questions tokenise
as on CPU), untied head: 1.02B parameters, in bfloat16. Reports

- effective tokens/s: tokens actually computed per second, and lm-eval-equivalent tokens per second (every
  (question, option) pair run in full, context included, as lm-eval's ``hf`` model does);
- model FLOP utilisation, forward only: 2 * (non-embedding parameters) * tokens computed, plus the LM head
  only at the rows whose logits are kept (attention scores not counted), over time over ``--peak-tflops``;
- a correctness check: on a few questions, alignlab's packed scores against plain one-sequence forwards,
  in float32.
"""

from __future__ import annotations

import argparse
import time

import torch
from forward_meter import ForwardMeter
from mc_questions import continuations, make_questions

CHECK_QUESTIONS = 8


def llama_config(tiny: bool):
    from transformers import LlamaConfig

    if tiny:  # smoke test of this code path on a CPU
        return LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                           intermediate_size=128, vocab_size=49152, max_position_embeddings=4096)
    return LlamaConfig(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=32,
                       intermediate_size=5632, vocab_size=49152, max_position_embeddings=4096,
                       tie_word_embeddings=False)


def build_model(tiny: bool, device: str, seed: int) -> torch.nn.Module:
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    with torch.device(device):
        model = LlamaForCausalLM(llama_config(tiny))
    return model.to(torch.bfloat16).eval()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@torch.no_grad()
def unpacked_logliks(model: torch.nn.Module, backend, items: list[dict]) -> list[list[float]]:
    """Reference: one plain forward per (context, option), summed continuation logprobs."""
    device = next(model.parameters()).device
    out = []
    for it in items:
        ctx = backend.encode(it["context"])
        row = []
        for cont in it["continuations"]:
            full = backend.encode(it["context"] + cont)
            assert full[:len(ctx)] == ctx, "token merge at the boundary: not expected for these questions"
            lp = model(torch.tensor([full], device=device)).logits[0].float().log_softmax(-1)
            target = torch.tensor(full[len(ctx):], device=device)
            row.append(lp[len(ctx) - 1:len(full) - 1].gather(-1, target[:, None]).sum().item())
        out.append(row)
    return out


def gpu_benchmark(args: argparse.Namespace) -> dict:
    from transformers import AutoTokenizer

    from alignlab.models.base import Model
    from alignlab.models.embedded import embedded_path
    from alignlab.models.hf import HFBackend
    from alignlab.models.types import ScoreRequest

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--gpu-llama-1b needs CUDA (or --device cpu --tiny-llama for a smoke test)")
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(embedded_path())
    model = build_model(args.tiny_llama, args.device, args.seed)
    name = "tiny random Llama" if args.tiny_llama else "random Llama ~1B"
    backend = HFBackend(model, tokenizer, spec=f"hf:<{name}>", weights_id=f"random-init-seed{args.seed}",
                        attention=args.attention,
                        **({"max_batch_tokens": args.max_batch_tokens} if args.max_batch_tokens else {}))
    lm = Model(backend, cache=None)
    load_s = time.perf_counter() - t_start

    prefix, questions = make_questions(args.gpu_questions, args.seed)
    items = [{"context": prefix + q.text(), "continuations": list(continuations(q))} for q in questions]
    requests = [ScoreRequest(it["context"], tuple(it["continuations"])) for it in items]
    pairs = [it["context"] + c for it in items for c in it["continuations"]]
    naive_tokens = sum(len(backend.encode(text)) - 1 for text in pairs)  # lm-eval feeds ctx+cont minus 1

    meter = ForwardMeter(model)
    lm.score(requests[:64])  # warm-up: kernels, allocator
    meter.reset()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    sync(args.device)
    t0 = time.perf_counter()
    results = lm.score(requests)
    sync(args.device)
    score_s = time.perf_counter() - t0
    stats = meter.as_dict()  # before the check below adds to it

    n_params = sum(p.numel() for p in model.parameters())
    n_embed = model.get_input_embeddings().weight.numel()
    n_head = model.get_output_embeddings().weight.numel()
    flops = 2 * (n_params - n_embed - n_head) * stats["tokens_computed"] + 2 * n_head * stats["logit_rows"]

    model.float()  # correctness check in fp32 on a few questions (the kept bf16 prefix cache is dropped)
    check_items = items[:CHECK_QUESTIONS]
    packed = [r.logprobs for r in lm.score(requests[:CHECK_QUESTIONS])]
    plain = unpacked_logliks(model, backend, check_items)
    check_diff = max(abs(a - b) for x, y in zip(packed, plain, strict=True)
                     for a, b in zip(x, y, strict=True))

    return {
        "config": {k: str(v) for k, v in vars(args).items()},
        "model": name, "parameters": n_params, "device": str(next(model.parameters()).device),
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "questions": len(items), "load_s": load_s, "score_s": score_s,
        "attention": backend.attention, "max_batch_tokens": backend.max_batch_tokens, "prefetch": backend.prefetch,
        "host_share": 1 - stats["forward_s"] / score_s,
        **stats,
        "tokens_lmeval_equivalent": naive_tokens,
        "tokens_per_s": stats["tokens_computed"] / score_s,
        "lmeval_equivalent_tokens_per_s": naive_tokens / score_s,
        "model_flops": flops,
        "mfu": flops / score_s / (args.peak_tflops * 1e12),
        "peak_gpu_mem_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "logliks_bf16": [r.logprobs for r in results],
        "check_fp32_max_abs_diff": check_diff,
    }


def print_gpu(r: dict) -> None:
    print(f"\nMC scoring on {r['gpu'] or r['device']}: {r['model']} ({r['parameters'] / 1e9:.3f}B params, "
          f"bf16), {r['questions']} questions x 4 options, alignlab only")
    rows = [
        ("attention / tokens per forward / prefetch", f"{r['attention']} / {r['max_batch_tokens']:,} / "
                                                      f"{r['prefetch']}"),
        ("scoring wall time (s)", f"{r['score_s']:.3f}"),
        ("  inside model.forward (s)", f"{r['forward_s']:.3f}  (outside: {r['host_share']:.0%} of wall)"),
        ("tokens computed", f"{r['tokens_computed']:,}  ({r['forward_calls']} forward calls)"),
        ("lm-eval-equivalent tokens", f"{r['tokens_lmeval_equivalent']:,}"),
        ("tokens computed / s", f"{r['tokens_per_s']:,.0f}"),
        ("lm-eval-equivalent tokens / s", f"{r['lmeval_equivalent_tokens_per_s']:,.0f}"),
        ("model FLOPs (forward)", f"{r['model_flops']:.3e}"),
        ("MFU", f"{r['mfu']:.1%}  (peak {r['config']['peak_tflops']} TFLOP/s)"),
        ("peak GPU memory (GiB)", f"{r['peak_gpu_mem_gb']:.2f}" if r["peak_gpu_mem_gb"] is not None else "-"),
        ("model build (s)", f"{r['load_s']:.1f}"),
        (f"fp32 packed vs unpacked, {CHECK_QUESTIONS} q", f"max |dlogL| {r['check_fp32_max_abs_diff']:.2e}"),
    ]
    width = max(len(label) for label, _ in rows) + 2
    for label, value in rows:
        print(label.ljust(width) + value)
