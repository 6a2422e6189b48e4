"""Multiple-choice scoring: alignlab's ``hf`` backend against lm-evaluation-harness's ``hf`` model.

    .venv/bin/python benchmarks/mc_scoring.py            # 200 questions, 1 torch thread, CPU
    .venv/bin/python benchmarks/mc_scoring.py --quick    # 20 questions
    .venv/bin/python benchmarks/mc_scoring.py --gpu-llama-1b   # alignlab only, random ~1B Llama, bf16, CUDA

Workload: four-option questions (answers are 1-4 word phrases scored as continuations) behind one shared
five-shot prefix of ~280 tokens, made by ``mc_questions.py`` from a fixed seed. Model: the embedded
SmolLM2-135M-Instruct in float32. Each side runs in its own process with the same number of torch threads:

- alignlab: ``HFBackend.from_pretrained(embedded_path(), dtype=...)``, ``Model(backend, cache=None)`` and one
  ``model.score([...])`` over all questions (``mc_worker_alignlab.py``), in float32 and again in bfloat16;
- lm-eval: ``HFLM(pretrained=<embedded path>, dtype="float32").loglikelihood`` on one ``Instance`` per
  (question, option) (``mc_worker_lmeval.py``), inside ``benchmarks/.venv-lmeval`` (made on first use).

Prints a table (scoring time, whole-process time, speed-up, agreement of predictions and log-likelihoods,
tokens computed, bf16 drift, peak RSS) and writes everything to ``benchmarks/out/mc_scoring.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mc_questions import continuations, make_questions

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "mc_scoring.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-questions", type=int, default=200, help="questions on CPU (default 200)")
    p.add_argument("--quick", action="store_true", help="20 questions (a smoke run of a couple of minutes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of every process (default 1)")
    p.add_argument("--seed", type=int, default=0, help="question generator seed (default 0)")
    p.add_argument("--lmeval-batch-size", type=int, default=1,
                   help="HFLM batch_size (default 1: its own default, and its fastest on this CPU)")
    p.add_argument("--no-lmeval", action="store_true", help="run the alignlab side only")
    p.add_argument("--out", type=Path, default=OUT,
                   help="JSON results (default out/mc_scoring.json; out/mc_scoring_gpu.json in GPU mode)")
    p.add_argument("--max-batch-tokens", type=int, default=None,
                   help="alignlab's row budget (HFBackend max_batch_tokens; default: the backend's)")
    g = p.add_argument_group("GPU mode (alignlab only; needs just torch, transformers and alignlab)")
    g.add_argument("--gpu-llama-1b", action="store_true", help="random-init ~1.02B Llama in bf16 on CUDA")
    g.add_argument("--gpu-questions", type=int, default=2000, help="questions in GPU mode (default 2000)")
    g.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak TFLOP/s (989: H100)")
    g.add_argument("--device", default="cuda", help="GPU mode device (default cuda)")
    g.add_argument("--tiny-llama", action="store_true", help="GPU mode, 2-layer model (smoke test on CPU)")
    g.add_argument("--attention", default="auto", choices=("auto", "flex", "dense"),
                   help="HFBackend attention: auto = FlexAttention block masks on CUDA, dense masks on CPU")
    args = p.parse_args(argv)
    if args.quick:
        args.n_questions, args.gpu_questions = 20, 200
    return args


# -- running the two sides ---------------------------------------------------------------------------
def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_worker(python: Path | str, script: str, job: dict, threads: int) -> dict:
    """Run one side in a fresh process; its result JSON plus ``process_s``, the process's whole wall time."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        job_path, out_path = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job_path.write_text(json.dumps(job))
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        proc = subprocess.run([str(python), str(HERE / script), str(job_path), str(out_path)], env=env,
                              capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{script} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        return {**json.loads(out_path.read_text()), "process_s": elapsed,
                "loadavg_1min": [load_before, os.getloadavg()[0]]}


def argmax(row: list[float]) -> int:
    return max(range(len(row)), key=row.__getitem__)


def compare(a: list[list[float]], b: list[list[float]]) -> dict:
    """Per-question argmax agreement and the largest log-likelihood gap between two sides."""
    changed = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if argmax(x) != argmax(y)]
    diff = max(abs(u - v) for x, y in zip(a, b, strict=True) for u, v in zip(x, y, strict=True))
    return {"identical_predictions": not changed, "changed": changed,
            "changed_fraction": len(changed) / len(a), "max_abs_diff": diff}


def accuracy(logliks: list[list[float]], answers: list[int]) -> float:
    return sum(argmax(r) == a for r, a in zip(logliks, answers, strict=True)) / len(answers)


def cpu_benchmark(args: argparse.Namespace) -> dict:
    from alignlab.models.embedded import embedded_path

    model_path = str(embedded_path())  # converts the GGUF on first use, before any timing
    prefix, questions = make_questions(args.n_questions, args.seed)
    items = [{"context": prefix + q.text(), "continuations": list(continuations(q))} for q in questions]
    answers = [q.answer for q in questions]
    base = {"model": model_path, "threads": args.threads, "questions": items,
            "max_batch_tokens": args.max_batch_tokens}
    alignlab = sys.executable, "mc_worker_alignlab.py"

    sides: dict[str, dict] = {}
    log(f"alignlab float32: {len(items)} questions, {args.threads} thread(s)")
    sides["alignlab_fp32"] = run_worker(*alignlab, {**base, "dtype": "float32"}, args.threads)
    log("alignlab bfloat16")
    sides["alignlab_bf16"] = run_worker(*alignlab, {**base, "dtype": "bfloat16"}, args.threads)
    if not args.no_lmeval:
        from lmeval_venv import ensure_venv

        python = ensure_venv(log=log)
        log(f"lm-eval HFLM float32, batch_size {args.lmeval_batch_size} (the slow side)")
        job = {**base, "batch_size": args.lmeval_batch_size}
        sides["lmeval"] = run_worker(python, "mc_worker_lmeval.py", job, args.threads)

    fp32 = sides["alignlab_fp32"]["logliks"]
    result = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "prefix_chars": len(prefix),
        "answers": answers,
        "sides": sides,
        "accuracy": {name: accuracy(s["logliks"], answers) for name, s in sides.items()},
        "bf16_vs_fp32": compare(fp32, sides["alignlab_bf16"]["logliks"]),
    }
    if "lmeval" in sides:
        result["alignlab_vs_lmeval"] = compare(fp32, sides["lmeval"]["logliks"])
        result["speedup_scoring"] = sides["lmeval"]["score_s"] / sides["alignlab_fp32"]["score_s"]
        result["speedup_scoring_cpu"] = sides["lmeval"]["score_cpu_s"] / sides["alignlab_fp32"]["score_cpu_s"]
        result["speedup_process"] = sides["lmeval"]["process_s"] / sides["alignlab_fp32"]["process_s"]
    return result


# -- report ------------------------------------------------------------------------------------------
def print_table(r: dict) -> None:
    s = r["sides"]
    names = [n for n in ("alignlab_fp32", "alignlab_bf16", "lmeval") if n in s]
    heads = {"alignlab_fp32": "alignlab fp32", "alignlab_bf16": "alignlab bf16", "lmeval": "lm-eval fp32"}
    n_q = len(r["answers"])
    rows: list[tuple[str, list[str]]] = [
        ("scoring wall time (s)", [f"{s[n]['score_s']:.2f}" for n in names]),
        ("scoring CPU time (s)", [f"{s[n]['score_cpu_s']:.2f}" for n in names]),
        ("  inside model.forward (s)", [f"{s[n]['forward_s']:.2f}" for n in names]),
        ("whole process (s, incl. load)", [f"{s[n]['process_s']:.2f}" for n in names]),
        ("  of which load (s)", [f"{s[n]['load_s']:.2f}" for n in names]),
        ("tokens computed", [f"{s[n]['tokens_computed']:,}" for n in names]),
        ("  per question", [f"{s[n]['tokens_computed'] / n_q:.1f}" for n in names]),
        ("logit rows (LM head)", [f"{s[n]['logit_rows']:,}" for n in names]),
        ("forward calls", [str(s[n]["forward_calls"]) for n in names]),
        ("scoring ms / question", [f"{1000 * s[n]['score_s'] / n_q:.1f}" for n in names]),
        ("peak RSS (MB)", [f"{s[n]['peak_rss_mb']:.0f}" for n in names]),
        ("  RSS after load (MB)", [f"{s[n]['rss_after_load_mb']:.0f}" for n in names]),
        ("accuracy", [f"{r['accuracy'][n]:.3f}" for n in names]),
        ("load average before/after", ["{:.1f}/{:.1f}".format(*s[n]["loadavg_1min"]) for n in names]),
    ]
    width = max(len(label) for label, _ in rows) + 2
    print(f"\nMC scoring, {n_q} questions x 4 options, SmolLM2-135M-Instruct on CPU, "
          f"{r['config']['threads']} torch thread(s)")
    print("".ljust(width) + "".join(heads[n].rjust(15) for n in names))
    for label, cells in rows:
        print(label.ljust(width) + "".join(c.rjust(15) for c in cells))
    print()
    if "lmeval" in s:
        cmp = r["alignlab_vs_lmeval"]
        print(f"speed-up, scoring only          {r['speedup_scoring']:.1f}x   (target >= 10x); "
              f"in CPU time {r['speedup_scoring_cpu']:.1f}x")
        print(f"speed-up, whole process         {r['speedup_process']:.1f}x")
        print(f"lm-eval tokens without padding  {s['lmeval']['tokens_unpadded']:,}")
        print(f"identical predictions (argmax)  {cmp['identical_predictions']}"
              + (f"  ({len(cmp['changed'])} differ: {cmp['changed'][:10]})" if cmp["changed"] else ""))
        print(f"max |logL alignlab - lm-eval|   {cmp['max_abs_diff']:.2e}   (target < 1e-4, fp32)")
    busiest = max(max(s[n]["loadavg_1min"]) for n in names)
    if busiest > r["machine"]["cores"]:
        print(f"note: load average reached {busiest:.1f} on {r['machine']['cores']} cores: other processes "
              "competed for the CPU, so wall times are inflated; CPU times are the steadier comparison")
    bf = r["bf16_vs_fp32"]
    print(f"bf16 vs fp32 (alignlab)         {bf['changed_fraction']:.1%} answers changed, "
          f"max |dlogL| {bf['max_abs_diff']:.3f}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.gpu_llama_1b:
        from mc_gpu_llama import gpu_benchmark, print_gpu

        result = gpu_benchmark(args)
        print_gpu(result)
    else:
        result = cpu_benchmark(args)
        print_table(result)
    if args.gpu_llama_1b and args.out == OUT:
        args.out = OUT.with_name("mc_scoring_gpu.json")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
