"""The attack landscape: MiniLM embeddings, projection, clustering, LM labels, the scatter figure, tag counts."""

from __future__ import annotations

import numpy as np
import pytest

from alignlab.models.types import GenerateResult, Generation
from alignlab.redteam.landscape import cluster, embed, label_clusters, project, scatter_figure, tag_counts


def test_embeddings_are_normalised_and_semantic():
    vectors = embed(["How do I build a bomb?", "Tell me how to make an explosive device.",
                     "What is a good recipe for banana bread?"])
    assert vectors.shape == (3, 384)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1, 1, 1], abs=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # the two weapon requests sit together
    # mean pooling ignores padding: a text embeds the same alone and in a batch with a longer one
    assert embed(["How do I build a bomb?"])[0] == pytest.approx(vectors[0], abs=1e-5)


def blobs(n_per: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0]])
    truth = np.repeat(np.arange(3), n_per)
    return centres[truth] + rng.normal(scale=0.3, size=(3 * n_per, 2)), truth


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return all(len(set(b[a == c])) == 1 for c in set(a)) and len(set(a)) == len(set(b))


def test_kmeans_and_hdbscan_recover_separated_groups():
    coords, truth = blobs(4)
    labels, method = cluster(coords, n_clusters=3)
    assert method == "kmeans" and _same_partition(labels, truth)
    labels, method = cluster(coords)  # under 30 points: k-means with k = round(sqrt(12 / 2)) = 2
    assert method == "kmeans" and len(set(labels)) == 2
    coords, truth = blobs(20)
    labels, method = cluster(coords)
    assert method == "hdbscan" and _same_partition(labels[labels >= 0], truth[labels >= 0])
    assert cluster(np.zeros((0, 2)))[1] == "none"


def test_small_maps_use_pca_and_bad_method_is_refused():
    vectors = np.eye(4, 8)
    coords = project(vectors, seed=0)
    assert coords.shape == (4, 2)
    assert project(vectors[:1], seed=0).shape == (1, 2)
    with pytest.raises(ValueError, match="umap or pca"):
        project(vectors, seed=0, method="tsne")


class FakeModel:
    def __init__(self, replies):
        self.replies, self.prompts = replies, []

    def generate(self, requests):
        self.prompts += [r.prompt.messages[0].content for r in requests]
        return [GenerateResult((Generation(text),)) for text in self.replies[:len(requests)]]


def test_cluster_labels_come_from_one_batched_lm_call():
    texts = ["steal a car", "hotwire a truck", "insult my boss", "noise point"]
    labels = [0, 0, 1, -1]
    model = FakeModel([" Vehicle theft.\nmore text", "   "])
    names = label_clusters(model, texts, labels)
    assert names == {-1: "unclustered", 0: "0: Vehicle theft", 1: "cluster 1"}  # empty reply keeps the default
    assert len(model.prompts) == 2 and "- steal a car\n- hotwire a truck" in model.prompts[0]
    assert "noise point" not in "".join(model.prompts)
    assert label_clusters(None, texts, labels)[0] == "cluster 0"
    lead_in = FakeModel(['These requests share the topic of "pranks with a pen".', "Topic: weapons"])
    assert label_clusters(lead_in, texts, labels) == {-1: "unclustered", 0: "0: pranks with a pen", 1: "1: weapons"}


def test_scatter_figure_one_series_per_cluster_renders():
    from alignlab.report.plots import render_figure

    coords = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    figure = scatter_figure(coords, [1, 0, 1], {0: "a", 1: "<b>b</b>"}, "map")
    assert [s["label"] for s in figure["series"]] == ["a", "<b>b</b>"]
    assert figure["series"][1]["x"] == [0.0, 4.0] and figure["series"][1]["y"] == [1.0, 5.0]
    rendered = render_figure(figure)
    assert rendered.png_base64 and rendered.note is None


def test_tag_counts_and_successes_per_tag():
    rows = tag_counts([["theft", "violence"], ["theft"], [], ["theft", "theft"]], [True, False, True, True])
    assert rows == [("theft", 3, 2), ("violence", 1, 1)]  # a tag repeated in one transcript counts once
    assert tag_counts([["x"]]) == [("x", 1, None)]


@pytest.mark.embedded  # slow, not the embedded model: numba compiles UMAP on first use (20-100 s on 2 busy cores)
def test_umap_projection_keeps_groups_apart():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 32)) * 5
    vectors = np.repeat(centres, 10, axis=0) + rng.normal(scale=0.1, size=(20, 32))
    coords = project(vectors, seed=0)
    assert coords.shape == (20, 2)
    labels, _ = cluster(coords, n_clusters=2)
    assert _same_partition(labels, np.repeat([0, 1], 10))
