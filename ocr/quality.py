"""Soft quality signals on the rectified card (pure numpy / OpenCV), each 0..1 or a raw measure."""

from __future__ import annotations

import cv2
import numpy as np


def quality_signals(card: np.ndarray) -> dict[str, float]:
    gray = cv2.cvtColor(card, cv2.COLOR_BGR2GRAY)
    h, w = gray.shape
    sharp = float(cv2.Laplacian(gray, cv2.CV_32F).var())
    brightness = float(gray.mean()) / 255.0
    # glare over the text block only (the portrait and the rounded white corners are not text)
    text_gray = gray[int(h * 0.08): int(h * 0.95), int(w * 0.05): int(w * 0.62)]
    glare = float((text_gray >= 253).mean())
    hsv = cv2.cvtColor(card, cv2.COLOR_BGR2HSV)
    text_area = hsv[int(h * 0.1): int(h * 0.95), int(w * 0.05): int(w * 0.62)]
    saturation = float(text_area[..., 1].mean()) / 255.0
    # moire from a screen: strong isolated peaks in the high-frequency spectrum
    g = cv2.resize(gray, (256, 160)).astype(np.float32)
    spec = np.abs(np.fft.fftshift(np.fft.fft2(g - g.mean())))
    cy, cx = spec.shape[0] // 2, spec.shape[1] // 2
    yy, xx = np.ogrid[: spec.shape[0], : spec.shape[1]]
    far = ((yy - cy) ** 2 / cy**2 + (xx - cx) ** 2 / cx**2) > 0.35
    moire = float(spec[far].max() / (spec[far].mean() + 1e-6)) / 100.0
    return {
        "sharpness": round(sharp, 2),
        "brightness": round(brightness, 4),
        "glare_fraction": round(glare, 5),
        "saturation": round(saturation, 4),
        "moire": round(min(moire, 10.0), 4),
    }
