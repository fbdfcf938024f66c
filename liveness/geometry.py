"""Pure per-frame geometry over Face Mesh landmarks (no model here, tested without one).

Landmarks are a (478, 3) float array in PIXELS of the analysed frame (x right, y down, z toward the
camera negative, scaled like x), indices as in MediaPipe's canonical face mesh.
"""

from __future__ import annotations

import math

import numpy as np

# Eye contours, p1..p6 for the classic eye aspect ratio (Soukupová & Čech 2016):
# p1/p4 the corners, p2/p3 upper lid, p6/p5 lower lid. "Right" = the subject's right eye.
RIGHT_EYE = (33, 160, 158, 133, 153, 144)
LEFT_EYE = (362, 385, 387, 263, 373, 380)
# inner-lip vertical pairs (upper, lower) and the outer mouth corners
MOUTH_PAIRS = ((82, 87), (13, 14), (312, 317))
MOUTH_CORNERS = (61, 291)
NOSE_TIP = 1
CHIN = 152
# six points for head pose: nose tip, chin, subject's right-eye outer corner, left-eye outer corner,
# right mouth corner, left mouth corner
POSE_IDX = (1, 152, 33, 263, 61, 291)
# a generic 3-D face in mm-like units (x to the IMAGE right for an unmirrored frontal face, y UP,
# z toward the camera); the widely used model from the OpenCV head-pose examples
POSE_MODEL = np.array(
    [
        (0.0, 0.0, 0.0),
        (0.0, -330.0, -65.0),
        (-225.0, 170.0, -135.0),
        (225.0, 170.0, -135.0),
        (-150.0, -150.0, -125.0),
        (150.0, -150.0, -125.0),
    ],
    dtype=np.float64,
)
# face outline (jaw/forehead silhouette) and rigid inner points for the rigid-motion test: under a
# real 3-D head turn, the nose moves against the outline (parallax); on a flat photo it cannot
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
RIGID_IDX = tuple(sorted(set(FACE_OVAL) | {1, 4, 5, 6, 168, 197, 195, 33, 133, 263, 362, 61, 291, 199}))


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.hypot(a[0] - b[0], a[1] - b[1]))


def eye_aspect_ratio(lm: np.ndarray, idx: tuple[int, ...]) -> float:
    """(|p2-p6| + |p3-p5|) / (2 |p1-p4|): ~0.25-0.35 open, <0.15 closed."""
    p = lm[list(idx), :2]
    width = _dist(p[0], p[3])
    if width <= 1e-6:
        return 0.0
    return (_dist(p[1], p[5]) + _dist(p[2], p[4])) / (2.0 * width)


def eye_ratios(lm: np.ndarray) -> tuple[float, float]:
    """(subject's right eye, subject's left eye)."""
    return eye_aspect_ratio(lm, RIGHT_EYE), eye_aspect_ratio(lm, LEFT_EYE)


def mouth_ratio(lm: np.ndarray) -> float:
    """Mean inner-lip gap over mouth width: ~0 closed (also with puffed cheeks), >0.3 open."""
    width = _dist(lm[MOUTH_CORNERS[0]], lm[MOUTH_CORNERS[1]])
    if width <= 1e-6:
        return 0.0
    gap = sum(_dist(lm[a], lm[b]) for a, b in MOUTH_PAIRS) / len(MOUTH_PAIRS)
    return gap / width


def head_pose_deg(lm: np.ndarray, width: int, height: int) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from cv2.solvePnP against a generic 3-D face.

    yaw > 0: the nose points to the IMAGE'S RIGHT; pitch > 0: looking up; roll > 0: the head tilts
    clockwise in the image. An ideal pinhole camera with focal length = image width is assumed
    (phone cameras are close to that; only the size of the angles depends on it, not the sign).
    """
    import cv2

    img_pts = np.ascontiguousarray(lm[list(POSE_IDX), :2], dtype=np.float64)
    f = float(max(width, height))
    cam = np.array([[f, 0, width / 2.0], [0, f, height / 2.0], [0, 0, 1]], dtype=np.float64)
    # model y is up, image y is down: flip the model's y so that R≈I for a frontal face
    model = POSE_MODEL * np.array([1.0, -1.0, -1.0])
    ok, rvec, _tvec = cv2.solvePnP(model, img_pts, cam, np.zeros(4), flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return 0.0, 0.0, 0.0
    r, _ = cv2.Rodrigues(rvec)
    # Euler angles, y-x-z order: yaw about the vertical axis, pitch about the horizontal one
    yaw = math.degrees(math.atan2(-r[2, 0], math.hypot(r[2, 1], r[2, 2])))
    pitch = math.degrees(math.atan2(r[2, 1], r[2, 2]))
    roll = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    return -yaw, -pitch, roll


def yaw_ratio(lm: np.ndarray) -> float:
    """A model-free yaw cue in [-1, 1]: where the nose tip sits between the two face edges
    (0 frontal, >0 nose toward the image's right). Used as a cross-check of solvePnP."""
    left = lm[234, 0]
    right = lm[454, 0]
    span = right - left
    if abs(span) <= 1e-6:
        return 0.0
    return float(np.clip(2.0 * (lm[NOSE_TIP, 0] - left) / span - 1.0, -1.0, 1.0))


def face_box(lm: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of the landmarks, in pixels."""
    xy = lm[:, :2]
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def outside_fraction(box: tuple[float, float, float, float], width: int, height: int) -> float:
    """Share of the face box that lies outside the frame (0 = fully inside)."""
    x0, y0, x1, y1 = box
    area = max(1e-6, (x1 - x0) * (y1 - y0))
    ix = max(0.0, min(x1, width) - max(x0, 0.0))
    iy = max(0.0, min(y1, height) - max(y0, 0.0))
    return float(max(0.0, 1.0 - ix * iy / area))


def inter_ocular(lm: np.ndarray) -> float:
    return _dist(lm[33], lm[263])


def face_crop(img: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    h, w = img.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(w, x1), min(h, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return img[0:0, 0:0]
    return img[y0:y1, x0:x1]


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian (higher = sharper); 0 for an empty crop."""
    import cv2

    if gray.size == 0:
        return 0.0
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def brightness(gray: np.ndarray) -> float:
    """Mean grey level 0-255 of the crop."""
    return float(gray.mean()) if gray.size else 0.0


def similarity_residual(src: np.ndarray, dst: np.ndarray) -> float:
    """RMS residual after the best 2-D similarity transform (rotation, uniform scale, shift) from
    src to dst, both (N, 2), divided by dst's RMS radius. ~0 when dst is src moved as a flat,
    rigid picture in the image plane; larger under expression changes or 3-D rotation."""
    a = np.asarray(src, dtype=np.float64)
    b = np.asarray(dst, dtype=np.float64)
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    a0, b0 = a - ma, b - mb
    na = float((a0**2).sum())
    if na <= 1e-12:
        return 0.0
    # Umeyama/Procrustes with complex numbers: b ≈ s·a (s complex = scale·rotation)
    za = a0[:, 0] + 1j * a0[:, 1]
    zb = b0[:, 0] + 1j * b0[:, 1]
    s = np.vdot(za, zb) / na
    res = zb - s * za
    radius = math.sqrt(float((b0**2).sum()) / len(b0))
    if radius <= 1e-9:
        return 0.0
    return float(np.sqrt(np.mean(np.abs(res) ** 2)) / radius)


def homography_residual(src: np.ndarray, dst: np.ndarray) -> float:
    """Like similarity_residual but after the best plane-to-plane homography (a flat photo tilted
    toward the camera is exactly a homography; a real face's nose and outline are not)."""
    import cv2

    a = np.asarray(src, dtype=np.float64)
    b = np.asarray(dst, dtype=np.float64)
    if len(a) < 4:
        return 0.0
    hmat, _ = cv2.findHomography(a, b, 0)
    if hmat is None:
        return similarity_residual(a, b)
    proj = cv2.perspectiveTransform(a.reshape(-1, 1, 2), hmat).reshape(-1, 2)
    b0 = b - b.mean(axis=0)
    radius = math.sqrt(float((b0**2).sum()) / len(b0))
    if radius <= 1e-9:
        return 0.0
    return float(np.sqrt(np.mean(((proj - b) ** 2).sum(axis=1))) / radius)


# points that move with the skull, not with expressions: nose ridge, eye corners, forehead, temples
# and upper face outline (jaw and lips excluded: mouth opening must not read as a head turn)
POSE_RIGID_IDX = (1, 4, 5, 6, 8, 9, 10, 151, 168, 195, 197, 33, 133, 263, 362, 234, 454, 127, 356,
                  93, 323, 21, 251, 54, 284, 103, 332, 109, 338)


def relative_rotation_deg(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of the head in `cur` relative to `ref`, from the 3-D mesh
    points (N, 3) of both (Kabsch alignment of POSE_RIGID_IDX). yaw > 0: the nose moved toward
    the IMAGE'S RIGHT. Mesh depth is predicted and somewhat flattened, so the angles run below a
    true pose's (~0.7x) — thresholds are calibrated on this measure, not on textbook degrees.
    """
    a = np.asarray(ref, dtype=np.float64)[list(POSE_RIGID_IDX)]
    b = np.asarray(cur, dtype=np.float64)[list(POSE_RIGID_IDX)]
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    u, _s, vt = np.linalg.svd(a.T @ b)
    d = 1.0 if np.linalg.det(vt.T @ u.T) >= 0 else -1.0
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    yaw = math.degrees(math.atan2(-r[2, 0], math.hypot(r[2, 1], r[2, 2])))
    pitch = math.degrees(math.atan2(r[2, 1], r[2, 2]))
    roll = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    # mesh z grows away from the camera, so a nose moving image-right gives a negative raw yaw
    return -yaw, pitch, roll
