from datetime import date

import numpy as np

from ocr import check_digit, ground_truth, phone_photo, random_person, render_back, render_front, validate_id_number
from ocr.ethnicities import ETHNICITY_SET
from ocr.synthetic import CARD_H, CARD_W, encode, validity_years


def test_random_people_are_consistent():
    rng = np.random.default_rng(0)
    people = [random_person(rng) for _ in range(300)]
    for p in people:
        assert validate_id_number(p.id_number, today=date(2026, 6, 1)) == ()
        assert p.ethnicity in ETHNICITY_SET and len(p.address) <= 33
        assert (int(p.id_number[16]) % 2 == 1) == (p.sex == "男")
        gt = ground_truth(p)
        assert gt["birth_date"] == p.birth_date.isoformat() and p.id_number[6:14] == p.birth_date.strftime("%Y%m%d")
        age = p.valid_from.year - p.birth_date.year - ((p.valid_from.month, p.valid_from.day) < (p.birth_date.month, p.birth_date.day))
        span = validity_years(age)
        assert (p.valid_until is None) == (span is None)
    assert any(len(p.name) >= 3 and p.name[:2] in ("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "慕容", "司徒", "令狐", "夏侯", "尉迟", "公孙") for p in people)
    assert any(p.valid_until is None for p in people)
    assert len({p.ethnicity for p in people}) > 30


def test_invalid_numbers_and_rare_names_on_request():
    rng = np.random.default_rng(1)
    p = random_person(rng, valid_number=False, rare_name=True)
    assert p.id_number[17] != check_digit(p.id_number[:17])
    assert any(0x3400 <= ord(c) <= 0x4DBF for c in p.name)


def test_renders_and_photo():
    rng = np.random.default_rng(2)
    p = random_person(rng)
    portrait = np.full((400, 300, 3), 120, np.uint8)
    f, b = render_front(p, portrait), render_back(p)
    assert f.shape == (CARD_H, CARD_W, 3) and b.shape == (CARD_H, CARD_W, 3) and f.dtype == np.uint8
    photo = phone_photo(f, rng, strength="strong")
    assert photo.ndim == 3 and photo.shape[0] * photo.shape[1] == 1600 * 1200
    for fmt in ("jpeg", "png", "webp", "heic"):
        assert len(encode(f, fmt)) > 1000
