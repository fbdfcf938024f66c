"""Masking helpers, re-exported from the one implementation in models.masking."""

from models.masking import PII_FIELDS, mask_address, mask_birth_date, mask_id_number, mask_name, mask_value

__all__ = ["PII_FIELDS", "mask_address", "mask_birth_date", "mask_id_number", "mask_name", "mask_value"]
