"""Masking of personal data for responses and reports (never log the unmasked values)."""

from __future__ import annotations


def mask_name(name: str) -> str:
    """张三 -> 张*, 欧阳娜娜 -> 欧***: keep the first character only."""
    if not name:
        return name
    return name[0] + "*" * (len(name) - 1)


def mask_id_number(number: str) -> str:
    """110101199003071234 -> 110101**********34: region code and last two characters."""
    if len(number) <= 8:
        return "*" * len(number)
    return number[:6] + "*" * (len(number) - 8) + number[-2:]


def mask_address(address: str) -> str:
    """Keep the first six characters (province / city level), mask the rest."""
    if len(address) <= 6:
        return address
    return address[:6] + "*" * (len(address) - 6)
