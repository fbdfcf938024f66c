from datetime import date

from models.reasons import Reason
from ocr import check_digit, validate_id_number
from ocr.idnumber import birth_date_of, region_known, sex_of, single_substitutions


def test_check_digit_matches_gb11643_examples():
    assert check_digit("11010519491231002") == "X"
    assert check_digit("43051219890813136") == "9"  # the specimen's number should end in 9, it shows 7


def test_valid_number_has_no_reasons():
    first = "11010119900307123"
    assert validate_id_number(first + check_digit(first)) == ()


def test_each_rule_has_its_own_reason():
    assert validate_id_number("430512198908131367") == (Reason.IDCARD_REGION_UNKNOWN, Reason.IDCARD_CHECKSUM_INVALID)
    assert validate_id_number("11010119900307123") == (Reason.IDCARD_NUMBER_FORMAT_INVALID,)
    assert validate_id_number("1101011990030712AB") == (Reason.IDCARD_NUMBER_FORMAT_INVALID,)
    first = "11010119901307123"  # month 13
    assert Reason.IDCARD_BIRTH_DATE_INVALID in validate_id_number(first + check_digit(first))
    first = "99010119900307123"
    assert Reason.IDCARD_REGION_UNKNOWN in validate_id_number(first + check_digit(first))


def test_birth_date_sex_and_region():
    assert birth_date_of("110101199003071234") == date(1990, 3, 7)
    assert sex_of("110101199003071234") == "男"
    assert sex_of("110101199003071244") == "女"
    assert region_known("110101") and not region_known("990101")


def test_single_substitution_is_unique_with_the_printed_birth_date():
    first = "11010119900307123"
    good = first + check_digit(first)
    misread = good[:3] + ("7" if good[3] != "7" else "1") + good[4:]
    cands = single_substitutions(misread, 3, printed_birth=date(1990, 3, 7))
    assert good in cands
    # a birth digit misread: the printed date pins it down
    bad_birth = good[:9] + ("1" if good[9] != "1" else "2") + good[10:]
    assert single_substitutions(bad_birth, 9, printed_birth=date(1990, 3, 7)) == [good]
