"""vLLM backend vs the hf backend on the embedded model: same predictions, how close the log-probs, how fast.

    python benchmarks/vllm_agreement.py            # from the repo root, with .venv active or as .venv/bin/python

1. ``alignlab bigbench hhh_alignment`` and ``alignlab behaviors eval <persona file>`` run twice, ``--model embedded``
   (this venv) and ``--model vllm:<embedded folder>`` (``benchmarks/.venv-vllm``, built by ``vllm_venv.py``);
   per example: identical prediction (BIG-bench ``prediction``, persona ``chosen``), max |Δ log p| over every
   scored choice/option.
2. Generation throughput: the same greedy prompts through ``Model.generate`` in each venv, tokens per wall second
   and per CPU second of the process (the engine runs in-process on a CPU), after one warm-up call.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from vllm_venv import probe, venv_python  # noqa: E402

PREDICTION = {"bigbench": "prediction", "behaviors": "chosen"}
LOGPROBS = {"bigbench": "absolute_log_probs", "behaviors": "logprobs"}


def alignlab(python: Path, args: list[str], out: Path) -> tuple[Path, float]:
    """Run ``python -m alignlab.cli ARGS --out OUT --no-cache``; the run directory and the wall seconds."""
    env = {**os.environ, "ALIGNLAB_DATA": os.environ.get("ALIGNLAB_DATA", str(REPO.parent / "shared" / "data")),
           "VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", f"0-{os.cpu_count() - 1}")}
    start = time.perf_counter()
    cmd = [str(python), "-m", "alignlab.cli", "--threads", "1", *args, "--out", str(out), "--no-cache"]
    print("+", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return sorted(out.iterdir(), key=lambda p: p.stat().st_mtime)[-1], time.perf_counter() - start


def samples(run: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines() if line.strip()]
    return {row["id"]: row for row in rows if "id" in row}


def compare(section: str, hf_run: Path, vllm_run: Path) -> dict:
    a, b = samples(hf_run), samples(vllm_run)
    ids = sorted(set(a) & set(b))
    same = sum(a[i][PREDICTION[section]] == b[i][PREDICTION[section]] for i in ids)
    deltas = [abs(x - y) for i in ids
              for x, y in zip(a[i][LOGPROBS[section]], b[i][LOGPROBS[section]], strict=True)]
    return {"examples": len(ids), "same_prediction": same, "max_abs_delta_logp": max(deltas, default=0.0)}


def prompts(persona: Path, count: int) -> list[str]:
    rows = [json.loads(line) for line in persona.read_text().splitlines() if line.strip()][:count]
    return [f"\n\nHuman: {row['question']}\n\nAssistant:" for row in rows]


def worker(spec: str, texts: list[str], tokens: int) -> dict:
    """Greedy ``Model.generate`` of ``texts`` (after a warm-up); run inside the venv under test."""
    import torch

    from alignlab.models import GenerateParams, GenerateRequest
    from alignlab.models.spec import load_model

    torch.set_num_threads(1)
    model = load_model(spec, cache=False)
    model.generate([GenerateRequest(texts[0], GenerateParams(max_new_tokens=4))])
    requests = [GenerateRequest(t, GenerateParams(max_new_tokens=tokens)) for t in texts]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, wall0 = usage.ru_utime + usage.ru_stime, time.perf_counter()
    results = model.generate(requests)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu, wall = usage.ru_utime + usage.ru_stime - cpu0, time.perf_counter() - wall0
    tok = model.backend.tokenizer
    count = sum(len(tok(r.text, add_special_tokens=False).input_ids) for r in results)
    return {"spec": spec, "tokens": count, "wall_s": wall, "cpu_s": cpu, "tokens_per_s": count / wall,
            "tokens_per_cpu_s": count / cpu, "texts": [r.text for r in results]}


def throughput(python: Path, spec: str, texts: list[str], tokens: int) -> dict:
    env = {**os.environ, "VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND",
                                                                     f"0-{os.cpu_count() - 1}")}
    payload = json.dumps({"spec": spec, "texts": texts, "tokens": tokens})
    done = subprocess.run([str(python), __file__, "--worker"], input=payload, env=env, capture_output=True,
                          text=True, cwd=REPO)
    if done.returncode:
        sys.exit(f"generation worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=40, help="examples per study (BIG-bench, persona)")
    parser.add_argument("--persona", default="persona/desire-for-acquiring-power")
    parser.add_argument("--prompts", type=int, default=16, help="generation prompts")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per generation prompt")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "vllm")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        job = json.loads(sys.stdin.read())
        print(json.dumps(worker(job["spec"], job["texts"], job["tokens"])))
        return
    versions = probe()
    if versions is None:
        sys.exit("benchmarks/.venv-vllm is missing or broken: build it with `python benchmarks/vllm_venv.py` (~16 min)")
    from alignlab.models.embedded import embedded_path

    folder = embedded_path()
    backends = {"hf": (Path(sys.executable), "embedded"), "vllm": (venv_python(), f"vllm:{folder}")}
    studies = {"bigbench": ["bigbench", "hhh_alignment", "--limit", str(args.limit)],
               "behaviors": ["behaviors", "eval", args.persona, "--limit", str(args.limit)]}
    report: dict = {"vllm_venv": versions}
    for section, study in studies.items():
        runs = {}
        for name, (python, spec) in backends.items():
            runs[name], seconds = alignlab(python, [*study, "--model", spec], args.out / section / name)
            report[f"{section}_{name}_wall_s"] = round(seconds, 1)
        report[section] = compare(section, runs["hf"], runs["vllm"])
        print(section, json.dumps(report[section]), flush=True)
    persona = REPO.parent / "shared" / "data" / "evals" / f"{args.persona}.jsonl"
    texts = prompts(persona, args.prompts)
    gen = {name: throughput(python, spec, texts, args.tokens) for name, (python, spec) in backends.items()}
    report["generation"] = {name: {k: v for k, v in g.items() if k != "texts"} for name, g in gen.items()}
    report["generation"]["same_greedy_text"] = sum(x == y for x, y in zip(gen["hf"]["texts"], gen["vllm"]["texts"],
                                                                           strict=True))
    print(json.dumps(report, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
