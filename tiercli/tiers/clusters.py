"""An exact pruning index for L3: the distinct texts of a log are known before the replay, so
their unit vectors are clustered once (spherical k-means), and each cluster keeps its angular
radius (the widest angle from its centroid to a member). For a query q, no member x of a
cluster with centroid c and radius r can be closer than the triangle inequality on the sphere
allows: angle(q, x) >= angle(q, c) - r, so cos(q, x) <= cos(max(0, angle(q, c) - r)). The
semantic tier visits clusters in order of that bound and stops once the bound falls below the
best similarity found: the answer is the brute-force answer, without scanning every entry."""

from __future__ import annotations

import numpy as np

MIN_TEXTS = 4096  # below this one scan of a group is as fast: no clustering
ITERATIONS = 8
BOUND_SLACK = 1e-5  # float32 dot products and arccos are approximate: never prune on a hair


class ClusterIndex:
    def __init__(self, vectors: np.ndarray, clusters: int, seed: int = 0):
        """Spherical k-means of the unit rows of `vectors` into at most `clusters` clusters."""
        n = len(vectors)
        clusters = max(1, min(clusters, n))
        rng = np.random.default_rng(seed)
        centroids = vectors[rng.choice(n, clusters, replace=False)].astype(np.float32)
        for _ in range(ITERATIONS):
            assign = _nearest(vectors, centroids)
            sums = np.zeros_like(centroids)
            np.add.at(sums, assign, vectors)
            norms = np.linalg.norm(sums, axis=1)
            empty = norms == 0
            sums[empty] = centroids[empty]  # a cluster that lost its members keeps its centroid
            norms[empty] = 1.0
            centroids = (sums / norms[:, None]).astype(np.float32)
        self.centroids = centroids
        self.cluster_of_row = _nearest(vectors, centroids)
        closest = np.ones(clusters)
        cos_to_own = np.einsum("ij,ij->i", vectors, centroids[self.cluster_of_row])
        np.minimum.at(closest, self.cluster_of_row, cos_to_own)
        self.radius = np.arccos(np.clip(closest, -1.0, 1.0))  # radians

    @classmethod
    def for_vectors(cls, vectors: np.ndarray) -> ClusterIndex | None:
        if len(vectors) < MIN_TEXTS:
            return None
        return cls(vectors, int(round(np.sqrt(len(vectors)))))

    def bounds(self, query: np.ndarray) -> np.ndarray:
        """Per cluster, the highest cosine any member can have with the unit vector `query`."""
        angle = np.arccos(np.clip(self.centroids @ query, -1.0, 1.0))
        return np.cos(np.maximum(0.0, angle - self.radius)) + BOUND_SLACK


def _nearest(vectors: np.ndarray, centroids: np.ndarray, chunk: int = 8192) -> np.ndarray:
    out = np.empty(len(vectors), dtype=np.int64)
    for start in range(0, len(vectors), chunk):
        out[start:start + chunk] = np.argmax(vectors[start:start + chunk] @ centroids.T, axis=1)
    return out
