"""The one reason-code enum of the product.

Values are dotted, stable strings: they appear in API responses, the review UI, batch reports and
the docs, so a value is never renamed once released (add a new one instead). Each package appends
its own section; keep sections together and values unique.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # --- input -------------------------------------------------------------------------------
    INPUT_MISSING = "input.missing"
    INPUT_EMPTY = "input.empty"
    INPUT_UNREADABLE = "input.unreadable"
    INPUT_WRONG_TYPE = "input.wrong_type"
    INPUT_TOO_LARGE = "input.too_large"
    INPUT_TOO_MANY_PIXELS = "input.too_many_pixels"
    INPUT_TOO_SMALL = "input.too_small"
    INPUT_INVALID = "input.invalid"

    # --- models ------------------------------------------------------------------------------
    MODEL_MISSING = "model.missing"
    MODEL_CHECKSUM_MISMATCH = "model.checksum_mismatch"
    MODEL_SHAPE_MISMATCH = "model.shape_mismatch"

    # --- image / capture quality -----------------------------------------------------------
    QUALITY_BLURRED = "quality.blurred"
    QUALITY_TOO_DARK = "quality.too_dark"
    QUALITY_OVEREXPOSED = "quality.overexposed"
    QUALITY_GLARE = "quality.glare"

    # --- liveness ----------------------------------------------------------------------------
    LIVENESS_PASSED = "liveness.passed"
    LIVENESS_ACTION_MISSING = "liveness.action_missing"
    LIVENESS_ORDER_WRONG = "liveness.order_wrong"
    LIVENESS_NO_FACE = "liveness.no_face"
    LIVENESS_MULTIPLE_FACES = "liveness.multiple_faces"
    LIVENESS_FACE_LOST = "liveness.face_lost"
    LIVENESS_FACE_TOO_SMALL = "liveness.face_too_small"
    LIVENESS_FACE_CHANGED = "liveness.face_changed"
    LIVENESS_STATIC_IMAGE = "liveness.static_image"
    LIVENESS_RIGID_MOTION = "liveness.rigid_motion"
    LIVENESS_TOO_SHORT = "liveness.too_short"
    LIVENESS_TOO_LONG = "liveness.too_long"
    LIVENESS_TOO_FEW_FRAMES = "liveness.too_few_frames"
    LIVENESS_VIDEO_UNREADABLE = "liveness.video_unreadable"
    LIVENESS_CHALLENGE_INVALID = "liveness.challenge_invalid"
    LIVENESS_CHALLENGE_EXPIRED = "liveness.challenge_expired"
    LIVENESS_CHALLENGE_USED = "liveness.challenge_used"
    LIVENESS_CHALLENGE_UNKNOWN = "liveness.challenge_unknown"
    LIVENESS_POOR_QUALITY = "liveness.poor_quality"

    # --- ID card -----------------------------------------------------------------------------
    CARD_NOT_FOUND = "card.not_found"
    CARD_PARTIALLY_OUTSIDE = "card.partially_outside"
    CARD_TOO_SMALL = "card.too_small"
    CARD_WRONG_SIDE = "card.wrong_side"
    CARD_SAME_SIDE_TWICE = "card.same_side_twice"
    CARD_NOT_ID_CARD = "card.not_id_card"
    CARD_POSSIBLE_RECAPTURE = "card.possible_recapture"
    CARD_LABEL_MISPRINTED = "card.label_misprinted"
    CARD_PORTRAIT_NOT_FOUND = "card.portrait_not_found"
    IDCARD_FIELD_MISSING = "idcard.field_missing"
    IDCARD_LOW_CONFIDENCE = "idcard.low_confidence"
    IDCARD_CHECKSUM_INVALID = "idcard.checksum_invalid"
    IDCARD_NUMBER_FORMAT_INVALID = "idcard.number_format_invalid"
    IDCARD_REGION_UNKNOWN = "idcard.region_unknown"
    IDCARD_BIRTH_DATE_INVALID = "idcard.birth_date_invalid"
    IDCARD_BIRTH_DATE_MISMATCH = "idcard.birth_date_mismatch"
    IDCARD_SEX_MISMATCH = "idcard.sex_mismatch"
    IDCARD_ETHNICITY_UNKNOWN = "idcard.ethnicity_unknown"
    IDCARD_EXPIRED = "idcard.expired"
    IDCARD_NOT_YET_VALID = "idcard.not_yet_valid"
    IDCARD_VALIDITY_SPAN_INVALID = "idcard.validity_span_invalid"
    IDCARD_VALIDITY_INVALID = "idcard.validity_invalid"
    IDCARD_CHARACTER_CORRECTED = "idcard.character_corrected"
    IDCARD_RARE_CHARACTER = "idcard.rare_character"
    IDCARD_DECLARED_NAME_MISMATCH = "idcard.declared_name_mismatch"
    IDCARD_DECLARED_NUMBER_MISMATCH = "idcard.declared_number_mismatch"

    # --- face match --------------------------------------------------------------------------
    FACE_NOT_DETECTED = "face.not_detected"
    FACE_MULTIPLE = "face.multiple"
    FACE_TOO_SMALL = "face.too_small"
    FACE_POOR_QUALITY = "face.poor_quality"
    FACE_MATCH = "face.match"
    FACE_MISMATCH = "face.mismatch"
    FACE_BORDERLINE = "face.borderline"
    FACE_SELFIE_CARD_MISMATCH = "face.selfie_card_mismatch"
    FACE_POSE = "face.pose"
    FACE_OCCLUDED = "face.occluded"
    FACE_CARD_PORTRAIT_NOT_FOUND = "face.card_portrait_not_found"

    # --- decision ----------------------------------------------------------------------------
    DECISION_ALL_CLEAR = "decision.all_clear"
    DECISION_MANUAL_SUBMISSION = "decision.manual_submission"
    DECISION_STAGE_UNAVAILABLE = "decision.stage_unavailable"
    DECISION_UNEXPLAINED_FAILURE = "decision.unexplained_failure"

    # --- API / service -----------------------------------------------------------------------
    AUTH_MISSING = "auth.missing"
    AUTH_INVALID = "auth.invalid"
    AUTH_FORBIDDEN = "auth.forbidden"
    RATE_LIMITED = "rate.limited"
    NOT_FOUND = "resource.not_found"
    CONFLICT = "resource.conflict"
    IDEMPOTENCY_CONFLICT = "idempotency.conflict"
    INTERNAL_ERROR = "server.internal_error"
    METHOD_NOT_ALLOWED = "request.method_not_allowed"
    SERVICE_NOT_READY = "server.not_ready"
    SERVER_START_FAILED = "server.start_failed"
    CONFIG_INVALID = "config.invalid"

    # --- review ------------------------------------------------------------------------------
    REVIEW_NOT_CLAIMED = "review.not_claimed"
    REVIEW_CLAIMED_BY_OTHER = "review.claimed_by_other"
    REVIEW_REASON_UNKNOWN = "review.reason_unknown"
    REVIEW_TEXT_TOO_LONG = "review.text_too_long"
    REVIEW_CSRF_INVALID = "review.csrf_invalid"
    REVIEW_ALREADY_DECIDED = "review.already_decided"
    REVIEW_NOT_FOUND = "review.not_found"
    REVIEW_LOGIN_FAILED = "review.login_failed"
    REVIEW_LOGIN_THROTTLED = "review.login_throttled"
    REVIEW_NOT_LOGGED_IN = "review.not_logged_in"
    REVIEW_FORBIDDEN = "review.forbidden"
    REVIEW_QUEUE_EMPTY = "review.queue_empty"
    REVIEW_SAME_REVIEWER = "review.same_reviewer"
    REVIEW_FIELD_UNKNOWN = "review.field_unknown"
    REVIEW_CORRECTION_INVALID = "review.correction_invalid"
    REVIEW_AUDIT_APPEND_ONLY = "review.audit_append_only"
    REVIEW_POLICY_INVALID = "review.policy_invalid"
    REVIEW_HOLIDAY_FILE_INVALID = "review.holiday_file_invalid"
    REVIEW_STORE_KEY_INVALID = "review.store_key_invalid"
    REVIEW_EVIDENCE_MISSING = "review.evidence_missing"
    REVIEW_EVIDENCE_TAMPERED = "review.evidence_tampered"
    WEBHOOK_SIGNATURE_INVALID = "webhook.signature_invalid"
    WEBHOOK_TIMESTAMP_STALE = "webhook.timestamp_stale"


def describe(reason: Reason | str) -> str:
    """Human wording for the review UI and reports (falls back to the code itself)."""
    return _WORDS.get(str(reason), str(reason))


_WORDS: dict[str, str] = {
    "input.unreadable": "The file could not be decoded",
    "liveness.action_missing": "A challenged action was not seen in the capture",
    "liveness.order_wrong": "The actions happened in a different order than challenged",
    "liveness.static_image": "The capture shows a still image, not a live face",
    "liveness.rigid_motion": "The face moves only as a flat picture (photo or screen)",
    "liveness.face_changed": "A different face appeared during the capture",
    "idcard.checksum_invalid": "The ID number's check character is wrong",
    "idcard.birth_date_mismatch": "The printed birth date differs from the one in the ID number",
    "idcard.sex_mismatch": "The printed sex differs from the ID number's parity",
    "idcard.expired": "The card has expired",
    "idcard.ethnicity_unknown": "The ethnicity is not one of the 56 recognised groups",
    "card.label_misprinted": "A printed label on the card differs from the official wording",
    "card.not_found": "No ID card was found in the photo",
    "card.not_id_card": "The photo shows a card, but not a resident ID card",
    "card.too_small": "The card is too small in the photo to read reliably",
    "card.partially_outside": "Part of the card is outside the photo",
    "card.wrong_side": "The photo shows the other side of the card than requested",
    "card.same_side_twice": "The same side of the card was uploaded twice",
    "card.portrait_not_found": "The card's portrait area could not be found",
    "idcard.field_missing": "A field of the card could not be read",
    "idcard.region_unknown": "The ID number's region code does not exist",
    "idcard.number_format_invalid": "The ID number does not have 17 digits and a check character",
    "idcard.validity_span_invalid": "The validity period does not fit the holder's age when issued",
    "face.mismatch": "The live face does not match the card portrait",
    "face.borderline": "The face similarity is close to the threshold",
    "face.not_detected": "No face was found",
    "decision.all_clear": "All checks passed",
    "decision.manual_submission": "Manual submission: selfie with card and card front",
    "decision.stage_unavailable": "A check could not run; a person must decide",
    "decision.unexplained_failure": "A check failed without giving a reason",
    "liveness.poor_quality": "The live capture is of poor quality",
    "liveness.face_too_small": "The face is too small in the live capture",
    "liveness.face_lost": "The face left the frame during the capture",
    "liveness.multiple_faces": "More than one face in the live capture",
    "idcard.low_confidence": "Key card fields were read with low confidence",
    "idcard.character_corrected": "A misread character on the card was corrected by the validation rules",
    "idcard.rare_character": "The card holds a rare character the reader may not know",
    "idcard.declared_name_mismatch": "The declared name differs from the card",
    "idcard.declared_number_mismatch": "The declared ID number differs from the card",
    "idcard.not_yet_valid": "The card is not yet valid",
    "face.selfie_card_mismatch": "The face in the selfie does not match the portrait of the held card",
    "face.poor_quality": "The face image is of poor quality",
    "face.pose": "The head is turned too far from frontal",
    "face.occluded": "The face is partly covered or only partly visible",
    "face.card_portrait_not_found": "No card portrait face was found beside the person in the selfie",
    "face.multiple": "More than one face of similar size was found",
    "face.too_small": "The face is too small to compare reliably",
    "quality.blurred": "The image is blurred",
    "quality.glare": "Glare covers part of the image",
    "quality.too_dark": "The image is too dark",
    "quality.overexposed": "The image is overexposed",
    "review.not_claimed": "You have not claimed this case (or your claim expired)",
    "review.claimed_by_other": "Another reviewer has claimed this case",
    "review.reason_unknown": "The decision reason is not one of the allowed reasons",
    "review.text_too_long": "The free-text note is too long",
    "review.csrf_invalid": "The form token is missing or invalid; reload the page and try again",
    "review.already_decided": "The case has already been decided",
    "review.same_reviewer": "A reject must be confirmed by a different reviewer",
}
