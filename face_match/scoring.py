"""Similarity, the 0-1 score and thresholds by false-match rate (pure numpy)."""

from __future__ import annotations

import math

import numpy as np


def l2_normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32).reshape(-1)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (need not be normalised)."""
    return float(np.dot(l2_normalise(a), l2_normalise(b)))


def score_from_cosine(similarity: float) -> float:
    """The 0-1 score: score = (cosine + 1) / 2, clipped.

    Deliberately linear and threshold-free, so the same cosine always gives the same score whatever
    FMR is configured; the decision and its margin are reported separately (threshold, margin).
    Example: SFace's published operating point cosine 0.363 is score 0.68.
    """
    if math.isnan(similarity):
        return 0.0
    return float(min(1.0, max(0.0, (similarity + 1.0) / 2.0)))


def threshold_for_fmr(impostor_scores: np.ndarray, fmr: float) -> float:
    """Smallest cosine threshold t with (#impostors >= t) / n <= fmr, on the observed scores.

    With fewer than 1/fmr impostors the answer is just above the highest impostor score (the
    empirical rate is then 0, which is all the data can say); the benchmark reports n beside it.
    """
    s = np.sort(np.asarray(impostor_scores, dtype=np.float64))[::-1]
    if s.size == 0:
        raise ValueError("no impostor scores")
    allowed = int(math.floor(fmr * s.size))  # how many impostors may score at or above t
    if allowed >= s.size:
        return float(s[-1])
    # just above the (allowed+1)-th highest impostor, rounded UP to 4 decimals so the value written
    # into the manifest still excludes that impostor
    return math.floor(float(s[allowed]) * 1e4 + 1.0) / 1e4


def roc_points(genuine: np.ndarray, impostor: np.ndarray) -> list[tuple[float, float, float]]:
    """(threshold, FAR, TAR) at every distinct score, thresholds descending."""
    g = np.asarray(genuine, dtype=np.float64)
    i = np.asarray(impostor, dtype=np.float64)
    thr = np.unique(np.concatenate([g, i]))[::-1]
    return [(float(t), float((i >= t).mean()), float((g >= t).mean())) for t in thr]


def eer(genuine: np.ndarray, impostor: np.ndarray) -> tuple[float, float]:
    """Equal error rate and its threshold (FAR == FRR), scanning observed scores."""
    g = np.asarray(genuine, dtype=np.float64)
    i = np.asarray(impostor, dtype=np.float64)
    best = (1.0, 0.0)
    gap = math.inf
    for t in np.unique(np.concatenate([g, i])):
        far = float((i >= t).mean())
        frr = float((g < t).mean())
        if abs(far - frr) < gap:
            gap, best = abs(far - frr), ((far + frr) / 2, float(t))
    return best


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> tuple[float, float]:
    """(TAR, threshold) at the threshold calibrated for `far` on these impostors."""
    t = threshold_for_fmr(impostor, far)
    return float((np.asarray(genuine) >= t).mean()), t
