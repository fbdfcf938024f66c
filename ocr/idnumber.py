"""Pure rules of the 18-character resident ID number (GB 11643-1999)."""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache

from models.reasons import Reason

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_FORMAT = re.compile(r"^\d{17}[\dX]$")
# what a caller may send as a declared number: ASCII digits, the check character in either case
# (the API's form pattern and the CLI's argument check)
DECLARED_NUMBER_FORM = r"[0-9]{17}[0-9Xx]"


def check_digit(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("check_digit needs exactly 17 digits")
    s = sum(int(c) * w for c, w in zip(first17, WEIGHTS))
    c = (12 - s % 11) % 11
    return "X" if c == 10 else str(c)


def birth_date_of(number: str) -> date | None:
    try:
        return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except (ValueError, IndexError):
        return None


def sex_of(number: str) -> str | None:
    """男 for an odd sequence number, 女 for even."""
    if len(number) < 17 or not number[16].isdigit():
        return None
    return "男" if int(number[16]) % 2 == 1 else "女"


@lru_cache(maxsize=4096)
def region_known(code6: str) -> bool:
    """Whether the 6-digit region code is in GB/T 2260 (python-stdnum's cn/loc table)."""
    from stdnum import numdb

    info = numdb.get("cn/loc").info(code6)
    parts = {k for _, props in info for k in props}
    return "province" in parts and "county" in parts


def validate_id_number(number: str, *, today: date | None = None) -> tuple[Reason, ...]:
    """Format, region, birth date and check digit; an empty tuple means valid."""
    n = number.strip().upper()
    if not _FORMAT.match(n):
        return (Reason.IDCARD_NUMBER_FORMAT_INVALID,)
    reasons: list[Reason] = []
    if not region_known(n[:6]):
        reasons.append(Reason.IDCARD_REGION_UNKNOWN)
    born = birth_date_of(n)
    if born is None or born.year < 1880 or born > (today or date.today()):
        reasons.append(Reason.IDCARD_BIRTH_DATE_INVALID)
    if check_digit(n[:17]) != n[17]:
        reasons.append(Reason.IDCARD_CHECKSUM_INVALID)
    return tuple(reasons)


def single_substitutions(number: str, position: int, *, printed_birth: date | None) -> list[str]:
    """Numbers that differ from `number` only at `position` and pass every ID-number rule.

    When the printed birth date is known, candidates must agree with it too (the birth digits are
    then fully determined by the printed date, which is why this rarely yields more than one).
    """
    n = number.upper()
    alphabet = "0123456789X" if position == 17 else "0123456789"
    out = []
    for ch in alphabet:
        if ch == n[position]:
            continue
        cand = n[:position] + ch + n[position + 1 :]
        if validate_id_number(cand):
            continue
        if printed_birth is not None and birth_date_of(cand) != printed_birth:
            continue
        out.append(cand)
    return out
