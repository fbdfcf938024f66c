"""Cross-field validation of a read card (pure: no model, no clock — `today` is an argument)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date
from collections.abc import Mapping
from typing import Any

from models.reasons import Reason

from .ethnicities import KNOWN_UNDETERMINED, is_recognised
from .fields import is_card_name
from .idnumber import birth_date_of, sex_of, validate_id_number
from .masking import mask_value
from .reader import IdCardResult, Side
from .synthetic import validity_years

# failures that make the card unacceptable; everything else is a soft signal for the policy
HARD = frozenset({
    Reason.CARD_NOT_FOUND, Reason.CARD_NOT_ID_CARD, Reason.CARD_WRONG_SIDE, Reason.CARD_SAME_SIDE_TWICE,
    Reason.IDCARD_FIELD_MISSING, Reason.IDCARD_CHECKSUM_INVALID, Reason.IDCARD_NUMBER_FORMAT_INVALID,
    Reason.IDCARD_REGION_UNKNOWN, Reason.IDCARD_BIRTH_DATE_INVALID, Reason.IDCARD_BIRTH_DATE_MISMATCH,
    Reason.IDCARD_SEX_MISMATCH, Reason.IDCARD_EXPIRED, Reason.IDCARD_NOT_YET_VALID,
    Reason.IDCARD_VALIDITY_SPAN_INVALID, Reason.IDCARD_VALIDITY_INVALID,
    Reason.IDCARD_DECLARED_NAME_MISMATCH, Reason.IDCARD_DECLARED_NUMBER_MISMATCH,
})
_CARRIED = (Reason.CARD_TOO_SMALL, Reason.CARD_PARTIALLY_OUTSIDE, Reason.CARD_LABEL_MISPRINTED,
            Reason.CARD_PORTRAIT_NOT_FOUND, Reason.IDCARD_LOW_CONFIDENCE, Reason.IDCARD_RARE_CHARACTER,
            Reason.IDCARD_CHARACTER_CORRECTED, Reason.IDCARD_FIELD_MISSING, Reason.CARD_NOT_ID_CARD,
            Reason.CARD_NOT_FOUND, Reason.QUALITY_BLURRED, Reason.QUALITY_TOO_DARK, Reason.QUALITY_GLARE)


@dataclass(frozen=True)
class CardValidation:
    passed: bool
    reasons: tuple[Reason, ...]
    checks: dict[str, bool | None]  # None = could not be checked (field missing)
    corrections: tuple[dict, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": [str(r) for r in self.reasons],
                "checks": dict(self.checks), "corrections": [dict(c) for c in self.corrections]}


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _years_between(a: date, b: date) -> int:
    return b.year - a.year - ((b.month, b.day) < (a.month, a.day))


def validate_card(
    front: IdCardResult | None,
    back: IdCardResult | None,
    *,
    today: date,
    declared_name: str | None = None,
    declared_id_number: str | None = None,
) -> CardValidation:
    reasons: list[Reason] = []
    checks: dict[str, bool | None] = {}
    corrections: list[dict] = []

    for res, want in ((front, Side.FRONT), (back, Side.BACK)):
        if res is None:
            continue
        reasons.extend(r for r in res.reasons if r in _CARRIED)
        if res.card_found and res.side is not None and res.side != want:
            reasons.append(Reason.CARD_WRONG_SIDE)
    if front is not None and back is not None and front.side is not None and front.side == back.side:
        reasons.append(Reason.CARD_SAME_SIDE_TWICE)

    f = {k: v.value for k, v in front.fields.items()} if front is not None and front.side == Side.FRONT else {}
    b = {k: v.value for k, v in back.fields.items()} if back is not None and back.side == Side.BACK else {}
    if front is not None and front.side == Side.FRONT:
        for k, v in front.fields.items():
            if v.corrected_from is not None:
                corrections.append({"field": k, "from": mask_value(k, v.corrected_from), "to": mask_value(k, v.value),
                                    "confidence": round(v.confidence, 4)})

    number = f.get("id_number")
    printed_birth = _date(f.get("birth_date"))
    if number:
        num_reasons = validate_id_number(number, today=today)
        reasons.extend(num_reasons)
        checks["number_format"] = Reason.IDCARD_NUMBER_FORMAT_INVALID not in num_reasons
        ok_format = checks["number_format"]
        checks["check_digit"] = ok_format and Reason.IDCARD_CHECKSUM_INVALID not in num_reasons
        checks["region"] = (Reason.IDCARD_REGION_UNKNOWN not in num_reasons) if ok_format else None
        checks["birth_date_valid"] = (Reason.IDCARD_BIRTH_DATE_INVALID not in num_reasons) if ok_format else None
        nb = birth_date_of(number) if ok_format else None
        checks["birth_date_matches"] = None if (nb is None or printed_birth is None) else nb == printed_birth
        if checks["birth_date_matches"] is False:
            reasons.append(Reason.IDCARD_BIRTH_DATE_MISMATCH)
        ns = sex_of(number) if ok_format else None
        checks["sex_matches"] = None if (ns is None or not f.get("sex")) else ns == f["sex"]
        if checks["sex_matches"] is False:
            reasons.append(Reason.IDCARD_SEX_MISMATCH)
    else:
        for k in ("number_format", "check_digit", "region", "birth_date_valid", "birth_date_matches", "sex_matches"):
            checks[k] = None

    eth = f.get("ethnicity")
    checks["ethnicity"] = None if not eth else is_recognised(eth)
    if checks["ethnicity"] is False:
        # unknown wording (e.g. 穿青人) goes to review, it is not a rejection by itself
        reasons.append(Reason.IDCARD_ETHNICITY_UNKNOWN)

    start, until_raw = _date(b.get("valid_from")), b.get("valid_until")
    until = None if until_raw in (None, "", "长期") else _date(until_raw)
    if b:
        if start is None or (until_raw not in ("长期",) and until is None) or (until is not None and until <= start):
            checks["validity_period"] = False
            reasons.append(Reason.IDCARD_VALIDITY_INVALID)
        else:
            checks["validity_period"] = True
            checks["started"] = start <= today
            if not checks["started"]:
                reasons.append(Reason.IDCARD_NOT_YET_VALID)
            checks["not_expired"] = until is None or today <= until
            if not checks["not_expired"]:
                reasons.append(Reason.IDCARD_EXPIRED)
            born = printed_birth or (birth_date_of(number) if number else None)
            if born is not None:
                age = _years_between(born, start)
                actual = None if until is None else round((until - start).days / 365.25)
                # issue dates near a birthday may land either side of an age boundary
                allowed = {validity_years(a) for a in (age - 1, age, age + 1) if a >= 0}
                checks["validity_span"] = actual in allowed
                if not checks["validity_span"]:
                    reasons.append(Reason.IDCARD_VALIDITY_SPAN_INVALID)
            else:
                checks["validity_span"] = None

    if declared_name is not None:
        checks["declared_name"] = bool(f.get("name")) and declared_name.strip() == f.get("name")
        if not checks["declared_name"]:
            reasons.append(Reason.IDCARD_DECLARED_NAME_MISMATCH)
    if declared_id_number is not None:
        checks["declared_number"] = bool(number) and declared_id_number.strip().upper() == number
        if not checks["declared_number"]:
            reasons.append(Reason.IDCARD_DECLARED_NUMBER_MISMATCH)
    if front is None or back is None:
        pass  # a one-sided submission (manual path) validates what it has
    out = tuple(dict.fromkeys(reasons))
    return CardValidation(not any(r in HARD for r in out), out, checks, tuple(corrections))


def _iso_date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        return None


_ADDRESS_PUNCT = frozenset("-()（）·#、，,．.－—/")


def _is_han(c: str) -> bool:
    return unicodedata.name(c, "").startswith("CJK")


def check_field_value(field: str, value: str, card: Mapping[str, str | None] | None = None) -> str | None:
    """Why `value` cannot be what a resident ID card prints in `field`, or None when it can.

    For a reviewer's correction of a misread: the reader's rules per field, and the cross-field
    rules against the card's other values (`card`, field -> current value), so a typo, a value
    pasted from elsewhere or a reading that contradicts the ID number is refused at once instead
    of being approved."""
    v = value.strip()
    card = {k: (x or "").strip() for k, x in (card or {}).items()}
    if not v or any(unicodedata.category(c)[0] == "C" or c == "\ufffd" for c in v):
        return "empty, or holds control or undecodable characters"
    number = card.get("id_number", "")
    number_ok = len(number) == 18 and not {Reason.IDCARD_NUMBER_FORMAT_INVALID, Reason.IDCARD_CHECKSUM_INVALID} & set(validate_id_number(number))
    if field == "name":
        return None if is_card_name(v) else "a name is Chinese characters and '·' only"
    if field == "sex":
        if v not in ("男", "女"):
            return "sex is 男 or 女"
        if number_ok and sex_of(number) != v:
            return "contradicts the ID number's sequence digit"
        return None
    if field == "ethnicity":
        # unlisted wording (e.g. 穿青人) is legitimate: it sends the case to review, not out
        return None if len(v) <= 10 and all(_is_han(c) for c in v) else "an ethnicity is 1-10 Chinese characters"
    if field in ("birth_date", "valid_from", "valid_until"):
        if field == "valid_until" and v == "长期":
            return None
        d = _iso_date(v)
        if d is None:
            return "a date is written YYYY-MM-DD" + (" or 长期" if field == "valid_until" else "")
        if field == "birth_date":
            if d > date.today():
                return "a birth date cannot be in the future"
            if number_ok and birth_date_of(number) != d:
                return "contradicts the birth date in the ID number"
        if field == "valid_from" and d > date.today():
            return "a card cannot have been issued in the future"
        return None
    if field == "id_number":
        reasons = validate_id_number(v.upper())
        if Reason.IDCARD_NUMBER_FORMAT_INVALID in reasons:
            return "an ID number is 17 digits and a digit or X"
        if Reason.IDCARD_CHECKSUM_INVALID in reasons:
            # a reading that fails its own check digit is a misread again, or a forged card
            return "this number fails its check digit: re-read it, or reject the case"
        born = _iso_date(card.get("birth_date", ""))
        if born is not None and birth_date_of(v.upper()) != born:
            return "its birth date contradicts the card's printed birth date"
        if card.get("sex") in ("男", "女") and sex_of(v.upper()) != card["sex"]:
            return "its sequence digit contradicts the card's printed sex"
        return None
    if field in ("address", "authority"):
        # Chinese text with house numbers; Latin-1 mojibake of a non-UTF-8 client, markup or
        # "NaN" has no Han characters or holds characters no card prints
        if len(v) > 64:
            return "at most 64 characters"
        if sum(_is_han(c) for c in v) < 2 or not all(
            _is_han(c) or (c.isascii() and c.isalnum()) or c.isdigit() or c in _ADDRESS_PUNCT for c in v
        ):
            return "Chinese text, digits and house-number punctuation only"
        return None
    return None
