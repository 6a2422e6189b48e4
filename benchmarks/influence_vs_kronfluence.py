"""EK-FAC influence: alignlab vs kronfluence 1.0.1, same model, data and settings, each library in its own process.

Default (CPU, methods-influence §4): a 12.6M-parameter Llama (8 layers, hidden 256, MLP 1024, vocab 8192, untied
embeddings), 256 training sequences x 128 tokens from a sparse Markov chain (8 successors per token), 8 queries =
copies of training sequences with 8 tokens replaced, the 24 MLP layers, sampled labels, relative damping 0.1 x
mean(Λ), full-rank pairwise scores, batch 16, one torch thread.
``--large`` (GPU): 162M Llama (hidden 768, 12 layers, MLP 3072, vocab 32000), 2048 x 512 tokens, 16 queries.

Labels: alignlab draws them with its inverse-CDF sampler; the kronfluence task samples them as kronfluence's
examples do (``torch.multinomial`` over the softmax, same per-row seeds), so the two fits see different draws of
the same distribution. ``--kronfluence-sampler alignlab`` gives kronfluence alignlab's very draws instead (the
score correlation then isolates the algorithms; kronfluence also gets the faster sampler).

Prints each phase's wall time, the end-to-end ratio, peak RSS (and peak GPU memory), and the Pearson correlation
of the two score matrices, against the targets (>= 1.5x faster end to end, no more peak memory, r >= 0.99).

    python benchmarks/influence_vs_kronfluence.py [--large] [--device cpu|cuda] [--sequences N] [--budget S]
        [--kronfluence-sampler multinomial|alignlab] [--head-cache-mib N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SMALL = {"vocab": 8192, "hidden": 256, "mlp": 1024, "layers": 8, "heads": 4, "sequences": 256, "length": 128,
         "queries": 8, "batch": 16, "query_batch": 8}
LARGE = {"vocab": 32000, "hidden": 768, "mlp": 3072, "layers": 12, "heads": 12, "sequences": 2048, "length": 512,
         "queries": 16, "batch": 16, "query_batch": 16}
PHASES = ("covariances", "eigendecomposition", "correction", "pairwise scores")
H200_KRONFLUENCE = {"covariances": 36.7, "eigendecomposition": 6.1, "correction": 49.0, "pairwise scores": 24.4}


def build(cfg: dict[str, Any], device: str) -> tuple[Any, list[list[int]], list[list[int]]]:
    """The seeded model, training sequences (sparse Markov chain) and near-copy queries."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=cfg["vocab"], hidden_size=cfg["hidden"], intermediate_size=cfg["mlp"],
                         num_hidden_layers=cfg["layers"], num_attention_heads=cfg["heads"],
                         num_key_value_heads=cfg["heads"], max_position_embeddings=cfg["length"],
                         tie_word_embeddings=False, attn_implementation="eager")
    model = LlamaForCausalLM(config).eval().to(device)
    rng = np.random.default_rng(0)
    n, length, vocab = cfg["sequences"], cfg["length"], cfg["vocab"]
    successors = rng.integers(0, vocab, size=(vocab, 8))
    seqs = np.empty((n, length), dtype=np.int64)
    seqs[:, 0] = rng.integers(vocab, size=n)
    picks = rng.integers(8, size=(n, length - 1))
    for t in range(length - 1):  # a sparse Markov chain: 8 possible successors per token
        seqs[:, t + 1] = successors[seqs[:, t], picks[:, t]]
    train = seqs.tolist()
    queries = []
    for row in rng.choice(n, size=cfg["queries"], replace=False):
        q = list(train[row])
        for pos in rng.choice(np.arange(1, length), size=8, replace=False):
            q[pos] = int(rng.integers(vocab))
        queries.append(q)
    return model, train, queries


def write_result(out: Path, timings: dict[str, float], cpu_timings: dict[str, float], scores: Any,
                 device: str) -> None:
    """A worker's result: wall and CPU seconds per phase (+ end to end), scores ``[Q, N]``, peak RSS and GPU memory."""
    import torch
    from forward_meter import peak_rss_mb

    gpu = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    out.write_text(json.dumps({"timings": timings, "cpu_timings": cpu_timings, "scores": scores.float().cpu().tolist(),
                               "peak_rss_mib": peak_rss_mb(), "peak_gpu_mib": gpu}))


def run_worker(name: str, cfg: dict[str, Any], device: str, timeout: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        cmd = [sys.executable, str(HERE / f"influence_worker_{name}.py"), json.dumps(cfg), device, str(out)]
        try:
            subprocess.run(cmd, check=True, env=env, timeout=timeout)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
            return {"error": str(err)}
        return json.loads(out.read_text())


def pearson(a: list[list[float]], b: list[list[float]]) -> float:
    from alignlab.metrics.stats import pearson_r

    return float(pearson_r(np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()))


def header(cfg: dict[str, Any], device: str, scaled: bool) -> str:
    note = " (SCALED DOWN from the issue's configuration)" if scaled else ""
    return (f"EK-FAC influence, {cfg['sequences']} x {cfg['length']} tokens{note}, {cfg['queries']} queries, "
            f"hidden {cfg['hidden']}, {cfg['layers']} layers, MLP {cfg['mlp']}, vocab {cfg['vocab']}, device {device}, "
            f"1 torch thread; kronfluence labels: {cfg.get('sampler', 'multinomial')}")


def one_side(cfg: dict[str, Any], name: str, result: dict[str, Any], device: str, scaled: bool) -> str:
    """The table when only one library finished (the other failed or ran out of budget)."""
    lines = [header(cfg, device, scaled), f"{'phase':<22}{name + ' wall s':>16}{'CPU s':>10}"]
    for phase in (*PHASES, "end to end"):
        lines.append(f"{phase:<22}{result['timings'][phase]:>16.2f}{result['cpu_timings'][phase]:>10.2f}")
    lines.append(f"{'peak RSS MiB':<22}{result['peak_rss_mib']:>16.0f}")
    if result.get("peak_gpu_mib") is not None:
        lines.append(f"{'peak GPU MiB':<22}{result['peak_gpu_mib']:>16.0f}")
    return "\n".join(lines)


def table(cfg: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any], device: str, scaled: bool) -> str:
    lines = [header(cfg, device, scaled),
             f"{'':<22}{'--- wall seconds ---':^37}{'--- process CPU seconds ---':^37}",
             f"{'phase':<22}{'alignlab':>12}{'kronfluence':>14}{'speed-up':>11}{'alignlab':>12}{'kronfluence':>14}"
             f"{'speed-up':>11}"]
    for phase in (*PHASES, "end to end"):
        a, b = ours["timings"][phase], theirs["timings"][phase]
        ca, cb = ours["cpu_timings"][phase], theirs["cpu_timings"][phase]
        lines.append(f"{phase:<22}{a:>12.2f}{b:>14.2f}{b / a:>10.2f}x{ca:>12.2f}{cb:>14.2f}{cb / ca:>10.2f}x")
    lines.append(f"{'peak RSS MiB':<22}{ours['peak_rss_mib']:>12.0f}{theirs['peak_rss_mib']:>15.0f}")
    if ours.get("peak_gpu_mib") is not None:
        lines.append(f"{'peak GPU MiB':<22}{ours['peak_gpu_mib']:>12.0f}{theirs['peak_gpu_mib']:>15.0f}")
    r = pearson(ours["scores"], theirs["scores"])
    top = np.argmax(ours["scores"], axis=1).tolist() == np.argmax(theirs["scores"], axis=1).tolist()
    speedup = theirs["timings"]["end to end"] / ours["timings"]["end to end"]
    cpu_speedup = theirs["cpu_timings"]["end to end"] / ours["cpu_timings"]["end to end"]
    mem_key = "peak_gpu_mib" if ours.get("peak_gpu_mib") is not None else "peak_rss_mib"
    lines += [f"score Pearson r {r:.6f}; same top-1 per query: {top}",
              f"targets: end to end >= 1.5x: {'PASS' if speedup >= 1.5 else 'FAIL'} ({speedup:.2f}x wall, "
              f"{cpu_speedup:.2f}x CPU); "
              f"peak memory <= kronfluence: {'PASS' if ours[mem_key] <= theirs[mem_key] else 'FAIL'}; "
              f"Pearson >= 0.99: {'PASS' if r >= 0.99 else 'FAIL'}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large", action="store_true", help="the GPU configuration (162M Llama, 2048 x 512)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda for --large, else cpu)")
    parser.add_argument("--sequences", type=int, default=None, help="override the number of training sequences")
    parser.add_argument("--length", type=int, default=None, help="override the tokens per sequence")
    parser.add_argument("--budget", type=int, default=7200,
                        help="seconds for both libraries: alignlab runs first with 45%%, kronfluence gets the rest")
    parser.add_argument("--head-cache-mib", type=int, default=None,
                        help="alignlab output-layer cache budget, FactorConfig.head_cache_mib (default: its default)")
    parser.add_argument("--kronfluence-sampler", choices=("multinomial", "alignlab"), default="multinomial",
                        help="how kronfluence's task draws labels (default: torch.multinomial, as its examples)")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    cfg = dict(LARGE if args.large else SMALL)
    full = (cfg["sequences"], cfg["length"])
    cfg["sequences"] = args.sequences or cfg["sequences"]
    cfg["length"] = args.length or cfg["length"]
    scaled = (cfg["sequences"], cfg["length"]) != full
    cfg["queries"] = min(cfg["queries"], cfg["sequences"])
    cfg["sampler"] = args.kronfluence_sampler
    if args.head_cache_mib is not None:
        cfg["head_cache_mib"] = args.head_cache_mib
    device = args.device or ("cuda" if args.large else "cpu")
    results, start = {}, time.monotonic()
    for name in ("alignlab", "kronfluence"):
        left = args.budget - (time.monotonic() - start)
        timeout = int(0.45 * args.budget) if name == "alignlab" else int(left) - 5
        print(f"running {name} (timeout {timeout} s) ...", file=sys.stderr, flush=True)
        results[name] = run_worker(name, cfg, device, max(timeout, 1))
        if "error" in results[name]:
            print(f"{name} failed: {results[name]['error']}", file=sys.stderr)
        else:
            print(f"{name}: " + ", ".join(f"{k} {v:.1f}s" for k, v in results[name]["timings"].items()),
                  file=sys.stderr, flush=True)
    if args.out:
        args.out.write_text(json.dumps({"config": cfg, "device": device, **results}, indent=1))
    ok = [name for name in results if "error" not in results[name]]
    if len(ok) == 2:
        print(table(cfg, results["alignlab"], results["kronfluence"], device, scaled))
    for name in ok if len(ok) == 1 else []:
        print(one_side(cfg, name, results[name], device, scaled))
    if args.large:
        print("kronfluence on an H200 (issue, 2048 x 512): " + ", ".join(f"{k} {v} s" for k, v in
              H200_KRONFLUENCE.items()) + ", 29 GB peak GPU memory")
    if len(ok) < 2:
        sys.exit(1)

if __name__ == "__main__":
    main()
