"""Stage 4 of a red-team run: the landscape map of its conversations (see :mod:`alignlab.redteam.landscape`).

One map per run, over the conversations of the first target (so each attack is one point); its record holds
each point's coordinates and cluster, and the LM-written cluster labels.
"""

from __future__ import annotations

import hashlib
from typing import Any

from alignlab.models.types import Message
from alignlab.redteam.config import RedteamConfig
from alignlab.redteam.landscape import cluster, embed, label_clusters, project
from alignlab.redteam.records import SECTION, records
from alignlab.redteam.scoring import render_plain
from alignlab.runs.run import Run


def map_key(conv_keys: list[str]) -> str:
    return "map|" + hashlib.sha256("\n".join(conv_keys).encode()).hexdigest()[:12]


def map_run(run: Run, config: RedteamConfig, res: Any, progress: Any = None, label_model: str | None = None) -> None:
    """Embed, project, cluster and label the first target's conversations; skipped when already mapped."""
    convs = records(run, "conversation")
    if not convs:
        return
    first = convs[0]["target"]
    convs = [c for c in convs if c["target"] == first]
    spec = label_model or config.attacker
    key = map_key([c["key"] for c in convs] + [f"seed={config.seed}", f"k={config.clusters}", f"labels={spec}",
                                                f"projection={config.projection}"])
    if key in run.done_keys():
        return
    if progress:
        progress("map", 0, 3)
    texts = [render_plain([Message(m["role"], m["content"]) for m in c["messages"]]) for c in convs]
    coords = project(embed(texts), seed=config.seed, method=config.projection)
    if progress:
        progress("map", 1, 3)
    labels, method = cluster(coords, n_clusters=config.clusters, seed=config.seed)
    model = res.model(spec) if spec else None
    if model is not None:
        run.record_model(model)
    openings = [c["messages"][0]["content"] for c in convs]
    names = label_clusters(model, openings, [int(x) for x in labels])
    if progress:
        progress("map", 3, 3)
    projection = "UMAP" if len(convs) >= 6 and config.projection == "umap" else "PCA"
    run.append([{"section": SECTION, "kind": "map", "model": spec or "none", "key": key, "target": first,
                 "method": method, "embedding": "all-MiniLM-L6-v2 (mean pooling)", "projection": projection,
                 "cluster_names": {str(c): n for c, n in names.items()},
                 "points": [{"conv_key": c["key"], "x": float(xy[0]), "y": float(xy[1]), "cluster": int(lab)}
                            for c, xy, lab in zip(convs, coords, labels, strict=True)]}])
