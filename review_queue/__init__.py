"""Decision policy ("confidence router"), review cases, claims, decisions, audit log, reviewer UI.

Imports models only (never liveness/ocr/face_match/api). The web UI (`review_queue.web`) and the
webhooks (`review_queue.webhooks`) are imported from their modules, so the policy stays light.
"""

from .db import Base, Case, CaseStatus, make_engine, make_session_factory, migrate, unit_of_work
from .policy import Decision, Outcome, Policy, Signals, decide, load_policy
from .service import APPROVE_REASONS, REJECT_REASONS, EvidenceImage, ReviewConfig, ReviewService
from .storage import EncryptedStore
from .workdays import Due, WorkCalendar, due_at

__all__ = [
    "APPROVE_REASONS",
    "REJECT_REASONS",
    "Base",
    "Case",
    "CaseStatus",
    "Decision",
    "Due",
    "EncryptedStore",
    "EvidenceImage",
    "Outcome",
    "Policy",
    "ReviewConfig",
    "ReviewService",
    "Signals",
    "WorkCalendar",
    "decide",
    "due_at",
    "load_policy",
    "make_engine",
    "make_session_factory",
    "migrate",
    "unit_of_work",
]
