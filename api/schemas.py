"""Pydantic models at the HTTP boundary only (inside, results are frozen dataclasses)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    type: str = Field(description="stable reason code, e.g. `liveness.challenge_used`")
    detail: str = Field(description="human explanation; never contains applicant data")
    verification_id: str | None = None


class ChallengeIn(BaseModel):
    # accepted for symmetry with the capture upload; the server decides the actions
    model_config = {"extra": "forbid"}


class ChallengeOut(BaseModel):
    challenge_id: str
    nonce: str = Field(description="echo it in the capture UI if you like; it is bound to this challenge")
    actions: list[Literal["turn_left", "turn_right", "open_mouth", "blink"]] = Field(
        description="perform these actions in this order"
    )
    issued_at: datetime
    expires_at: datetime
    ttl_s: int


class VerificationOut(BaseModel):
    id: str
    status: Literal["queued", "processing", "review", "completed", "failed"]
    decision: Literal["approved", "rejected", "review"] | None = None
    reasons: list[str] = Field(default_factory=list, description="reason codes behind the decision")
    mode: Literal["auto", "manual"] = "auto"
    applicant_ref: str | None = None
    case_id: str | None = Field(default=None, description="review-queue case when the decision is review")
    created_at: datetime
    decided_at: datetime | None = None
    purged: bool = Field(default=False, description="images and personal data were deleted; decision kept")
    pii_masked: bool = True
    result: dict[str, Any] | None = Field(
        default=None, description="fields, per-stage results and timings (masked unless the key has pii:read)"
    )
    error: ErrorOut | None = None


class HealthOut(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
