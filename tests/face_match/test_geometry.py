"""Pure geometry: no models."""

from __future__ import annotations

import numpy as np
import pytest

from face_match.geometry import REFERENCE_5PTS, align_face, letterbox, similarity_transform, to_bgr8


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def test_similarity_transform_recovers_a_known_transform() -> None:
    ang, scale, t = np.deg2rad(17.0), 3.2, np.array([140.0, -35.0])
    rot = scale * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    src = REFERENCE_5PTS @ rot.T + t
    m = similarity_transform(src, REFERENCE_5PTS)
    assert np.allclose(_apply(m, src), REFERENCE_5PTS, atol=1e-9)


def test_similarity_transform_never_reflects() -> None:
    mirrored = REFERENCE_5PTS * [-1, 1]
    m = similarity_transform(mirrored, REFERENCE_5PTS)
    assert np.linalg.det(m[:, :2]) > 0


@pytest.mark.parametrize("scale", [0.5, 1.0, 6.0])
def test_align_face_puts_landmarks_on_the_reference(scale: float) -> None:
    # draw five dots where a face's landmarks would be, at some scale/rotation; after alignment the
    # dots must sit on the reference points whatever the input size
    size = int(200 * scale) + 60
    img = np.zeros((size, size, 3), np.uint8)
    ang = np.deg2rad(-12)
    rot = scale * 1.5 * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    pts = (REFERENCE_5PTS - 56) @ rot.T + size / 2
    for x, y in pts:
        cv_r = max(2, int(3 * scale))
        yy, xx = np.ogrid[:size, :size]
        img[(xx - x) ** 2 + (yy - y) ** 2 <= cv_r**2] = 255
    out = align_face(img, pts)
    assert out.shape == (112, 112, 3)
    grey = out[:, :, 0].astype(float)
    for rx, ry in REFERENCE_5PTS:
        y0, x0 = int(round(ry)), int(round(rx))
        assert grey[y0 - 2 : y0 + 3, x0 - 2 : x0 + 3].max() > 100, (rx, ry)


def test_letterbox_maps_back() -> None:
    img = np.zeros((3000, 4000, 3), np.uint8)
    canvas, box = letterbox(img, 640, 640)
    assert canvas.shape == (640, 640, 3)
    assert np.allclose(box.to_original(np.array([[640.0, 480.0]])), [[4000, 3000]], atol=1)


def test_to_bgr8_accepts_grey_rgba_and_16_bit() -> None:
    assert to_bgr8(np.zeros((20, 30), np.uint8)).shape == (20, 30, 3)
    assert to_bgr8(np.full((20, 30), 65535, np.uint16)).max() == 255
    rgba = np.zeros((20, 30, 4), np.uint8)  # fully transparent -> white
    assert to_bgr8(rgba).min() == 255
    with pytest.raises(ValueError):
        to_bgr8(np.zeros((20, 30, 5), np.uint8))
