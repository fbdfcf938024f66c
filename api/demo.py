"""`idverify demo`: the end-to-end proof on real input, printed as decision JSON.

Two applicants built from shared/data (IDV_TESTDATA): the clip liveportrait_d18.mp4 with the
challenge open_mouth,blink (actions the clip contains, in that order), and
 1. a rendered card whose portrait is the same person, cropped from a later moment of the clip
    (expected: approved);
 2. the same clip with a card whose portrait is a different person from faces/ (expected: rejected
    for the face mismatch).
The cards hold fictitious people with valid ID numbers; they are rendered into the data directory.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import cv2
import numpy as np

DEMO_CLIP = "liveness/liveportrait_d18.mp4"
DEMO_CHALLENGE = "open_mouth,blink"
PORTRAIT_MOMENT_S = 6.9  # after both challenged actions; any frame other than the matched one works
OTHER_PERSON = "faces/img3.jpg"


def frame_at(video: Path, t_s: float) -> np.ndarray:
    cap = cv2.VideoCapture(str(video))
    try:
        cap.set(cv2.CAP_PROP_POS_MSEC, t_s * 1000)
        ok, frame = cap.read()
    finally:
        cap.release()
    if not ok:
        raise RuntimeError(f"cannot read {video.name} at {t_s}s")
    return frame


def face_crop(matcher, image: np.ndarray, margin: float = 0.6) -> np.ndarray:
    """The single face with generous margin, as a passport-style portrait would frame it."""
    faces = matcher.detect(image)
    x, y, w, h = max(faces, key=lambda f: f.box[2] * f.box[3]).box
    cx, cy, side = x + w / 2, y + h / 2, max(w, h) * (1 + 2 * margin)
    x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2 - 0.1 * h))
    x1, y1 = int(min(image.shape[1], cx + side / 2)), int(min(image.shape[0], cy + side / 2))
    return image[y0:y1, x0:x1].copy()


def build_demo_cards(testdata: Path, out: Path, matcher) -> dict[str, tuple[Path, Path]]:
    from models.images import read_image_file
    from ocr.synthetic import render_back, render_front

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2026)
    same = face_crop(matcher, frame_at(testdata / DEMO_CLIP, PORTRAIT_MOMENT_S))
    other = face_crop(matcher, read_image_file(testdata / OTHER_PERSON))
    cards = {}
    for label, portrait in (("same_person", same), ("other_person", other)):
        person = _currently_valid_person(rng)
        front, back = out / f"{label}_front.png", out / f"{label}_back.png"
        cv2.imwrite(str(front), render_front(person, portrait))
        cv2.imwrite(str(back), render_back(person))
        cards[label] = (front, back)
    return cards


def _currently_valid_person(rng: np.random.Generator):
    """A random fictitious adult whose card is valid today, so only the face decides the demo."""
    from ocr.synthetic import random_person

    today = date.today()
    while True:
        p = random_person(rng)
        adult = (today - p.birth_date).days > 18 * 366
        if adult and p.valid_from <= today and (p.valid_until is None or p.valid_until > today):
            return p


def run_demo(out: Path | None = None) -> int:
    from liveness import load_capture, parse_actions
    from models.images import read_image_file

    from .pipeline import VerificationInput, build_engines, run_verification
    from .settings import get_settings

    settings = get_settings()
    testdata = settings.testdata
    if not (testdata / DEMO_CLIP).is_file():
        print(f"idverify demo: real data not found at {testdata} (set IDV_TESTDATA); skipping the demo", file=sys.stderr)
        return 0
    engines = build_engines(settings)
    cards = build_demo_cards(testdata, out or settings.data_dir / "demo", engines.matcher)
    capture = load_capture(testdata / DEMO_CLIP)
    actions = parse_actions(DEMO_CHALLENGE)
    expected = {"same_person": "approved", "other_person": "rejected"}
    for label, (front, back) in cards.items():
        report = run_verification(
            engines,
            VerificationInput(
                capture=capture, actions=actions, id_front=read_image_file(front), id_back=read_image_file(back)
            ),
            today=date.today(),
        )
        doc = {"example": label, "clip": DEMO_CLIP, "challenge": DEMO_CHALLENGE, "expected": expected[label]}
        doc.update(report.to_dict(mask_pii=True))
        print(json.dumps(doc, ensure_ascii=False, indent=2))
    return 0
