from __future__ import annotations

import math

import numpy as np

from face_match.scoring import cosine, eer, score_from_cosine, tar_at_far, threshold_for_fmr


def test_score_mapping_is_linear_and_bounded() -> None:
    assert score_from_cosine(1.0) == 1.0
    assert score_from_cosine(-1.0) == 0.0
    assert math.isclose(score_from_cosine(0.363), 0.6815)
    assert score_from_cosine(float("nan")) == 0.0


def test_cosine() -> None:
    assert math.isclose(cosine(np.array([1.0, 0]), np.array([2.0, 0])), 1.0)
    assert math.isclose(cosine(np.array([1.0, 0]), np.array([0, 3.0])), 0.0, abs_tol=1e-9)


def test_threshold_for_fmr_allows_at_most_that_rate() -> None:
    rng = np.random.default_rng(0)
    imp = rng.normal(0.0, 0.1, 5000)
    for fmr in (1e-2, 1e-3):
        t = threshold_for_fmr(imp, fmr)
        assert (imp >= t).mean() <= fmr
        assert t - 1e-4 - 1e-9 <= np.sort(imp)[::-1][int(fmr * imp.size)] < t
    # fewer impostors than 1/fmr: just above the highest one
    assert threshold_for_fmr(np.array([0.1, 0.3]), 1e-3) > 0.3


def test_eer_and_tar_on_separable_scores() -> None:
    g, i = np.array([0.6, 0.7, 0.8]), np.array([0.1, 0.2, 0.3])
    assert eer(g, i)[0] == 0.0
    assert tar_at_far(g, i, 1e-2)[0] == 1.0
