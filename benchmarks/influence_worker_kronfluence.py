"""kronfluence side of ``influence_vs_kronfluence.py``, in its own process so its peak memory is its own.

    python influence_worker_kronfluence.py CONFIG_JSON DEVICE OUT.json

Runs ``alignlab.influence.baseline.kronfluence_scores``: EK-FAC, sampled labels (``torch.multinomial`` as in
kronfluence's examples, or with ``--kronfluence-sampler alignlab`` the alignlab worker's very draws),
``damping_factor=None`` (= 0.1 x mean(Λ)), full-rank pairwise scores.
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
    from alignlab.influence.baseline import kronfluence_scores

    model, train, queries = build(cfg, device)
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and ".mlp." in n]
    start, cpu_start = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        result = kronfluence_scores(model, names, train, queries, [0] * len(queries), Path(tmp), empirical=False,
                                    batch_size=cfg["batch"], query_batch_size=cfg["query_batch"],
                                    sampler=cfg.get("sampler", "multinomial"))
    timings, cpu_timings = result["timings"], result["cpu_timings"]
    timings["end to end"], cpu_timings["end to end"] = time.perf_counter() - start, time.process_time() - cpu_start
    write_result(out, timings, cpu_timings, result["scores"], device)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
