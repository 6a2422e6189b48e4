"""alignlab side of ``behaviors_scoring.py``, in its own process so that its peak RSS is its own.

    python behaviors_worker_alignlab.py IN.json OUT.json

IN: ``{"model": path, "threads": int, "datasets": [name], "data": root, "max_items": int|None, "seed": int,
"prompt_format": "raw_hh"|"chat"}``. Builds the items and requests exactly as the evaluator does
(``alignlab.behaviors.runner``: ``load_datasets``, ``select_items``, ``conversation``, one ``ScoreRequest`` per
question with the item's options, ``config.chunk_size`` questions per ``model.score`` call) and scores them
with ``HFBackend.from_pretrained(path)`` in float32 on CPU behind ``Model(backend, cache=None)``. Only the
``model.score`` calls are timed. OUT: per question its id, rendered prompt, options and log-likelihoods;
timings, peak RSS and what the model computed (``forward_meter.py``).
"""

from __future__ import annotations

import json
import sys
import time

from forward_meter import ForwardMeter, peak_rss_mb


def main(in_path: str, out_path: str) -> None:
    t_start = time.perf_counter()
    with open(in_path) as f:
        job = json.load(f)
    import torch

    torch.set_num_threads(job["threads"])
    from alignlab.behaviors.runner import BehaviorsConfig, conversation, load_datasets, select_items
    from alignlab.models.base import Model
    from alignlab.models.hf import HFBackend
    from alignlab.models.types import ScoreRequest

    backend = HFBackend.from_pretrained(job["model"], dtype="float32", device="cpu")
    model = Model(backend, cache=None)
    config = BehaviorsConfig(datasets=job["datasets"], prompt_format=job["prompt_format"],
                             max_items=job["max_items"], seed=job["seed"], data=job["data"])
    datasets, failed = load_datasets(config)
    if failed:
        raise RuntimeError(f"datasets that did not load: {failed}")
    items = [item for ds in datasets for item in select_items(ds, config.max_items, config.seed)]
    conversations = [conversation(item, config.prompt_format) for item in items]
    requests = [ScoreRequest(conv, item.options) for conv, item in zip(conversations, items, strict=True)]
    load_s = time.perf_counter() - t_start
    rss_after_load = peak_rss_mb()

    meter = ForwardMeter(backend.model)
    results = []
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, len(requests), config.chunk_size):  # as run_behaviors sends them
        results.extend(model.score(requests[start:start + config.chunk_size]))
    score_s, score_cpu_s = time.perf_counter() - t0, time.process_time() - c0

    result = {
        "ids": [item.id for item in items],
        "prompts": [backend.render(conv) for conv in conversations],
        "options": [list(item.options) for item in items],
        "logliks": [r.logprobs for r in results],
        "skipped_rows": {ds.name: len(ds.skips) for ds in datasets},
        "boundary_merges": sum(s.boundary_merge for r in results for s in r.scores),
        "load_s": load_s,
        "score_s": score_s,
        "score_cpu_s": score_cpu_s,  # CPU time of all threads: less sensitive than wall time to other load
        "worker_s": time.perf_counter() - t_start,
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_load_mb": rss_after_load,
        **meter.as_dict(),
        "threads": torch.get_num_threads(),
        "chunk_size": config.chunk_size,
        "max_batch_tokens": backend.max_batch_tokens,
        "min_shared_prefix": backend.min_shared_prefix,
    }
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
