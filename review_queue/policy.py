"""The decision policy ("confidence router"): stage signals -> approved / rejected / review.

Pure: no I/O besides loading the TOML file once at start. Thresholds and severities live in the
policy file (`default_policy.toml` beside this module, or an operator's file), validated on load:
an unknown reason code, severity or stage is a start-up error, never a silent default.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.errors import IdvError, InputError, one_line
from models.files import read_text_file
from models.reasons import Reason

DEFAULT_POLICY_FILE = Path(__file__).resolve().parent / "default_policy.toml"
STAGES: frozenset[str] = frozenset({"liveness", "ocr_front", "ocr_back", "face"})


class Outcome(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"
    REVIEW = "review"


class Severity(StrEnum):
    REJECT = "reject"
    REVIEW = "review"
    INFO = "info"


@dataclass(frozen=True)
class Signals:
    """Plain values filled in by the orchestration from the stage results."""

    reasons: frozenset[Reason]
    manual: bool = False
    liveness_passed: bool | None = None
    face_similarity: float | None = None
    face_threshold: float | None = None
    ocr_min_key_confidence: float | None = None
    stages_missing: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # a contract between two parts of our own code: fail loudly on a typo
        object.__setattr__(self, "reasons", frozenset(Reason(r) for r in self.reasons))
        unknown = set(self.stages_missing) - STAGES
        if unknown:
            raise ValueError(f"unknown stage names {sorted(unknown)}; known: {sorted(STAGES)}")
        object.__setattr__(self, "stages_missing", frozenset(self.stages_missing))


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reasons: tuple[Reason, ...]
    priority: int
    policy_version: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": str(self.outcome),
            "reasons": [str(r) for r in self.reasons],
            "priority": self.priority,
            "policy_version": self.policy_version,
        }


@dataclass(frozen=True)
class SoftenRule:
    stage: str
    when_any: frozenset[Reason]
    reasons: frozenset[Reason]


@dataclass(frozen=True)
class Policy:
    version: str
    default_severity: Severity
    severity: Mapping[Reason, Severity]
    soften: tuple[SoftenRule, ...]
    face_review_margin_above: float
    face_reject_margin_below: float
    ocr_min_key_confidence: float
    four_eyes_reject: bool
    lease_minutes: int
    max_note_chars: int
    priority_possible_fraud: int
    priority_doubt: int
    priority_quality_only: int
    quality_reasons: frozenset[Reason] = field(default=frozenset())

    def severity_of(self, reason: Reason) -> Severity:
        return self.severity.get(reason, self.default_severity)


# --- the file boundary (pydantic) -----------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _reason(v: str) -> Reason:
    try:
        return Reason(v)
    except ValueError:
        raise ValueError(f"unknown reason code {v!r}") from None


class _Face(_Strict):
    review_margin_above: float = Field(ge=0, le=1)
    reject_margin_below: float = Field(ge=0, le=1)


class _Ocr(_Strict):
    min_key_confidence: float = Field(ge=0, le=1)


class _Review(_Strict):
    four_eyes_reject: bool = False
    lease_minutes: int = Field(default=15, ge=1, le=24 * 60)
    max_note_chars: int = Field(default=500, ge=1, le=10_000)


class _Priority(_Strict):
    possible_fraud: int = Field(ge=1)
    doubt: int = Field(ge=1)
    quality_only: int = Field(ge=1)


class _Soften(_Strict):
    stage: str
    when_any: list[str]
    reasons: list[str]

    @field_validator("when_any", "reasons")
    @classmethod
    def _codes(cls, v: list[str]) -> list[str]:
        for c in v:
            _reason(c)
        return v

    @field_validator("stage")
    @classmethod
    def _stage(cls, v: str) -> str:
        if v not in {"liveness", "ocr", "face"}:
            raise ValueError(f"unknown soften stage {v!r} (liveness, ocr, face)")
        return v


class _PolicyFile(_Strict):
    version: str = Field(min_length=1)
    default_severity: Severity = Severity.REVIEW
    face: _Face
    ocr: _Ocr
    review: _Review = _Review()
    priority: _Priority
    severity: dict[str, Severity]
    soften: list[_Soften] = []

    @field_validator("severity")
    @classmethod
    def _codes(cls, v: dict[str, Severity]) -> dict[str, Severity]:
        for c in v:
            _reason(c)
        return v

    @model_validator(mode="after")
    def _coherent(self) -> "_PolicyFile":
        if self.default_severity is Severity.INFO:
            raise ValueError("default_severity cannot be info: an unmapped reason must be looked at")
        for rule in self.soften:
            for c in rule.reasons:
                if self.severity.get(c, self.default_severity) is not Severity.REJECT:
                    raise ValueError(f"soften rule lists {c!r}, which is not reject-severity")
        return self


def load_policy(path: Path | None = None) -> Policy:
    """Load and validate a policy file; None = the packaged default. Raises IdvError when invalid."""
    p = Path(path) if path is not None else DEFAULT_POLICY_FILE
    try:
        raw = tomllib.loads(read_text_file(p, what="policy file", max_bytes=1024 * 1024))
        f = _PolicyFile.model_validate(raw)
    except InputError as e:  # missing, a folder, a device, too big, not UTF-8
        raise IdvError(Reason.REVIEW_POLICY_INVALID, e.detail, status_code=500) from None
    except tomllib.TOMLDecodeError as e:
        raise IdvError(Reason.REVIEW_POLICY_INVALID, f"policy file {p.name} is not TOML: {e}", status_code=500) from None
    except ValidationError as e:
        raise IdvError(Reason.REVIEW_POLICY_INVALID, f"policy file {p.name} is invalid: {one_line(e)}",
                       status_code=500) from None
    rules = tuple(
        SoftenRule(r.stage, frozenset(map(Reason, r.when_any)), frozenset(map(Reason, r.reasons))) for r in f.soften
    )
    quality = frozenset(Reason(c) for c in Reason if str(c).startswith("quality."))
    for r in rules:
        quality |= r.when_any
    return Policy(
        version=f.version,
        default_severity=f.default_severity,
        severity=MappingProxyType({Reason(k): v for k, v in f.severity.items()}),
        soften=rules,
        face_review_margin_above=f.face.review_margin_above,
        face_reject_margin_below=f.face.reject_margin_below,
        ocr_min_key_confidence=f.ocr.min_key_confidence,
        four_eyes_reject=f.review.four_eyes_reject,
        lease_minutes=f.review.lease_minutes,
        max_note_chars=f.review.max_note_chars,
        priority_possible_fraud=f.priority.possible_fraud,
        priority_doubt=f.priority.doubt,
        priority_quality_only=f.priority.quality_only,
        quality_reasons=quality - {Reason.IDCARD_CHARACTER_CORRECTED},
    )


# --- the decision ----------------------------------------------------------------------------

_FACE_VERDICTS = frozenset({Reason.FACE_MATCH, Reason.FACE_MISMATCH, Reason.FACE_BORDERLINE})
_LIVENESS_FAILURES_PREFIX = "liveness."


def _effective_reasons(s: Signals, p: Policy) -> set[Reason]:
    """The stage reasons plus what the numeric signals say, graded by this policy's margins."""
    reasons = set(s.reasons)
    if s.face_similarity is not None and s.face_threshold is not None:
        # the numbers win over the stage's own match/mismatch call: the policy owns the margins
        reasons -= _FACE_VERDICTS
        sim, thr = s.face_similarity, s.face_threshold
        if sim < thr - p.face_reject_margin_below:
            reasons.add(Reason.FACE_MISMATCH)
        elif sim < thr + p.face_review_margin_above:
            reasons.add(Reason.FACE_BORDERLINE)
        else:
            reasons.add(Reason.FACE_MATCH)
    if s.ocr_min_key_confidence is not None and s.ocr_min_key_confidence < p.ocr_min_key_confidence:
        reasons.add(Reason.IDCARD_LOW_CONFIDENCE)
    if s.stages_missing:
        reasons.add(Reason.DECISION_STAGE_UNAVAILABLE)
    if s.liveness_passed is False and not any(
        str(r).startswith(_LIVENESS_FAILURES_PREFIX) and r is not Reason.LIVENESS_PASSED for r in reasons
    ):
        reasons.add(Reason.DECISION_UNEXPLAINED_FAILURE)
    if s.manual:
        reasons.add(Reason.DECISION_MANUAL_SUBMISSION)
    return reasons


def decide(signals: Signals, policy: Policy) -> Decision:
    """Turn the signals into a decision. Deterministic; reasons ordered reject, review, then by code."""
    reasons = _effective_reasons(signals, policy)
    sev = {r: policy.severity_of(r) for r in reasons}
    rejects = {r for r, v in sev.items() if v is Severity.REJECT}
    reviews = {r for r, v in sev.items() if v is Severity.REVIEW}

    softened: set[Reason] = set()
    for rule in policy.soften:
        if rule.when_any & reasons:
            softened |= rejects & rule.reasons
    hard = rejects - softened

    def ordered(*groups: set[Reason]) -> tuple[Reason, ...]:
        out: list[Reason] = []
        for g in groups:
            out += sorted(g - set(out), key=str)
        return tuple(out)

    if signals.manual:
        # the manual path always goes to a person, with the machine's pre-checks attached
        prio = policy.priority_possible_fraud if rejects else _review_priority(reviews, policy)
        return Decision(Outcome.REVIEW, ordered(rejects, reviews), prio, policy.version)
    if hard:
        return Decision(Outcome.REJECTED, ordered(hard, softened, reviews), 0, policy.version)
    if softened or reviews:
        prio = policy.priority_possible_fraud if softened else _review_priority(reviews, policy)
        return Decision(Outcome.REVIEW, ordered(softened, reviews), prio, policy.version)
    return Decision(Outcome.APPROVED, (Reason.DECISION_ALL_CLEAR,), 0, policy.version)


def _review_priority(reviews: set[Reason], p: Policy) -> int:
    doubt = reviews - p.quality_reasons - {Reason.DECISION_STAGE_UNAVAILABLE, Reason.DECISION_MANUAL_SUBMISSION}
    return p.priority_doubt if doubt else p.priority_quality_only


__all__ = [
    "DEFAULT_POLICY_FILE",
    "STAGES",
    "Decision",
    "Outcome",
    "Policy",
    "Severity",
    "Signals",
    "SoftenRule",
    "decide",
    "load_policy",
]
