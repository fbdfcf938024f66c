"""FaceMatcher on the real models and the real faces/ photos."""

from __future__ import annotations

import csv
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from face_match import FaceMatcher, MatchConfig
from models import InputError, Reason
from models.images import read_image_file


@pytest.fixture(scope="module")
def matcher(registry) -> FaceMatcher:
    return FaceMatcher(MatchConfig(), registry)


@pytest.fixture(scope="module")
def faces(testdata: Path) -> Path:
    return testdata / "faces"


def _img(faces: Path, name: str) -> np.ndarray:
    return read_image_file(faces / name)


def test_mirrored_pair_matches(matcher: FaceMatcher, faces: Path) -> None:
    r = matcher.match(_img(faces, "img11.jpg"), _img(faces, "img11_reflection.jpg"))
    assert r.passed and Reason.FACE_MATCH in r.reasons
    assert r.margin > 0 and 0 <= r.score <= 1
    assert r.threshold == matcher.threshold and r.fmr == "1e-3"
    json.dumps(r.to_dict())


def test_different_people_do_not_match(matcher: FaceMatcher, faces: Path) -> None:
    r = matcher.match(_img(faces, "img1.jpg"), _img(faces, "img13.jpg"))
    assert not r.passed and Reason.FACE_MISMATCH in r.reasons
    assert r.similarity < r.threshold and r.margin < 0


def test_img61_large_close_up_is_handled(matcher: FaceMatcher, faces: Path) -> None:
    img = _img(faces, "img61.jpg")
    found = matcher.detect(img)
    assert len(found) == 1
    x, y, w, h = found[0].box
    assert 0 <= x < img.shape[1] and 0 <= y < img.shape[0] and w > 100
    e = matcher.embed(img)
    assert e.shape == (128,) and abs(np.linalg.norm(e) - 1) < 1e-4


def test_no_face(matcher: FaceMatcher, faces: Path) -> None:
    blank = np.full((480, 640, 3), 127, np.uint8)
    with pytest.raises(InputError) as e:
        matcher.embed(blank)
    assert e.value.code == Reason.FACE_NOT_DETECTED
    r = matcher.match(blank, _img(faces, "img1.jpg"))
    assert not r.passed and Reason.FACE_NOT_DETECTED in r.reasons
    assert r.quality_a is None and r.quality_b is not None
    assert r.to_dict()["similarity"] is None


def _side_by_side(a: np.ndarray, b: np.ndarray, height: int = 600) -> np.ndarray:
    fit = [cv2.resize(x, (round(x.shape[1] * height / x.shape[0]), height)) for x in (a, b)]
    return np.hstack(fit)


def test_two_faces_is_face_multiple(matcher: FaceMatcher, faces: Path) -> None:
    two = _side_by_side(_img(faces, "img1.jpg"), _img(faces, "img13.jpg"))
    assert len(matcher.detect(two)) == 2
    with pytest.raises(InputError) as e:
        matcher.embed(two)
    assert e.value.code == Reason.FACE_MULTIPLE
    r = matcher.match(two, _img(faces, "img2.jpg"))
    assert not r.passed and Reason.FACE_MULTIPLE in r.reasons


def test_tiny_face_gives_a_reason(matcher: FaceMatcher, faces: Path) -> None:
    img = _img(faces, "img1.jpg")
    small = cv2.resize(img, (img.shape[1] // 30, img.shape[0] // 30), interpolation=cv2.INTER_AREA)
    canvas = np.full((1200, 1600, 3), 90, np.uint8)
    canvas[500 : 500 + small.shape[0], 700 : 700 + small.shape[1]] = small
    r = matcher.match(canvas, _img(faces, "img2.jpg"))
    assert not r.passed or Reason.FACE_TOO_SMALL in r.reasons
    assert {Reason.FACE_NOT_DETECTED, Reason.FACE_TOO_SMALL, Reason.FACE_POOR_QUALITY} & set(r.reasons)


def test_grayscale_still_matches(matcher: FaceMatcher, faces: Path) -> None:
    grey = cv2.cvtColor(_img(faces, "img1.jpg"), cv2.COLOR_BGR2GRAY)
    assert matcher.match(grey, _img(faces, "img2.jpg")).passed


def test_rgba_and_16_bit_png_files(matcher: FaceMatcher, faces: Path, tmp_path: Path) -> None:
    rgb = cv2.cvtColor(_img(faces, "img1.jpg"), cv2.COLOR_BGR2RGB)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    deep = _img(faces, "img2.jpg").astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "b16.png"), deep)
    a, b = read_image_file(tmp_path / "a.png"), read_image_file(tmp_path / "b16.png")
    assert matcher.match(a, b).passed
    # the raw arrays are accepted too (4 channels, uint16)
    assert matcher.match(rgba[:, :, [2, 1, 0, 3]], deep).passed


def test_exif_rotated_jpeg(matcher: FaceMatcher, faces: Path, tmp_path: Path) -> None:
    upright = Image.open(faces / "img1.jpg").convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # pixels sideways, as a phone stores them
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored.save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=92)
    img = read_image_file(tmp_path / "rot.jpg")
    assert img.shape[:2] == (upright.height, upright.width)
    assert matcher.match(img, _img(faces, "img2.jpg")).passed


def test_invalid_array_raises_input_error(matcher: FaceMatcher) -> None:
    with pytest.raises(InputError) as e:
        matcher.match(np.zeros((0, 0, 3), np.uint8), np.zeros((10, 10, 3), np.uint8))
    assert e.value.code == Reason.INPUT_INVALID


def test_a_subset_of_pairs_is_all_correct(matcher: FaceMatcher, faces: Path) -> None:
    pairs = list(csv.DictReader((faces / "pairs.csv").open()))[::9]  # 58 pairs, both kinds
    names = sorted({p["img_a"] for p in pairs} | {p["img_b"] for p in pairs})
    emb = {n: matcher.embed(_img(faces, n)) for n in names}
    wrong = [
        (p["img_a"], p["img_b"])
        for p in pairs
        if (float(emb[p["img_a"]] @ emb[p["img_b"]]) >= matcher.threshold) != (p["same"] == "1")
    ]
    assert len(pairs) >= 55 and not wrong


def test_thread_safe(matcher: FaceMatcher, faces: Path) -> None:
    a, b = _img(faces, "img1.jpg"), _img(faces, "img2.jpg")
    want = matcher.match(a, b).similarity
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: matcher.match(a, b).similarity, range(8)))
    assert all(abs(g - want) < 1e-6 for g in got)


def test_selfie_with_card(matcher: FaceMatcher, faces: Path) -> None:
    synthetic = pytest.importorskip("ocr.synthetic", reason="card renderer (ocr.synthetic) not available")
    rng = np.random.default_rng(3)
    portrait = _img(faces, "img2.jpg")
    box = tuple(int(v) for v in matcher.detect(portrait)[0].box)
    card = synthetic.render_front(synthetic.random_person(rng), portrait, face_box=box)
    selfie = _img(faces, "img1.jpg").copy()  # person01 holding a card with person01's portrait
    cw = selfie.shape[1] // 2
    small_card = cv2.resize(card, (cw, round(card.shape[0] * cw / card.shape[1])), interpolation=cv2.INTER_AREA)
    y0 = selfie.shape[0] - small_card.shape[0] - 10
    selfie[y0 : y0 + small_card.shape[0], 10 : 10 + small_card.shape[1]] = small_card
    r = matcher.match_selfie_with_card(selfie, live=_img(faces, "img4.jpg"))
    assert r.faces_found >= 2
    assert r.person_vs_card is not None and r.person_vs_card.passed
    assert r.live_vs_person is not None and r.live_vs_person.passed
    assert r.live_vs_card is not None and r.live_vs_card.passed
    json.dumps(r.to_dict())
    # a stranger live: both live comparisons fail, the selfie itself is still consistent
    other = matcher.match_selfie_with_card(selfie, live=_img(faces, "img13.jpg"))
    assert other.person_vs_card.passed and not other.live_vs_person.passed and not other.live_vs_card.passed
    # no card in the selfie
    alone = matcher.match_selfie_with_card(_img(faces, "img1.jpg"))
    assert alone.person_vs_card is None and Reason.FACE_CARD_PORTRAIT_NOT_FOUND in alone.reasons


def test_logs_carry_scores_and_codes_only(matcher: FaceMatcher, faces: Path, caplog) -> None:
    caplog.set_level("DEBUG", logger="face_match")
    matcher.match(_img(faces, "img1.jpg"), _img(faces, "img2.jpg"))
    # the matcher's own records: other threads (a webhook pump's SQL, PIL's EXIF debug lines) log too
    text = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("face_match"))
    assert "similarity=" in text
    assert "img1" not in text and "[" not in text  # no file names, no arrays / embeddings
