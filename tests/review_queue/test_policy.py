"""Every branch of the decision policy, table-driven, on the packaged default policy file."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.errors import IdvError
from models.reasons import Reason as R
from review_queue.policy import DEFAULT_POLICY_FILE, Outcome, Signals, decide, load_policy

A, J, V = Outcome.APPROVED, Outcome.REJECTED, Outcome.REVIEW
THR = 0.36  # a face threshold; the policy's margins are 0.05 above / 0.10 below

CASES = [
    # id, signals kwargs, outcome, reasons that must be present, priority (None = don't care)
    ("all clear", dict(reasons={R.LIVENESS_PASSED, R.FACE_MATCH}, liveness_passed=True,
                       face_similarity=0.70, face_threshold=THR, ocr_min_key_confidence=0.99), A, {R.DECISION_ALL_CLEAR}, 0),
    ("empty", dict(reasons=set()), A, {R.DECISION_ALL_CLEAR}, 0),
    ("checksum invalid, confident read", dict(reasons={R.IDCARD_CHECKSUM_INVALID}, ocr_min_key_confidence=0.99), J, {R.IDCARD_CHECKSUM_INVALID}, 0),
    ("checksum invalid, low confidence read", dict(reasons={R.IDCARD_CHECKSUM_INVALID}, ocr_min_key_confidence=0.5), V, {R.IDCARD_CHECKSUM_INVALID, R.IDCARD_LOW_CONFIDENCE}, 3),
    ("birth date mismatch", dict(reasons={R.IDCARD_BIRTH_DATE_MISMATCH}), J, {R.IDCARD_BIRTH_DATE_MISMATCH}, 0),
    ("sex mismatch", dict(reasons={R.IDCARD_SEX_MISMATCH}), J, {R.IDCARD_SEX_MISMATCH}, 0),
    ("expired", dict(reasons={R.IDCARD_EXPIRED}), J, {R.IDCARD_EXPIRED}, 0),
    ("expired on a glared card", dict(reasons={R.IDCARD_EXPIRED, R.QUALITY_GLARE}), V, {R.IDCARD_EXPIRED, R.QUALITY_GLARE}, 3),
    ("declared name mismatch", dict(reasons={R.IDCARD_DECLARED_NAME_MISMATCH}), J, {R.IDCARD_DECLARED_NAME_MISMATCH}, 0),
    ("declared number mismatch", dict(reasons={R.IDCARD_DECLARED_NUMBER_MISMATCH}), J, {R.IDCARD_DECLARED_NUMBER_MISMATCH}, 0),
    ("face far below threshold", dict(reasons={R.FACE_MATCH}, face_similarity=THR - 0.20, face_threshold=THR), J, {R.FACE_MISMATCH}, 0),
    ("face just below threshold", dict(reasons={R.FACE_MISMATCH}, face_similarity=THR - 0.05, face_threshold=THR), V, {R.FACE_BORDERLINE}, 2),
    ("face just above threshold", dict(reasons={R.FACE_MATCH}, face_similarity=THR + 0.02, face_threshold=THR), V, {R.FACE_BORDERLINE}, 2),
    ("face clearly above", dict(reasons={R.FACE_MISMATCH}, face_similarity=THR + 0.30, face_threshold=THR), A, {R.DECISION_ALL_CLEAR}, 0),
    ("face mismatch by stage, no numbers", dict(reasons={R.FACE_MISMATCH}), J, {R.FACE_MISMATCH}, 0),
    ("face mismatch on a poor face image", dict(reasons={R.FACE_POOR_QUALITY}, face_similarity=0.05, face_threshold=THR), V, {R.FACE_MISMATCH, R.FACE_POOR_QUALITY}, 3),
    ("static image", dict(reasons={R.LIVENESS_STATIC_IMAGE}, liveness_passed=False), J, {R.LIVENESS_STATIC_IMAGE}, 0),
    ("rigid motion", dict(reasons={R.LIVENESS_RIGID_MOTION}, liveness_passed=False), J, {R.LIVENESS_RIGID_MOTION}, 0),
    ("face changed", dict(reasons={R.LIVENESS_FACE_CHANGED}, liveness_passed=False), J, {R.LIVENESS_FACE_CHANGED}, 0),
    ("spoof is never softened by quality", dict(reasons={R.LIVENESS_STATIC_IMAGE, R.LIVENESS_POOR_QUALITY}), J, {R.LIVENESS_STATIC_IMAGE}, 0),
    ("action missing, clear capture", dict(reasons={R.LIVENESS_ACTION_MISSING}, liveness_passed=False), J, {R.LIVENESS_ACTION_MISSING}, 0),
    ("order wrong, clear capture", dict(reasons={R.LIVENESS_ORDER_WRONG}, liveness_passed=False), J, {R.LIVENESS_ORDER_WRONG}, 0),
    ("action missing, poor capture", dict(reasons={R.LIVENESS_ACTION_MISSING, R.LIVENESS_POOR_QUALITY}, liveness_passed=False), V, {R.LIVENESS_ACTION_MISSING, R.LIVENESS_POOR_QUALITY}, 3),
    ("order wrong, small face", dict(reasons={R.LIVENESS_ORDER_WRONG, R.LIVENESS_FACE_TOO_SMALL}), V, {R.LIVENESS_ORDER_WRONG}, 3),
    ("quality only: blurred", dict(reasons={R.QUALITY_BLURRED}), V, {R.QUALITY_BLURRED}, 1),
    ("low OCR confidence", dict(reasons=set(), ocr_min_key_confidence=0.6), V, {R.IDCARD_LOW_CONFIDENCE}, 1),
    ("OCR confidence at threshold", dict(reasons=set(), ocr_min_key_confidence=0.90), A, {R.DECISION_ALL_CLEAR}, 0),
    ("ethnicity unknown", dict(reasons={R.IDCARD_ETHNICITY_UNKNOWN}), V, {R.IDCARD_ETHNICITY_UNKNOWN}, 2),
    ("character corrected", dict(reasons={R.IDCARD_CHARACTER_CORRECTED}), V, {R.IDCARD_CHARACTER_CORRECTED}, 2),
    ("rare character", dict(reasons={R.IDCARD_RARE_CHARACTER}), V, {R.IDCARD_RARE_CHARACTER}, 2),
    ("label misprinted", dict(reasons={R.CARD_LABEL_MISPRINTED}), V, {R.CARD_LABEL_MISPRINTED}, 2),
    ("stage missing", dict(reasons=set(), stages_missing={"ocr_back"}), V, {R.DECISION_STAGE_UNAVAILABLE}, 1),
    ("stage missing but a spoof elsewhere", dict(reasons={R.LIVENESS_RIGID_MOTION}, stages_missing={"face"}), J, {R.LIVENESS_RIGID_MOTION, R.DECISION_STAGE_UNAVAILABLE}, 0),
    ("liveness failed without a reason", dict(reasons=set(), liveness_passed=False), V, {R.DECISION_UNEXPLAINED_FAILURE}, 2),
    ("manual, clean pre-checks", dict(reasons=set(), manual=True, face_similarity=0.8, face_threshold=THR), V, {R.DECISION_MANUAL_SUBMISSION}, 1),
    ("manual with a hard failure stays review", dict(reasons={R.IDCARD_EXPIRED}, manual=True), V, {R.DECISION_MANUAL_SUBMISSION, R.IDCARD_EXPIRED}, 3),
    ("manual, selfie-card mismatch", dict(reasons={R.FACE_SELFIE_CARD_MISMATCH}, manual=True), V, {R.FACE_SELFIE_CARD_MISMATCH}, 3),
    ("unmapped reason goes to review", dict(reasons={R.INPUT_UNREADABLE}), V, {R.INPUT_UNREADABLE}, 2),
]


@pytest.mark.parametrize(("kw", "outcome", "must", "priority"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decide_table(kw, outcome, must, priority):
    policy = load_policy()
    kw = dict(kw)
    kw["reasons"] = frozenset(kw["reasons"])
    kw["stages_missing"] = frozenset(kw.get("stages_missing", ()))
    d = decide(Signals(**kw), policy)
    assert d.outcome is outcome, d
    assert must <= set(d.reasons), d
    if priority is not None:
        assert d.priority == priority, d
    assert d.policy_version == policy.version
    js = d.to_dict()
    assert js["outcome"] == str(outcome) and all(isinstance(r, str) for r in js["reasons"])


def test_reject_reasons_come_first_and_decision_is_deterministic():
    p = load_policy()
    s = Signals(frozenset({R.QUALITY_BLURRED, R.IDCARD_SEX_MISMATCH, R.LIVENESS_STATIC_IMAGE}))
    d = decide(s, p)
    assert d.outcome is J
    # the hard reason first, then the one the blur softened, then the review reason
    assert d.reasons == (R.LIVENESS_STATIC_IMAGE, R.IDCARD_SEX_MISMATCH, R.QUALITY_BLURRED)
    assert decide(s, p) == d


def test_signals_reject_unknown_stage():
    with pytest.raises(ValueError, match="unknown stage"):
        Signals(frozenset(), stages_missing=frozenset({"fingerprint"}))


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "policy.toml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('"idcard.expired" = "reject"', '"idcard.expired_typo" = "reject"', "unknown reason code"),
        ('"idcard.expired" = "reject"', '"idcard.expired" = "maybe"', "severity"),
        ('stage = "face"', 'stage = "palm"', "unknown soften stage"),
        ('"face.mismatch" = "reject"', '"face.mismatch" = "review"', "not reject-severity"),
        ("min_key_confidence = 0.90", "min_key_confidence = 1.5", "min_key_confidence"),
        ('default_severity = "review"', 'default_severity = "info"', "cannot be info"),
        ("[ocr]", "[ocr]\nsurprise = 1", "surprise"),
    ],
)
def test_invalid_policy_file_is_a_startup_error(tmp_path, old, new, message):
    text = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
    assert old in text
    with pytest.raises(IdvError, match=message) as ei:
        load_policy(_write(tmp_path, text.replace(old, new, 1)))
    assert ei.value.code is R.REVIEW_POLICY_INVALID


def test_missing_and_broken_policy_files(tmp_path):
    with pytest.raises(IdvError) as ei:
        load_policy(tmp_path / "nope.toml")
    assert ei.value.code is R.REVIEW_POLICY_INVALID
    with pytest.raises(IdvError):
        load_policy(_write(tmp_path, "version = [unclosed"))


def test_operator_file_changes_the_outcome(tmp_path):
    text = DEFAULT_POLICY_FILE.read_text(encoding="utf-8").replace(
        '"idcard.ethnicity_unknown" = "review"', '"idcard.ethnicity_unknown" = "info"')
    p = load_policy(_write(tmp_path, text))
    assert decide(Signals(frozenset({R.IDCARD_ETHNICITY_UNKNOWN})), p).outcome is A
