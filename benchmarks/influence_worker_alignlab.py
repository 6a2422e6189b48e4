"""alignlab side of ``influence_vs_kronfluence.py``, in its own process so its peak memory is its own.

    python influence_worker_alignlab.py CONFIG_JSON DEVICE OUT.json
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from influence_vs_kronfluence import build, write_result


def main(cfg: dict, device: str, out: Path) -> None:
    torch.set_num_threads(1)
    from alignlab.influence.data import make_batches
    from alignlab.influence.factors import FactorConfig
    from alignlab.influence.modules import find_tracked
    from alignlab.influence.scores import Preconditioner, pairwise_scores, precondition_queries
    from alignlab.influence.store import fit_factors

    model, train, queries = build(cfg, device)
    start, cpu_start = time.perf_counter(), time.process_time()
    tracked = find_tracked(model, torch.tensor([train[0][:8]]), scope="mlp")
    batches = make_batches(train, list(range(len(train))), cfg["batch"], 0)
    with tempfile.TemporaryDirectory() as tmp:
        factors = fit_factors(model, tracked, batches, FactorConfig(fisher="sampled", batch_size=cfg["batch"],
                                                                        **head_budget(cfg)),
                              Path(tmp))
        timings, cpu_timings = dict(factors.meta["timings"]), dict(factors.meta["cpu_timings"])
        t0, c0 = time.perf_counter(), time.process_time()
        pre = Preconditioner(factors.to(device), damping_factor=0.1)
        q_batches = make_batches(queries, list(range(len(queries))), cfg["query_batch"], 0)
        scores = pairwise_scores(model, tracked, batches, precondition_queries(model, pre, q_batches),
                                 head=factors.head).total
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        timings["pairwise scores"], cpu_timings["pairwise scores"] = time.perf_counter() - t0, time.process_time() - c0
    timings["end to end"], cpu_timings["end to end"] = time.perf_counter() - start, time.process_time() - cpu_start
    write_result(out, timings, cpu_timings, scores, device)


def head_budget(cfg: dict) -> dict:
    """The output-layer cache budget the run asked for (``--head-cache-mib``), else the library default."""
    return {"head_cache_mib": cfg["head_cache_mib"]} if "head_cache_mib" in cfg else {}


if __name__ == "__main__":
    main(json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
