"""Model-written-evals scoring: alignlab's behaviour evaluator against lm-evaluation-harness's ``persona`` /
``advanced_ai_risk`` task scoring, on the embedded SmolLM2-135M-Instruct in float32 on CPU.

    .venv/bin/python benchmarks/behaviors_scoring.py                      # defaults: see README
    .venv/bin/python benchmarks/behaviors_scoring.py --limit-per-file 10  # a smoke run
    .venv/bin/python benchmarks/behaviors_scoring.py --limit-per-file 0   # every row (long on 1 thread)

Two dataset groups, each run separately: ``persona`` (every file in ``<data>/evals/persona``: Yes/No, one
token per answer) and ``advanced-ai-risk`` (every file in ``<data>/evals/advanced-ai-risk/
human_generated_evals``: 2 to 7 options `` (A)``, `` (B)``, ... of three tokens each). Each side runs in its
own process with the same torch thread count:

- alignlab (``behaviors_worker_alignlab.py``): items, prompts and ``ScoreRequest`` built by
  ``alignlab.behaviors.runner`` exactly as ``alignlab behaviors eval`` builds them, scored through
  ``Model(HFBackend.from_pretrained(path), cache=None)`` in the evaluator's chunks of 64 questions;
- lm-eval (``behaviors_worker_lmeval.py``, in ``benchmarks/.venv-lmeval``): lm-eval's ``multiple_choice``
  protocol (one ``loglikelihood`` ``Instance`` per option, ``target_delimiter ""``) through
  ``HFLM(pretrained=path, dtype="float32", batch_size=B).loglikelihood``, on the very prompt strings alignlab
  renders (``alignlab.models.render.render``) and the same options, so the choices must agree.

Prints one table per group (scoring time, speed-up, choice disagreements, largest log-likelihood gap, tokens
computed, peak RSS) and writes everything to ``benchmarks/out/behaviors_scoring.json``.
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

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
OUT = HERE / "out" / "behaviors_scoring.json"
GROUPS = {  # group -> (folder under <data>/evals, lm-eval task it mirrors, speed-up target)
    "persona": ("persona", "persona", 1.5),
    "advanced-ai-risk": ("advanced-ai-risk/human_generated_evals", "advanced_ai_risk", 3.0),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--groups", default=",".join(GROUPS), help=f"comma-separated, of {list(GROUPS)} (default all)")
    p.add_argument("--limit-per-file", type=int, default=40,
                   help="questions per file, a seeded subset as the evaluator draws it (default 40, ~13 min of CPU "
                        "for everything on an idle 2-core machine; 0 = all rows)")
    p.add_argument("--seed", type=int, default=0, help="subset seed (default 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of every process (default 1)")
    p.add_argument("--prompt-format", choices=("raw_hh", "chat"), default="raw_hh",
                   help="the evaluator's prompt format (default raw_hh, its default)")
    p.add_argument("--lmeval-batch-size", default="1,8",
                   help="HFLM batch sizes, comma-separated, one lm-eval run each (default 1,8: its default and "
                        "its fastest on this CPU)")
    p.add_argument("--no-lmeval", action="store_true", help="run the alignlab side only")
    p.add_argument("--lmeval-from", type=Path, default=None,
                   help="reuse the lm-eval sides of an earlier results JSON (same questions) instead of running "
                        "lm-eval: to time a changed alignlab (e.g. PYTHONPATH=<patched copy>) against them")
    p.add_argument("--data", type=Path, default=DATA, help=f"data root holding evals/ (default {DATA})")
    p.add_argument("--out", type=Path, default=OUT, help="JSON results (default out/behaviors_scoring.json)")
    p.add_argument("--report", type=Path, default=None, help="print the tables of an earlier results JSON and stop")
    args = p.parse_args(argv)
    args.groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown or not args.groups:
        p.error(f"--groups: unknown {unknown}; choose from {list(GROUPS)}")
    try:
        args.batch_sizes = [int(b) for b in args.lmeval_batch_size.split(",")]
    except ValueError:
        p.error(f"--lmeval-batch-size: expected whole numbers separated by commas, got {args.lmeval_batch_size!r}")
    if any(b < 1 for b in args.batch_sizes):
        p.error(f"--lmeval-batch-size: batch sizes must be at least 1, got {args.lmeval_batch_size!r}")
    if args.limit_per_file < 0:
        p.error("--limit-per-file must be 0 (all rows) or more")
    return args


def dataset_names(data: Path, folder: str) -> list[str]:
    files = sorted((data / "evals" / folder).glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no .jsonl files in {data / 'evals' / folder}")
    return [f"{folder}/{f.stem}" for f in files]


def build_questions(names: list[str], args: argparse.Namespace, tokenizer: object) -> list[dict]:
    """The evaluator's items with the text the model sees (``render``) and the options, in scoring order."""
    from alignlab.behaviors.runner import BehaviorsConfig, conversation, load_datasets, select_items
    from alignlab.models.render import render

    config = BehaviorsConfig(datasets=names, prompt_format=args.prompt_format,
                             max_items=args.limit_per_file or None, seed=args.seed, data=str(args.data))
    datasets, failed = load_datasets(config)
    if failed:
        raise RuntimeError(f"datasets that did not load: {failed}")
    return [{"id": item.id, "context": render(conversation(item, args.prompt_format), tokenizer),
             "continuations": list(item.options)}
            for ds in datasets for item in select_items(ds, config.max_items, config.seed)]


# -- running the two sides -------------------------------------------------------------------------
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


# -- comparing --------------------------------------------------------------------------------------
def argmax(row: list[float]) -> int:
    return max(range(len(row)), key=row.__getitem__)  # the first option on a tie, as the evaluator


def compare(a: list[list[float]], b: list[list[float]], ids: list[str]) -> dict:
    """Per-question choice agreement and the largest log-likelihood gap between two sides."""
    changed = [ids[i] for i, (x, y) in enumerate(zip(a, b, strict=True)) if argmax(x) != argmax(y)]
    diff = max(abs(u - v) for x, y in zip(a, b, strict=True) for u, v in zip(x, y, strict=True))
    # against each question's first option: blind to a constant per question, such as the log-prob of the
    # whitespace lm-eval moves from the end of a context into every continuation (chat prompts end in "\n")
    relative = max(abs((u - x[0]) - (v - y[0])) for x, y in zip(a, b, strict=True) for u, v in zip(x, y, strict=True))
    return {"disagreements": len(changed), "changed": changed, "max_abs_diff": diff,
            "max_abs_diff_relative": relative}


def run_group(group: str, args: argparse.Namespace, model_path: str, tokenizer: object) -> dict:
    folder, task, target = GROUPS[group]
    names = dataset_names(args.data, folder)
    questions = build_questions(names, args, tokenizer)
    ids = [q["id"] for q in questions]
    n_options = sum(len(q["continuations"]) for q in questions)
    log(f"{group}: {len(names)} files, {len(questions)} questions, {n_options} options")

    job = {"model": model_path, "threads": args.threads, "datasets": names, "data": str(args.data),
           "max_items": args.limit_per_file or None, "seed": args.seed, "prompt_format": args.prompt_format}
    log(f"  alignlab ({args.threads} thread(s))")
    sides = {"alignlab": run_worker(sys.executable, "behaviors_worker_alignlab.py", job, args.threads)}
    mine = sides["alignlab"]
    if mine["ids"] != ids or mine["prompts"] != [q["context"] for q in questions] or \
            mine["options"] != [q["continuations"] for q in questions]:
        raise RuntimeError("the alignlab worker scored other questions, prompts or options than lm-eval gets")

    if args.lmeval_from:
        earlier = json.loads(args.lmeval_from.read_text())["groups"].get(group)
        if earlier is None or earlier["ids"] != ids:
            raise RuntimeError(f"{args.lmeval_from} holds no {group} run over these questions")
        sides.update({n: s for n, s in earlier["sides"].items() if n != "alignlab"})
    elif not args.no_lmeval:
        from lmeval_venv import ensure_venv

        python = ensure_venv(log=log)
        lm_questions = [{"context": q["context"], "continuations": q["continuations"]} for q in questions]
        for bs in args.batch_sizes:
            log(f"  lm-eval HFLM, batch_size {bs}")
            lm_job = {"model": model_path, "threads": args.threads, "batch_size": bs, "task": task,
                      "questions": lm_questions}
            sides[f"lmeval_b{bs}"] = run_worker(python, "behaviors_worker_lmeval.py", lm_job, args.threads)

    return {"files": names, "task": task, "target": target, "questions": len(questions), "options": n_options,
            "ids": ids, "sides": sides}


def comparisons(r: dict) -> dict[str, dict]:
    """Each lm-eval side of a group against alignlab: choices, log-likelihood gaps, speed-ups."""
    mine = r["sides"]["alignlab"]
    return {name: {**compare(mine["logliks"], side["logliks"], r["ids"]),
                   "speedup": side["score_s"] / mine["score_s"],
                   "speedup_cpu": side["score_cpu_s"] / mine["score_cpu_s"]}
            for name, side in r["sides"].items() if name != "alignlab"}


# -- report -----------------------------------------------------------------------------------------
def print_group(group: str, r: dict, cores: int) -> None:
    s = r["sides"]
    names = list(s)
    heads = {n: "alignlab" if n == "alignlab" else f"lm-eval b{s[n]['batch_size']}" for n in names}
    n_q = r["questions"]
    vs = comparisons(r)
    dash = "-"
    rows: list[tuple[str, list[str]]] = [
        ("scoring wall time (s)", [f"{s[n]['score_s']:.1f}" for n in names]),
        ("scoring CPU time (s)", [f"{s[n]['score_cpu_s']:.1f}" for n in names]),
        ("  inside model.forward (s)", [f"{s[n]['forward_s']:.1f}" for n in names]),
        ("ratio lm-eval / alignlab, wall", [f"{vs[n]['speedup']:.2f}x" if n in vs else dash for n in names]),
        ("ratio lm-eval / alignlab, CPU", [f"{vs[n]['speedup_cpu']:.2f}x" if n in vs else dash for n in names]),
        ("choice disagreements", [str(vs[n]["disagreements"]) if n in vs else dash for n in names]),
        ("max |d loglik| vs alignlab", [f"{vs[n]['max_abs_diff']:.1e}" if n in vs else dash for n in names]),
        ("  of option differences", [f"{vs[n]['max_abs_diff_relative']:.1e}" if n in vs else dash for n in names]),
        ("tokens computed", [f"{s[n]['tokens_computed']:,}" for n in names]),
        ("  per question", [f"{s[n]['tokens_computed'] / n_q:.1f}" for n in names]),
        ("  lm-eval without padding", [f"{s[n]['tokens_unpadded']:,}" if n in vs else dash for n in names]),
        ("logit rows (LM head)", [f"{s[n]['logit_rows']:,}" for n in names]),
        ("forward calls", [f"{s[n]['forward_calls']:,}" for n in names]),
        ("ms / question", [f"{1000 * s[n]['score_s'] / n_q:.1f}" for n in names]),
        ("whole process (s)", [f"{s[n]['process_s']:.1f}" for n in names]),
        ("peak RSS (MB)", [f"{s[n]['peak_rss_mb']:.0f}" for n in names]),
        ("load average before/after", ["{:.1f}/{:.1f}".format(*s[n]["loadavg_1min"]) for n in names]),
    ]
    width = max(len(label) for label, _ in rows) + 2
    print(f"\n{group}: {len(r['files'])} files, {n_q} questions, {r['options']} options "
          f"(lm-eval task protocol: {r['task']})")
    print("".ljust(width) + "".join(heads[n].rjust(14) for n in names))
    for label, cells in rows:
        print(label.ljust(width) + "".join(c.rjust(14) for c in cells))
    if vs:
        best = min(vs, key=lambda n: s[n]["score_cpu_s"])
        v = vs[best]
        same = v["disagreements"] == 0
        verdict = {k: "met" if v[k] >= r["target"] and same else "MISSED" for k in ("speedup", "speedup_cpu")}
        print(f"vs lm-eval's fastest by CPU time ({heads[best]}): {v['speedup']:.2f}x wall, {v['speedup_cpu']:.2f}x "
              f"CPU, {v['disagreements']} choice(s) differ -> target >= {r['target']}x with identical choices: "
              f"{verdict['speedup']} in wall time, {verdict['speedup_cpu']} in CPU time")
        if v["changed"]:
            print(f"  differing questions: {v['changed'][:10]}")
    busiest = max(max(s[n]["loadavg_1min"]) for n in names)
    if busiest > cores:
        print(f"note: load average reached {busiest:.1f} on {cores} cores: other processes competed for the "
              "CPU, so wall times are inflated; CPU times are the steadier comparison")


def provenance() -> dict:
    """Which alignlab ran (the package folder, so a patched copy on PYTHONPATH shows) and its git commit."""
    import alignlab

    package = Path(alignlab.__file__).resolve().parent
    git = ["git", "-C", str(package.parent)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "alignlab/models"], capture_output=True,
                           text=True).stdout.strip()
    return {"package": str(package), "commit": commit or "none",
            "dirty": ", alignlab/models modified" if dirty else ""}


def print_report(result: dict) -> None:
    c = result["config"]
    print(f"\nSmolLM2-135M-Instruct fp32 on CPU, {c['threads']} torch thread(s), {c['prompt_format']} prompts, "
          f"{c['limit_per_file'] or 'all'} question(s) per file (seed {c['seed']})")
    if "alignlab" in result:  # absent from results written before it was recorded
        print("alignlab: {package} (git {commit}{dirty})".format(**result["alignlab"]))
    for g, r in result["groups"].items():
        print_group(g, r, result["machine"]["cores"])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.report:
        print_report(json.loads(args.report.read_text()))
        return
    from transformers import AutoTokenizer

    from alignlab.models.embedded import embedded_path

    model_path = str(embedded_path())  # converts the GGUF on first use, before any timing
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    groups = {g: run_group(g, args, model_path, tokenizer) for g in args.groups}
    for r in groups.values():
        r["vs_lmeval"] = comparisons(r)  # for readers of the JSON; the tables recompute it
    result = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "report"},
        "command": " ".join(sys.argv),
        "alignlab": provenance(),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "groups": groups,
    }
    print_report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
