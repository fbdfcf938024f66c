"""Masking of applicants' personal data, one implementation for every output.

Used by OCR results, API responses, batch reports, the review UI and logs-adjacent summaries. A
masked record must not let anyone reconstruct the ID number: the birth date is hidden entirely,
because with it and a partially shown number the check digit narrows the rest to a handful.
"""

from __future__ import annotations

from typing import Any

# field names that hold personal data, as used by OCR results, cases and API responses
PII_FIELDS = frozenset({"name", "id_number", "address", "birth_date", "declared_name", "declared_id_number"})


def mask_name(name: str) -> str:
    """张三 -> 张*, 欧阳娜娜 -> 欧***: keep the first character only."""
    if not name:
        return name
    return name[0] + "*" * max(1, len(name) - 1)


def mask_id_number(number: str) -> str:
    """110105194912310015 -> 1101**********0015: province/city and the last four characters."""
    if len(number) <= 8:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


def mask_address(address: str) -> str:
    """Keep the first six characters (province / city level), mask the rest."""
    if len(address) <= 6:
        return address
    return address[:6] + "*" * (len(address) - 6)


def mask_birth_date(value: str) -> str:
    """Hidden entirely: it is eight of the ID number's digits."""
    return "".join("*" if ch.isdigit() else ch for ch in value)


_MASKERS = {
    "name": mask_name,
    "declared_name": mask_name,
    "id_number": mask_id_number,
    "declared_id_number": mask_id_number,
    "address": mask_address,
    "birth_date": mask_birth_date,
}


def mask_value(field: str, value: Any) -> Any:
    """The masked display of one field's value; non-PII fields and None pass through."""
    if value is None or field not in _MASKERS:
        return value
    return _MASKERS[field](str(value))
