import math

import numpy as np

from liveness import geometry as g
from liveness.spoof import min_pairwise_similarity, motion_and_rigidity


def _face(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lm = rng.normal(0, 40, size=(478, 3)).astype(np.float64)
    return lm


def test_eye_aspect_ratio_open_and_closed():
    lm = np.zeros((478, 3))
    p1, p2, p3, p4, p5, p6 = g.RIGHT_EYE
    lm[p1, :2], lm[p4, :2] = (0, 0), (30, 0)
    lm[p2, :2], lm[p3, :2] = (10, -5), (20, -5)
    lm[p6, :2], lm[p5, :2] = (10, 5), (20, 5)
    assert math.isclose(g.eye_aspect_ratio(lm, g.RIGHT_EYE), 10 / 30)
    lm[[p2, p3, p5, p6], 1] = 0
    assert g.eye_aspect_ratio(lm, g.RIGHT_EYE) == 0.0


def test_mouth_ratio():
    lm = np.zeros((478, 3))
    lm[61, :2], lm[291, :2] = (0, 0), (50, 0)
    for a, b in g.MOUTH_PAIRS:
        lm[a, :2], lm[b, :2] = (25, -10), (25, 10)
    assert math.isclose(g.mouth_ratio(lm), 0.4)


def _rot_y(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def test_relative_rotation_recovers_yaw_sign_and_size():
    ref = _face()
    for deg in (-25, -10, 0, 15, 30):
        cur = ref @ _rot_y(deg).T
        yaw, pitch, roll = g.relative_rotation_deg(ref, cur)
        assert abs(abs(yaw) - abs(deg)) < 0.5 and abs(pitch) < 0.5 and abs(roll) < 0.5
    # a rotation that moves +x points toward -z (nearer the camera in mesh z) = nose to image right
    y_pos = g.relative_rotation_deg(ref, ref @ _rot_y(20).T)[0]
    y_neg = g.relative_rotation_deg(ref, ref @ _rot_y(-20).T)[0]
    assert np.sign(y_pos) == -np.sign(y_neg)


def test_similarity_residual_zero_for_rigid_2d_motion_positive_for_deformation():
    pts = _face(1)[:, :2]
    a = math.radians(12)
    r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    moved = 1.3 * pts @ r.T + np.array([40.0, -7.0])
    assert g.similarity_residual(pts, moved) < 1e-9
    assert g.homography_residual(pts, moved) < 1e-6
    bent = moved.copy()
    bent[:50] += 15.0
    assert g.similarity_residual(pts, bent) > 0.05


def test_motion_and_rigidity_and_outside():
    base = _face(2)
    still = [base + 0.01 for _ in range(5)]
    motion, nonrigid = motion_and_rigidity(still)
    assert motion < 0.01 and nonrigid < 0.01
    shifted = [base + np.array([k * 10.0, 0, 0]) for k in range(5)]
    motion, nonrigid = motion_and_rigidity(shifted)
    assert motion > 0.05 and nonrigid < 1e-6
    assert g.outside_fraction((0, 0, 10, 10), 100, 100) == 0.0
    assert math.isclose(g.outside_fraction((-10, 0, 10, 10), 100, 100), 0.5)
    e = np.array([1.0, 0.0])
    assert min_pairwise_similarity([e, e, -e]) == -1.0 and min_pairwise_similarity([e]) == 1.0


def test_head_pose_frontal_is_near_zero():
    # project the generic model frontally: solvePnP must give ~0 yaw/pitch/roll
    lm = np.zeros((478, 3))
    model = g.POSE_MODEL * np.array([1.0, -1.0, -1.0])
    f, w, h = 640.0, 640, 480
    z = 1000.0
    for k, idx in enumerate(g.POSE_IDX):
        x, y, zz = model[k]
        lm[idx, 0] = f * x / (zz + z) + w / 2
        lm[idx, 1] = f * y / (zz + z) + h / 2
    yaw, pitch, roll = g.head_pose_deg(lm, w, h)
    assert abs(yaw) < 2 and abs(pitch) < 2 and abs(roll) < 2
