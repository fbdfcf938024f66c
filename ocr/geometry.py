"""Card localisation and rectification (pure OpenCV / numpy, no model)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CARD_ASPECT = 85.6 / 54.0
WORK_SIDE = 800  # localise on a downscaled copy: a 12-MP photo costs the same as a small one


@dataclass(frozen=True)
class CardQuad:
    corners: np.ndarray  # 4x2 float32 in the original image, ordered tl, tr, br, bl (long side = top)
    area_fraction: float
    touches_border: bool
    method: str  # "contour", "whole_image"


def order_corners(pts: np.ndarray) -> np.ndarray:
    """tl, tr, br, bl, then rolled so that the first edge is a long edge (landscape output)."""
    pts = np.asarray(pts, np.float32).reshape(4, 2)
    c = pts.mean(axis=0)
    ang = np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0])
    pts = pts[np.argsort(ang)]  # clockwise in image coordinates, starting near -pi (left)
    # start with the corner closest to the top-left
    start = int(np.argmin(pts.sum(axis=1)))
    pts = np.roll(pts, -start, axis=0)
    e0 = np.linalg.norm(pts[1] - pts[0]) + np.linalg.norm(pts[2] - pts[3])
    e1 = np.linalg.norm(pts[2] - pts[1]) + np.linalg.norm(pts[3] - pts[0])
    if e1 > e0:  # portrait-oriented quad: make the long side the top (a 90-degree turn)
        pts = np.roll(pts, -1, axis=0)
    return pts


def _quad_score(quad: np.ndarray, img_area: float) -> tuple[float, float]:
    q = order_corners(quad)
    w = (np.linalg.norm(q[1] - q[0]) + np.linalg.norm(q[2] - q[3])) / 2
    h = (np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2
    if h < 1:
        return 0.0, 0.0
    aspect = w / h
    area = cv2.contourArea(q.astype(np.float32)) / img_area
    aspect_pen = abs(np.log(aspect / CARD_ASPECT))
    if aspect_pen > 0.2 or area < 0.01:
        return 0.0, area
    return area * (1.0 - aspect_pen), area


def find_card(image: np.ndarray) -> CardQuad | None:
    """The card's quadrilateral, or None. Tries edge contours and bright-region masks."""
    cands = find_card_candidates(image, limit=1)
    return cands[0] if cands else None


def find_card_candidates(image: np.ndarray, limit: int = 3, min_relative_score: float = 0.5) -> list[CardQuad]:
    """The best distinct card quadrilaterals, best first: the runner-up is read when the best one
    proves wrong (a tilted card under glare whose best contour merged with the background and cut
    the number line off), and only while it scores at least `min_relative_score` of the best."""
    h, w = image.shape[:2]
    s = WORK_SIDE / max(h, w)
    small = cv2.resize(image, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA) if s < 1 else image
    s = min(s, 1.0)
    sh, sw = small.shape[:2]
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    gray = cv2.GaussianBlur(gray, (5, 5), 0)
    masks = []
    edges = cv2.Canny(gray, 30, 90)
    masks.append(cv2.dilate(edges, np.ones((3, 3), np.uint8), iterations=2))
    _, otsu = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    masks.append(cv2.morphologyEx(otsu, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8)))
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    pale = ((hsv[..., 1] < 60) & (hsv[..., 2] > np.percentile(hsv[..., 2], 40))).astype(np.uint8) * 255
    masks.append(cv2.morphologyEx(pale, cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8)))
    found: list[tuple[float, np.ndarray, float, bool]] = []
    img_area = float(sh * sw)
    for m in masks:
        contours, _ = cv2.findContours(m, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        for c in sorted(contours, key=cv2.contourArea, reverse=True)[:8]:
            if cv2.contourArea(c) < 0.01 * img_area:
                continue
            hull = cv2.convexHull(c)
            quad = None
            peri = cv2.arcLength(hull, True)
            for eps in (0.02, 0.03, 0.05):
                approx = cv2.approxPolyDP(hull, eps * peri, True)
                if len(approx) == 4:
                    quad = approx.reshape(4, 2).astype(np.float32)
                    break
            if quad is None:
                # rounded or clipped corners: the minimum-area rectangle of a card-like blob
                rect = cv2.minAreaRect(hull)
                if cv2.contourArea(hull) < 0.85 * rect[1][0] * rect[1][1]:
                    continue
                quad = cv2.boxPoints(rect).astype(np.float32)
            score, area = _quad_score(quad, img_area)
            if area > 0.9:
                continue  # the image frame itself, or background merged with the card
            margin = 3
            touches = bool(np.any(quad[:, 0] <= margin) or np.any(quad[:, 1] <= margin)
                           or np.any(quad[:, 0] >= sw - 1 - margin) or np.any(quad[:, 1] >= sh - 1 - margin))
            if touches:
                score *= 0.3  # a card cut by the frame is possible, a blob leaking into the frame is likelier
            # how well the contour fills its quad: a card does, a merged background blob does not
            fill = cv2.contourArea(hull) / max(1.0, cv2.contourArea(quad.astype(np.float32)))
            score *= min(1.0, fill) ** 2
            if score > 0:
                found.append((score, quad, area, touches))
    found.sort(key=lambda x: -x[0])
    out: list[CardQuad] = []
    kept: list[np.ndarray] = []
    for score, quad, area, touches in found:
        if len(out) >= limit or score < min_relative_score * found[0][0]:
            break
        ordered = order_corners(quad)
        # the same card seen through another mask is not a different candidate
        if any(float(np.abs(ordered - k).max()) < 0.03 * max(sh, sw) for k in kept):
            continue
        kept.append(ordered)
        out.append(CardQuad(order_corners(quad / s), float(area), touches, "contour"))
    return out


def whole_image_quad(image: np.ndarray) -> CardQuad:
    h, w = image.shape[:2]
    pts = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    return CardQuad(order_corners(pts), 1.0, False, "whole_image")


def image_is_card_shaped(image: np.ndarray, tol: float = 0.1) -> bool:
    h, w = image.shape[:2]
    a = max(w, h) / max(1, min(w, h))
    return abs(np.log(a / CARD_ASPECT)) < tol


def rectify(image: np.ndarray, quad: CardQuad, size: tuple[int, int]) -> np.ndarray:
    """Warp the card to `size`. A card much larger than that (12-MP photos) is first cut out and
    shrunk with area averaging: a perspective warp alone would alias the small print."""
    w, h = size
    corners = quad.corners.astype(np.float32)
    src = image
    scale = card_width_px(quad) / w
    if scale > 1.6:
        x0, y0 = np.floor(corners.min(axis=0)).astype(int)
        x1, y1 = np.ceil(corners.max(axis=0)).astype(int)
        x0, y0 = max(0, x0 - 4), max(0, y0 - 4)
        x1, y1 = min(image.shape[1], x1 + 4), min(image.shape[0], y1 + 4)
        f = 1.25 / scale
        src = cv2.resize(image[y0:y1, x0:x1], (max(1, int((x1 - x0) * f)), max(1, int((y1 - y0) * f))),
                         interpolation=cv2.INTER_AREA)
        corners = (corners - np.float32([x0, y0])) * f
    dst = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    m = cv2.getPerspectiveTransform(corners, dst)
    return cv2.warpPerspective(src, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def card_width_px(quad: CardQuad) -> float:
    c = quad.corners
    return float((np.linalg.norm(c[1] - c[0]) + np.linalg.norm(c[2] - c[3])) / 2)
