"""Cross-field validation on constructed reads (no model): every rule has its own reason."""

from datetime import date

import pytest

from models.reasons import Reason
from ocr import FieldRead, IdCardResult, Side, check_digit, validate_card

TODAY = date(2026, 6, 1)
FIRST17 = "11010119900307123"  # odd sequence: male
NUMBER = FIRST17 + check_digit(FIRST17)


def front(**over) -> IdCardResult:
    v = {"name": "张三", "sex": "男", "ethnicity": "汉", "birth_date": "1990-03-07",
         "address": "北京市东城区景山前街4号", "id_number": NUMBER}
    v.update(over)
    return IdCardResult(Side.FRONT, {k: FieldRead(x, 0.99) for k, x in v.items()}, (), None, {}, True, 1.0)


def back(**over) -> IdCardResult:
    v = {"authority": "北京市公安局东城分局", "valid_from": "2016-05-01", "valid_until": "2036-05-01"}
    v.update(over)
    return IdCardResult(Side.BACK, {k: FieldRead(x, 0.99) for k, x in v.items()}, (), None, {}, True, 1.0)


def test_consistent_card_passes():
    v = validate_card(front(), back(), today=TODAY, declared_name="张三", declared_id_number=NUMBER)
    assert v.passed and v.reasons == ()
    assert all(v.checks[k] for k in ("check_digit", "region", "birth_date_matches", "sex_matches",
                                     "ethnicity", "not_expired", "validity_span", "declared_name"))
    assert v.to_dict()["passed"] is True


def test_each_inconsistency_is_flagged():
    bad_digit = NUMBER[:17] + ("0" if NUMBER[17] != "0" else "1")
    cases = {
        Reason.IDCARD_CHECKSUM_INVALID: (front(id_number=bad_digit), back()),
        Reason.IDCARD_BIRTH_DATE_MISMATCH: (front(birth_date="1991-03-07"), back()),
        Reason.IDCARD_SEX_MISMATCH: (front(sex="女"), back()),
        Reason.IDCARD_ETHNICITY_UNKNOWN: (front(ethnicity="穿青人"), back()),
        Reason.IDCARD_EXPIRED: (front(), back(valid_from="2004-05-01", valid_until="2024-05-01")),
        Reason.IDCARD_NOT_YET_VALID: (front(), back(valid_from="2026-07-01", valid_until="2046-07-01")),
        Reason.IDCARD_VALIDITY_SPAN_INVALID: (front(), back(valid_from="2016-05-01", valid_until="2021-05-01")),
        Reason.IDCARD_VALIDITY_INVALID: (front(), back(valid_from="2016-05-01", valid_until="2010-05-01")),
        Reason.CARD_SAME_SIDE_TWICE: (front(), front()),
        Reason.IDCARD_NUMBER_FORMAT_INVALID: (front(id_number=NUMBER[:17]), back()),
    }
    for reason, (f, b) in cases.items():
        v = validate_card(f, b, today=TODAY)
        assert reason in v.reasons, (reason, v.reasons)
    assert validate_card(front(ethnicity="穿青人"), back(), today=TODAY).passed  # review, not reject
    assert not validate_card(front(sex="女"), back(), today=TODAY).passed


def test_long_term_validity_needs_age_46():
    old = "11010119600307123"
    f = front(id_number=old + check_digit(old), birth_date="1960-03-07")
    assert validate_card(f, back(valid_from="2010-05-01", valid_until="长期"), today=TODAY).passed
    v = validate_card(front(), back(valid_from="2016-05-01", valid_until="长期"), today=TODAY)
    assert Reason.IDCARD_VALIDITY_SPAN_INVALID in v.reasons


def test_declared_values_must_equal_the_card():
    v = validate_card(front(), back(), today=TODAY, declared_name="张山", declared_id_number=NUMBER[:-1] + "0")
    assert Reason.IDCARD_DECLARED_NAME_MISMATCH in v.reasons
    assert Reason.IDCARD_DECLARED_NUMBER_MISMATCH in v.reasons and not v.passed


def test_correction_is_reported_masked():
    f = IdCardResult(Side.FRONT, {**front().fields, "id_number": FieldRead(NUMBER, 0.7, corrected_from=NUMBER[:5] + "9" + NUMBER[6:])},
                     (Reason.IDCARD_CHARACTER_CORRECTED,), None, {}, True, 1.0)
    v = validate_card(f, back(), today=TODAY)
    assert Reason.IDCARD_CHARACTER_CORRECTED in v.reasons
    assert v.corrections and "*" in v.corrections[0]["to"]


def test_wrong_side_uploaded():
    v = validate_card(back(), front(), today=TODAY)
    assert Reason.CARD_WRONG_SIDE in v.reasons and not v.passed


@pytest.mark.parametrize("field, value, ok", [
    ("name", "欧阳娜娜", True), ("name", "Zhang", False), ("sex", "女", True), ("sex", "F", False),
    ("ethnicity", "穿青人", True), ("ethnicity", "<b>", False),
    ("birth_date", "1990-02-28", True), ("birth_date", "1990-02-30", False), ("birth_date", "NaN", False),
    ("valid_until", "长期", True), ("valid_until", "2030-13-01", False),
    ("id_number", "11010519491231002X", True), ("id_number", "110105194912310027", False),
    ("id_number", "-1e309", False), ("address", "北京市朝阳区\x00", False), ("authority", "北京市公安局朝阳分局", True),
])
def test_reviewer_readings_are_held_to_the_card_rules(field, value, ok):
    from ocr import check_field_value

    assert (check_field_value(field, value) is None) is ok, check_field_value(field, value)


def test_reviewer_readings_must_agree_with_the_rest_of_the_card():
    from ocr import check_field_value

    card = {"id_number": "540229201610315422", "sex": "女", "birth_date": "2016-10-31"}
    assert check_field_value("sex", "男", card) is not None  # 17th digit 2: female
    assert check_field_value("birth_date", "2016-10-30", card) is not None
    assert check_field_value("birth_date", "9999-12-31", {}) is not None
    assert check_field_value("birth_date", "2016-10-31", card) is None
    assert check_field_value("id_number", "11010519491231002X", card) is not None  # other birth date
    for junk in ("<img src=x onerror=alert(1)>", "NaN", "ÄãºÃ°¡"):  # markup, NaN, Latin-1 mojibake
        assert check_field_value("address", junk, card) is not None, junk
    assert check_field_value("address", "北京市朝阳区建国路88号SOHO现代城A座1201", card) is None
