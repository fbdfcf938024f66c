"""Anti-spoof cues that need no extra model (pure functions over landmark series)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import geometry as g


def motion_and_rigidity(landmarks: Sequence[np.ndarray]) -> tuple[float, float]:
    """(motion, non_rigidity) of a face over a capture, both 90th percentiles against the first
    frame: motion = mean landmark displacement / inter-ocular distance; non_rigidity = residual
    after the best 2-D similarity transform (a photo moved, rotated or scaled in front of the
    camera leaves ~0; expressions and the parallax of a real 3-D head leave more)."""
    if len(landmarks) < 2:
        return 0.0, 0.0
    idx = list(g.RIGID_IDX)
    ref = np.asarray(landmarks[0])[idx, :2]
    io = max(g.inter_ocular(np.asarray(landmarks[0])), 1e-6)
    motion, resid = [], []
    for lm in landmarks[1:]:
        cur = np.asarray(lm)[idx, :2]
        motion.append(float(np.sqrt(((cur - ref) ** 2).sum(axis=1)).mean() / io))
        resid.append(g.similarity_residual(ref, cur))
    return float(np.percentile(motion, 90)), float(np.percentile(resid, 90))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 0.0
    return float(a @ b / (na * nb))


def min_pairwise_similarity(embeddings: Sequence[np.ndarray]) -> float:
    """The lowest cosine similarity between any two embeddings (1.0 for fewer than two)."""
    sims = [cosine(embeddings[i], embeddings[j]) for i in range(len(embeddings)) for j in range(i + 1, len(embeddings))]
    return min(sims) if sims else 1.0
