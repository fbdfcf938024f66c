from __future__ import annotations

import cv2
import numpy as np

from face_match.geometry import REFERENCE_5PTS
from face_match.quality import QualityLimits, assess, blur_index, yaw_from_landmarks
from models import Reason


def test_yaw_is_zero_for_the_reference_and_grows_when_the_nose_moves() -> None:
    assert abs(yaw_from_landmarks(REFERENCE_5PTS)) < 2
    turned = REFERENCE_5PTS.copy()
    turned[2, 0] += 15
    assert yaw_from_landmarks(turned) > 40


def test_blur_and_darkness_are_flagged() -> None:
    rng = np.random.default_rng(1)
    sharp = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 4)
    assert blur_index(sharp) < 0.1 < 0.9 < blur_index(blurred)
    dark = (sharp // 12).astype(np.uint8)
    q = assess(dark, REFERENCE_5PTS, 30.0, 0.5, QualityLimits())
    assert not q.ok
    assert {Reason.QUALITY_TOO_DARK, Reason.FACE_TOO_SMALL, Reason.FACE_OCCLUDED} <= set(q.reasons)
    assert q.to_dict()["reasons"]
