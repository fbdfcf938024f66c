"""ID card OCR: find and straighten the card, read both sides with PP-OCRv4, validate every field.

Public API (the rest of the package is implementation):
    IdCardReader(config, registry).read(image, expected_side=...) -> IdCardResult
    validate_card(front, back, today=..., declared_name=..., declared_id_number=...) -> CardValidation
    validate_id_number(number), check_digit(first17), is_card_name(text)
    synthetic cards: CardPerson, random_person, render_front, render_back, phone_photo, ground_truth
"""

from .ethnicities import ETHNICITIES
from .fields import is_card_name
from .idnumber import check_digit, validate_id_number
from .masking import mask_address, mask_id_number, mask_name
from .reader import FieldRead, IdCardReader, IdCardResult, OcrConfig, Side
from .synthetic import CardPerson, ground_truth, phone_photo, random_person, render_back, render_front
from .validation import CardValidation, check_field_value, validate_card

__all__ = [
    "ETHNICITIES",
    "CardPerson",
    "CardValidation",
    "FieldRead",
    "IdCardReader",
    "IdCardResult",
    "OcrConfig",
    "Side",
    "check_digit",
    "check_field_value",
    "ground_truth",
    "is_card_name",
    "mask_address",
    "mask_id_number",
    "mask_name",
    "phone_photo",
    "random_person",
    "render_back",
    "render_front",
    "validate_card",
    "validate_id_number",
]
