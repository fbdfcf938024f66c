"""The reader on real models: the real specimen, rendered cards (clean and phone photos), bad input."""

from __future__ import annotations

import csv
import io
import json
import logging
import struct
import threading
import zlib
from datetime import date

import cv2
import numpy as np
import pytest

from models.errors import InputError
from models.images import read_image_file
from models.reasons import Reason
from ocr import IdCardReader, Side, ground_truth, phone_photo, random_person, render_back, render_front, validate_card
from ocr.synthetic import encode

TODAY = date(2026, 6, 1)


@pytest.fixture(scope="module")
def reader(registry) -> IdCardReader:
    return IdCardReader(registry=registry)


@pytest.fixture(scope="module")
def portrait(testdata) -> np.ndarray:
    return read_image_file(testdata / "faces" / "img1.jpg")


@pytest.fixture(scope="module")
def person():
    return random_person(np.random.default_rng(20260601))


def values(res) -> dict[str, str]:
    return {k: v.value for k, v in res.fields.items()}


@pytest.mark.parametrize("name", ["chineseocr_idcard-demo_upside_down.jpeg", "chineseocr_idcard-demo_rotated180_upright.png"])
def test_real_specimen_read_as_printed_and_every_inconsistency_flagged(reader, testdata, name):
    rows = {r["file"]: r for r in csv.DictReader((testdata / "idcards" / "ground_truth.csv").open(encoding="utf-8"))}
    gt = rows[name]
    res = reader.read(read_image_file(testdata / "idcards" / name))
    assert res.card_found and res.side == Side.FRONT
    assert values(res) == {"name": gt["name"], "sex": gt["sex"], "ethnicity": gt["ethnicity"],
                           "birth_date": gt["birth"], "address": gt["address"], "id_number": gt["id_number"]}
    assert all(f.corrected_from is None for f in res.fields.values())  # high-confidence reads are never corrected
    v = validate_card(res, None, today=TODAY)
    assert not v.passed
    for r in (Reason.IDCARD_CHECKSUM_INVALID, Reason.IDCARD_BIRTH_DATE_MISMATCH, Reason.CARD_LABEL_MISPRINTED,
              Reason.IDCARD_SEX_MISMATCH):
        assert r in v.reasons
    assert v.checks["check_digit"] is False and v.checks["birth_date_matches"] is False
    assert res.portrait is not None


def test_clean_render_both_sides(reader, person, portrait, registry):
    gt = ground_truth(person)
    f = reader.read(render_front(person, portrait))
    b = reader.read(render_back(person))
    assert f.side == Side.FRONT and b.side == Side.BACK
    assert values(f) == {k: gt[k] for k in ("name", "sex", "ethnicity", "birth_date", "address", "id_number")}
    assert values(b) == {k: gt[k] for k in ("authority", "valid_from", "valid_until")}
    v = validate_card(f, b, today=TODAY, declared_name=person.name, declared_id_number=person.id_number)
    assert v.passed, v.reasons
    assert set(f.timings_ms) == {"locate", "det", "cls", "rec"}
    # the portrait crop holds the whole face at a usable size (checked with the product's face detector)
    p = f.portrait
    assert p is not None and p.shape[0] > 300
    det = cv2.FaceDetectorYN.create(str(registry.path("yunet")), "", (p.shape[1], p.shape[0]), 0.6)
    _, faces = det.detect(p)
    assert faces is not None and len(faces) == 1
    x, y, w, h = faces[0][:4]
    assert w > 0.3 * p.shape[1] and x > 0 and y > 0 and x + w < p.shape[1] and y + h < p.shape[0]


def test_wrong_side_is_reported(reader, person):
    res = reader.read(render_back(person), expected_side=Side.FRONT)
    assert res.side == Side.BACK and Reason.CARD_WRONG_SIDE in res.reasons


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_phone_photo_any_orientation(reader, person, portrait, turns):
    rng = np.random.default_rng(turns)
    photo = phone_photo(render_front(person, portrait), rng, strength="light", quarter_turns=turns)
    res = reader.read(photo)
    gt = ground_truth(person)
    assert res.side == Side.FRONT
    assert res.fields["id_number"].value == gt["id_number"]
    assert values(res)["name"] == gt["name"]


def test_rare_character_name_goes_to_review(reader, portrait):
    p = random_person(np.random.default_rng(5), rare_name=True)
    res = reader.read(render_front(p, portrait))
    assert Reason.IDCARD_RARE_CHARACTER in res.reasons
    name = res.fields.get("name")
    assert name is None or name.value != p.name
    assert name is None or name.confidence < reader.config.low_confidence  # never a confident wrong name


@pytest.mark.parametrize("name", ["东方㑇", "黄㛃"])
def test_dropped_last_character_of_a_name_goes_to_review(reader, portrait, name):
    """The recogniser skips a last glyph it cannot emit and is confident about the rest (东方 at
    0.999): the text box still spans the glyph, so the gap at the end flags the name."""
    import dataclasses

    p = dataclasses.replace(random_person(np.random.default_rng(7)), name=name)
    res = reader.read(render_front(p, portrait))
    assert Reason.IDCARD_RARE_CHARACTER in res.reasons
    got = res.fields.get("name")
    assert got is None or got.value == name or got.confidence < reader.config.low_confidence


def test_ethnicity_the_recogniser_leaves_out_is_read_against_the_list(reader, portrait):
    """傈僳's glyphs are in the dictionary but the greedy read emits nothing for them; scoring the
    line against the 56 names finds it confidently. Wording outside the list (穿青人) keeps its
    own reading. 仡佬 (read 佬) and 仫佬 (仫 is outside the dictionary) stay unrecognised readings
    that validation sends to review: never a confident wrong group."""
    import dataclasses

    from ocr.ethnicities import ETHNICITY_SET

    base = random_person(np.random.default_rng(11))

    def read(eth: str):
        res = reader.read(render_front(dataclasses.replace(base, ethnicity=eth), portrait))
        return res.fields.get("ethnicity"), validate_card(res, None, today=TODAY).reasons

    got, _ = read("傈僳")
    assert got.value == "傈僳" and got.confidence >= reader.config.low_confidence
    got, reasons = read("穿青人")
    assert got.value == "穿青人" and Reason.IDCARD_ETHNICITY_UNKNOWN in reasons
    for eth in ("仡佬", "仫佬"):
        got, reasons = read(eth)
        if got is not None and got.value != eth:
            assert got.value not in ETHNICITY_SET or got.confidence < reader.config.low_confidence
            assert Reason.IDCARD_ETHNICITY_UNKNOWN in reasons or Reason.IDCARD_LOW_CONFIDENCE in reasons


def test_number_line_with_a_letter_is_read_again_within_digits(reader, portrait):
    """In this render the free read of the number line ends '...29867L' (the last 4 read as L):
    the number would lose a digit. Read within the digits and X, it is whole, and the glyph the
    model doubted keeps a low confidence (review), never a confident number."""
    rng = np.random.default_rng(4242)  # the OCR benchmark's seed: its 5th person (张海艳)
    p = [random_person(rng) for _ in range(5)][-1]
    assert p.id_number == "150925196704298674"
    img = render_front(p, portrait)
    card = img  # a tight render: the reader uses it whole
    boxes, _ = reader._engine.detect(card)
    from ocr.reader import _crop

    crops = [_crop(card, b) for b in boxes]
    free = [t for t, _s, _c in reader._engine.recognise(crops)[0]]
    assert any(t.startswith("150925196704298") and not t[15:].isdigit() for t in free), free
    res = reader.read(img, expected_side=Side.FRONT)
    num = res.fields["id_number"]
    assert num.value == "150925196704298674"
    assert num.confidence < reader.config.low_confidence and Reason.IDCARD_LOW_CONFIDENCE in res.reasons


def test_reading_within_an_alphabet_never_drops_or_invents_a_glyph(reader):
    """A frame the free read gave to a foreign character (L) takes the best allowed one (4, at its
    own probability); blank and space frames stay gaps."""
    from ocr.engine import restrict_frames

    eng = reader._engine
    chars = eng._rec.postprocess_op.character
    idx = {c: i for i, c in enumerate(chars)}
    probs = np.full((6, len(chars)), 1e-6)
    for f, (c, pc) in enumerate([("1", 0.9), (None, 0.9), ("L", 0.6), (None, 0.9), (" ", 0.8), ("2", 0.9)]):
        probs[f, 0 if c is None else idx[c]] = pc
    probs[2, idx["4"]] = 0.3
    probs[2, 0] = 0.1  # the blank was the third choice on the L frame
    assert eng._decode(probs, 1.0)[0] == "1L2"
    allowed = np.zeros(len(chars), bool)
    allowed[[idx[c] for c in "0123456789X"]] = True
    text, _score, got = eng._decode(restrict_frames(probs, allowed, eng._is_space), 1.0)
    assert text == "142" and abs(got[1][1] - 0.3) < 1e-9


def test_ctc_log_likelihood_sums_every_alignment():
    """Two frames, labels [a]: alignments a-a, a-blank, blank-a collapse to "a"."""
    from ocr.engine import _ctc_log_likelihood

    p = np.array([[0.5, 0.3, 0.2], [0.6, 0.1, 0.3]])  # columns: blank, a, b
    want = 0.3 * 0.1 + 0.3 * 0.6 + 0.5 * 0.1
    assert np.isclose(_ctc_log_likelihood(np.log(p), [1]), np.log(want))
    # "aa" needs a blank between the two a's: impossible in two frames
    assert _ctc_log_likelihood(np.log(p), [1, 1]) == -np.inf
    assert np.isclose(_ctc_log_likelihood(np.log(p), [1, 2]), np.log(0.3 * 0.3))


def test_check_digit_correction_only_of_one_weak_character(reader):
    from ocr.fields import Char, Parsed

    first = "11010119900307123"
    from ocr import check_digit

    good = first + check_digit(first)
    wrong = good[:4] + ("8" if good[4] != "8" else "9") + good[5:]

    def parsed(weak_at: int | None, conf: float = 0.5):
        chars = tuple(Char(c, conf if i == weak_at else 0.999, i / 18) for i, c in enumerate(wrong))
        return {"id_number": Parsed(wrong, min(c.conf for c in chars), chars),
                "birth_date": Parsed("1990-03-07", 0.99)}

    fields, reasons = reader._front_fields(parsed(4), [])
    assert fields["id_number"].value == good and fields["id_number"].corrected_from == wrong
    assert fields["id_number"].confidence < reader.config.low_confidence
    assert Reason.IDCARD_CHARACTER_CORRECTED in reasons
    fields, reasons = reader._front_fields(parsed(None), [])  # all confident: never corrected
    assert fields["id_number"].value == wrong and fields["id_number"].corrected_from is None
    fields, _ = reader._front_fields(parsed(10), [])  # the weak character is not the wrong one
    assert fields["id_number"].corrected_from is None or fields["id_number"].value != good
    # a weak check character is never recomputed: that would hide a wrong printed check digit
    wrong_check = good[:17] + ("0" if good[17] != "0" else "1")
    chars = tuple(Char(c, 0.5 if i == 17 else 0.999, i / 18) for i, c in enumerate(wrong_check))
    fields, reasons = reader._front_fields({"id_number": Parsed(wrong_check, 0.5, chars)}, [])
    assert fields["id_number"].value == wrong_check and Reason.IDCARD_CHARACTER_CORRECTED not in reasons


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "heic"])
def test_formats_from_bytes(reader, person, fmt):
    res = reader.read(encode(render_back(person), fmt))
    assert res.side == Side.BACK and values(res)["authority"] == person.authority


def test_jpeg_exif_orientation_is_honoured(reader, person):
    from PIL import Image

    img = render_back(person)
    rotated = np.ascontiguousarray(np.rot90(img, 1))  # stored sideways, EXIF says rotate back
    im = Image.fromarray(cv2.cvtColor(rotated, cv2.COLOR_BGR2RGB))
    exif = im.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif.tobytes(), quality=92)
    res = reader.read(buf.getvalue())
    assert res.side == Side.BACK and values(res)["valid_from"] == person.valid_from.isoformat()


def _png_header_only(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_bad_input_gives_clear_reasons(reader, person):
    jpeg = encode(render_back(person), "jpeg")
    one_px = encode(np.zeros((1, 1, 3), np.uint8), "png")
    cases = {
        b"this is not an image": Reason.INPUT_WRONG_TYPE,
        jpeg[: len(jpeg) // 3]: Reason.INPUT_UNREADABLE,
        one_px: Reason.INPUT_TOO_SMALL,
        _png_header_only(20000, 20000): Reason.INPUT_TOO_MANY_PIXELS,
    }
    for data, code in cases.items():
        with pytest.raises(InputError) as e:
            reader.read(data)
        assert e.value.code == code
    with pytest.raises(InputError):
        reader.read("not an array")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        reader.read(np.zeros((1, 1, 3), np.uint8))


def test_no_card_and_bank_card(reader):
    from ocr.synthetic import _clutter

    rng = np.random.default_rng(3)
    res = reader.read(_clutter(rng, 1200, 900))
    assert not res.card_found and res.reasons[0] in (Reason.CARD_NOT_FOUND, Reason.CARD_NOT_ID_CARD)
    from PIL import Image, ImageDraw, ImageFont

    bank = Image.new("RGB", (1012, 638), (30, 80, 150))
    d = ImageDraw.Draw(bank)
    font = ImageFont.truetype("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 60, index=2)
    d.text((60, 60), "中国建设银行 储蓄卡", font=font, fill=(255, 255, 255))
    d.text((60, 330), "6217 0012 3456 7890 123", font=font, fill=(255, 255, 255))
    d.text((60, 470), "VALID THRU 08/29  UnionPay", font=font, fill=(255, 255, 255))
    res = reader.read(cv2.cvtColor(np.asarray(bank), cv2.COLOR_RGB2BGR))
    assert not res.card_found and res.reasons == (Reason.CARD_NOT_ID_CARD,)


def test_small_card_in_frame(reader, person):
    canvas = np.full((2400, 3200, 3), 90, np.uint8)
    small = cv2.resize(render_back(person), (250, 158))
    canvas[1000:1158, 1400:1650] = small
    res = reader.read(canvas)
    assert Reason.CARD_TOO_SMALL in res.reasons or not res.card_found


def test_to_dict_masks_pii_and_logs_carry_none(reader, person, portrait, caplog):
    with caplog.at_level(logging.DEBUG):
        res = reader.read(render_front(person, portrait))
    d = res.to_dict()
    text = json.dumps(d, ensure_ascii=False)
    assert person.id_number not in text and person.name not in text and person.address not in text
    assert d["fields"]["id_number"]["value"] == person.id_number[:4] + "*" * 10 + person.id_number[-4:]
    assert person.birth_date.isoformat() not in text
    assert json.loads(json.dumps(res.to_dict(mask_pii=False)))["fields"]["name"]["value"] == person.name
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert person.id_number not in logged and person.name not in logged


def test_concurrent_reads_agree(reader, person):
    img = render_back(person)
    out: list = []
    ts = [threading.Thread(target=lambda: out.append(values(reader.read(img)))) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(out) == 3 and all(o == out[0] for o in out)


def test_committed_fixture_cards(reader):
    """The fixture cards in tests/fixtures/cards (public-domain portraits) read exactly."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "fixtures" / "cards"
    truth = json.loads((root / "ground_truth.json").read_text(encoding="utf-8"))
    for name, gt in truth.items():
        f = reader.read((root / f"{name}_front.jpg").read_bytes())
        b = reader.read((root / f"{name}_back.jpg").read_bytes())
        got = {**values(f), **values(b)}
        assert got["id_number"] == gt["id_number"] and got["name"] == gt["name"]
        wrong = {k for k in gt if got.get(k) != gt[k]}
        # whatever is not read exactly is flagged, never silently wrong (傈僳 on the Hopper card is
        # dropped by the recogniser: reported as a missing field)
        if wrong:
            assert set(f.reasons) & {Reason.IDCARD_FIELD_MISSING, Reason.IDCARD_LOW_CONFIDENCE, Reason.IDCARD_RARE_CHARACTER}
        assert len(wrong) <= 1


def test_a_quad_that_cuts_the_card_is_retried_with_the_runner_up(reader, person, portrait, monkeypatch):
    """Benchmark person 90 (phone photo, tilted, glare): the best contour merged with the background
    and cut the number line off. A front with a field missing is read again with the next quad."""
    from dataclasses import replace

    from ocr import geometry

    photo = phone_photo(render_front(person, portrait), np.random.default_rng(3), strength="light")
    good = geometry.find_card_candidates(photo)[0]
    tl, tr, br, bl = good.corners
    # a quarter of the card falls outside this quad (which quarter depends on how the photo turned it)
    bad = replace(good, corners=np.float32([tl, tr, tr + 0.72 * (br - tr), tl + 0.72 * (bl - tl)]))
    monkeypatch.setattr(geometry, "find_card_candidates", lambda img, **kw: [bad])
    cut = reader.read(photo, expected_side=Side.FRONT)
    assert Reason.IDCARD_FIELD_MISSING in cut.reasons
    monkeypatch.setattr(geometry, "find_card_candidates", lambda img, **kw: [bad, good])
    res = reader.read(photo, expected_side=Side.FRONT)
    assert Reason.IDCARD_FIELD_MISSING not in res.reasons
    gt = ground_truth(person)
    assert {k: v.value for k, v in res.fields.items()} == {k: gt[k] for k in res.fields} and len(res.fields) == 6
