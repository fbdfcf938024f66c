"""The review queue's service layer: cases, claims with leases, decisions, four-eyes, escalation,
field corrections, PII reveal, and the audit trail of all of it.

`ReviewService` works inside the caller's session and never commits: the caller's unit of work
(`db.unit_of_work`, or one web request) commits once, so the audit row and the change it records
land together or not at all. Every refusal is an IdvError with a review.* reason code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import cv2
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from models.errors import IdvError, InputError
from models.images import decode_image
from models.masking import PII_FIELDS, mask_value
from models.reasons import Reason

from .db import AuditEvent, Case, CaseImage, CaseStatus, Reviewer, ReviewerSession, WebhookDelivery, utcnow
from .policy import Decision, Outcome, Policy
from .storage import EncryptedStore
from .workdays import WorkCalendar

ROLES = ("reviewer", "supervisor")
IMAGE_KINDS = ("selfie_with_card", "card_front", "card_back", "best_frame", "audit_frame")

# The fixed decision reasons a reviewer picks from (stable keys; wording for the UI).
APPROVE_REASONS: Mapping[str, str] = {
    "identity_confirmed": "Person, card and data are consistent",
    "machine_doubt_resolved": "The machine's doubt (quality, borderline score) is resolved on inspection",
    "ocr_misread_corrected": "The card was misread; corrected fields are consistent",
}
REJECT_REASONS: Mapping[str, str] = {
    "face_does_not_match": "The person is not the card holder",
    "card_forged_or_altered": "The card looks forged, altered or is a specimen",
    "card_invalid": "The card is expired or its data is inconsistent",
    "liveness_spoof": "The capture is a photo, screen or replay, not a live person",
    "evidence_unusable": "The evidence is unusable (blurred, cut off, wrong document)",
    "declared_data_mismatch": "The declared name or number differs from the card",
}
MAX_FIELD_CHARS = 200

_USERNAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
_hasher = PasswordHasher()


@dataclass(frozen=True)
class ReviewConfig:
    lease: dt.timedelta = dt.timedelta(minutes=15)
    four_eyes_reject: bool = False
    max_note_chars: int = 500
    webhook_url: str = ""  # when set, a decision queues a webhook delivery in the same transaction
    # password guessing: after this many failed logins for one username from one client address
    # within the window, that client's attempts are refused unchecked until the window passes.
    # Counted from the audit log, so it holds across API processes and restarts. Per client, so a
    # stranger's wrong guesses cannot lock the real reviewer out; and once the account has
    # account_failure_factor times as many failures from anywhere, every client that has failed
    # once is refused too (a spread-out guesser gets one try per fresh address).
    max_failed_logins: int = 5
    account_failure_factor: int = 10
    failed_login_window: dt.timedelta = dt.timedelta(minutes=15)

    @classmethod
    def from_policy(cls, policy: Policy, *, webhook_url: str = "") -> "ReviewConfig":
        return cls(
            lease=dt.timedelta(minutes=policy.lease_minutes),
            four_eyes_reject=policy.four_eyes_reject,
            max_note_chars=policy.max_note_chars,
            webhook_url=webhook_url,
        )


@dataclass(frozen=True)
class EvidenceImage:
    kind: str  # one of IMAGE_KINDS
    data: bytes  # any format models.images.decode_image accepts
    seq: int = 0


@dataclass(frozen=True)
class QueueItem:
    case_id: str
    verification_id: str
    status: str
    priority: int
    created_at: dt.datetime
    due_at: dt.datetime
    overdue: bool
    calendar_fallback: bool
    manual: bool
    reason_codes: tuple[str, ...]
    claimed_by: str | None

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["created_at"], d["due_at"] = self.created_at.isoformat(), self.due_at.isoformat()
        d["reason_codes"] = list(self.reason_codes)
        return d


SEALED_KEY = "_sealed"


def masked_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, f in fields.items():
        g = dict(f)
        g["value"] = mask_value(k, g.get("value"))
        if g.get("corrected") is not None:
            g["corrected"] = mask_value(k, g["corrected"])
        out[k] = g
    return out


def _normalise_fields(fields: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for k, v in fields.items():
        f = dict(v) if isinstance(v, Mapping) else {"value": v}
        out[str(k)] = {
            "value": None if f.get("value") is None else str(f["value"]),
            "confidence": None if f.get("confidence") is None else float(f["confidence"]),
            "valid": f.get("valid"),
            "reasons": [str(Reason(r)) for r in f.get("reasons", [])],
            "corrected": None,
        }
    return out


def _json_safe(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    if isinstance(x, float | int | str | bool) or x is None:
        return x
    return float(x) if hasattr(x, "__float__") else str(x)


class ReviewService:
    def __init__(
        self,
        session: Session,
        *,
        config: ReviewConfig = ReviewConfig(),
        store: EncryptedStore | None = None,
        calendar: WorkCalendar | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        on_decided: Callable[[Session, Case], None] | None = None,
        check_correction: Callable[[str, str, Mapping[str, Any]], str | None] | None = None,
    ) -> None:
        self.session = session
        # the card's field rules live in ocr/; the API injects them (ocr.check_field_value)
        self.check_correction = check_correction
        self.config = config
        self.store = store
        self.calendar = calendar or WorkCalendar()
        self.clock = clock
        self.on_decided = on_decided  # the API updates its verification row here, same transaction

    # --- reviewers ------------------------------------------------------------------------------

    def create_reviewer(self, *, username: str, password: str, role: str = "reviewer") -> Reviewer:
        if role not in ROLES:
            raise InputError(Reason.INPUT_INVALID, f"role must be one of {ROLES}")
        # letters, digits and . _ @ - only: a username is shown in the UI and written to the audit log,
        # where control characters (terminal escapes) and markup have no business
        if not _USERNAME.fullmatch(username) or len(password) < 8:
            raise InputError(Reason.INPUT_INVALID,
                             "username 1-64 letters, digits or . _ @ -; password at least 8 characters")
        if self.session.scalar(select(Reviewer.id).where(Reviewer.username == username)) is not None:
            raise IdvError(Reason.CONFLICT, f"reviewer {username} already exists", status_code=409)
        r = Reviewer(username=username, password_hash=_hasher.hash(password), role=role, active=True)
        self.session.add(r)
        self.session.flush()
        self._audit("system", None, "reviewer_created", None, {"reviewer_id": r.id, "role": role})
        return r

    def authenticate(self, *, username: str, password: str, client: str = "") -> Reviewer:
        actor = username[:64] or "?"
        client = client[:64]
        since = self.clock() - self.config.failed_login_window
        cap = self.config.max_failed_logins * self.config.account_failure_factor
        recent = self.session.scalars(
            select(AuditEvent.detail).where(
                AuditEvent.action == "login_failed", AuditEvent.actor == actor, AuditEvent.at > since
            ).limit(cap)
        ).all()
        mine = sum(1 for d in recent if (d or {}).get("client", "") == client)
        if mine >= self.config.max_failed_logins or (len(recent) >= cap and mine > 0):
            self._audit(actor, None, "login_throttled", None, {"client": client})
            raise IdvError(
                Reason.REVIEW_LOGIN_THROTTLED,
                f"too many failed logins for this account from here; try again in {int(self.config.failed_login_window.total_seconds() // 60)} minutes",
                status_code=429,
            )
        r = self.session.scalar(select(Reviewer).where(Reviewer.username == username))
        try:
            if r is None or not r.active:
                _hasher.verify(_DUMMY_HASH, password)  # same work either way: no user enumeration by timing
                raise VerifyMismatchError
            _hasher.verify(r.password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            self._audit(actor, None, "login_failed", None, {"client": client})
            raise IdvError(Reason.REVIEW_LOGIN_FAILED, "wrong username or password", status_code=401) from None
        self._audit(r.username, r.id, "login", None, {"client": client})
        return r

    def reviewer(self, reviewer_id: int) -> Reviewer | None:
        r = self.session.get(Reviewer, reviewer_id)
        return r if r is not None and r.active else None

    # --- sessions: the cookie carries a random token; only its sha256 is stored ---------------

    def open_session(self, reviewer: Reviewer, *, lifetime: dt.timedelta) -> str:
        now = self.clock()
        self.session.execute(delete(ReviewerSession).where(ReviewerSession.expires_at <= now),
                             execution_options={"synchronize_session": False})
        token = secrets.token_urlsafe(32)
        self.session.add(ReviewerSession(id=_token_id(token), reviewer_id=reviewer.id, created_at=now,
                                         expires_at=now + lifetime))
        self.session.flush()
        return token

    def session_reviewer(self, token: str) -> Reviewer | None:
        """The active reviewer of a live session, or None (unknown, ended, expired, deactivated)."""
        row = self.session.get(ReviewerSession, _token_id(token)) if token else None
        if row is None or row.expires_at <= self.clock():
            return None
        return self.reviewer(row.reviewer_id)

    def close_session(self, token: str) -> None:
        row = self.session.get(ReviewerSession, _token_id(token)) if token else None
        if row is None:
            return
        r = self.session.get(Reviewer, row.reviewer_id)
        self.session.delete(row)
        self._audit(r.username if r else "?", row.reviewer_id, "logout", None, {})

    # --- cases ----------------------------------------------------------------------------------

    def create_case(
        self,
        *,
        verification_id: str,
        decision: Decision,
        applicant_ref: str | None = None,
        fields: Mapping[str, Any] | None = None,
        scores: Mapping[str, Any] | None = None,
        images: Sequence[EvidenceImage] = (),
        manual: bool = False,
    ) -> Case:
        """A case for a `review` decision or a manual submission. Images are re-encoded as JPEG
        (display-safe, EXIF stripped) and stored encrypted."""
        if decision.outcome is not Outcome.REVIEW and not manual:
            raise InputError(Reason.INPUT_INVALID, f"a case is only created for review decisions, not {decision.outcome}")
        if not verification_id or len(verification_id) > 64:
            raise InputError(Reason.INPUT_INVALID, "verification_id must be 1-64 characters")
        if images and self.store is None:
            raise InputError(Reason.INPUT_INVALID, "images given but the service has no store")
        encoded: list[tuple[EvidenceImage, bytes, int, int]] = []
        for im in images:
            if im.kind not in IMAGE_KINDS:
                raise InputError(Reason.INPUT_INVALID, f"image kind must be one of {IMAGE_KINDS}")
            bgr = decode_image(im.data, what=im.kind)
            ok, jpg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
            if not ok:
                raise InputError(Reason.INPUT_UNREADABLE, f"{im.kind} could not be re-encoded")
            encoded.append((im, jpg.tobytes(), int(bgr.shape[1]), int(bgr.shape[0])))
        now = self.clock()
        due = self.calendar.add_working_days(now, 1)
        case = Case(
            verification_id=verification_id,
            applicant_ref=applicant_ref,
            status=CaseStatus.OPEN,
            manual=manual,
            priority=max(1, decision.priority),
            created_at=now,
            due_at=due.due_at,
            calendar_fallback=due.fallback,
            reason_codes=[str(r) for r in decision.reasons],
            machine_decision=decision.to_dict(),
            fields={},
            scores=_json_safe(dict(scores or {})),
        )
        self._set_fields(case, _normalise_fields(fields or {}))
        self.session.add(case)
        self.session.flush()
        stored: list[str] = []
        try:
            for im, jpg, w, h in encoded:
                oid = self.store.put(jpg)  # type: ignore[union-attr]
                stored.append(oid)
                self.session.add(
                    CaseImage(case_id=case.id, kind=im.kind, seq=im.seq, object_id=oid, content_type="image/jpeg",
                              width_px=w, height_px=h)
                )
            self.session.flush()
        except BaseException:
            for oid in stored:  # no orphan ciphertext when the row insert fails
                self.store.delete(oid)  # type: ignore[union-attr]
            raise
        self._audit("system", None, "case_created", case.id,
                    {"reasons": case.reason_codes, "priority": case.priority, "fallback": due.fallback})
        return case

    def get_case(self, case_id: str) -> Case:
        c = self.session.get(Case, case_id, populate_existing=True)
        if c is None:
            raise IdvError(Reason.REVIEW_NOT_FOUND, "no such case", status_code=404)
        return c

    def images(self, case_id: str) -> list[CaseImage]:
        return list(
            self.session.scalars(
                select(CaseImage).where(CaseImage.case_id == case_id).order_by(CaseImage.kind, CaseImage.seq)
            )
        )

    def queue(self, *, limit: int = 200) -> list[QueueItem]:
        """Undecided cases, earliest due first, then higher priority."""
        now = self.clock()
        rows = self.session.execute(
            select(Case, Reviewer.username)
            .outerjoin(Reviewer, Reviewer.id == Case.claimed_by)
            .where(Case.status.in_(CaseStatus.QUEUED))
            .order_by(Case.due_at, Case.priority.desc(), Case.created_at)
            .limit(limit)
        ).all()
        return [
            QueueItem(
                case_id=c.id, verification_id=c.verification_id, status=c.status, priority=c.priority,
                created_at=c.created_at, due_at=c.due_at, overdue=c.due_at < now,
                calendar_fallback=c.calendar_fallback, manual=c.manual, reason_codes=tuple(c.reason_codes),
                claimed_by=user if c.claimed_by is not None and c.lease_expires_at and c.lease_expires_at > now else None,
            )
            for c, user in rows
        ]

    # --- claims ---------------------------------------------------------------------------------

    def _claimable(self, reviewer: Reviewer, now: dt.datetime) -> Any:
        free = or_(Case.claimed_by.is_(None), Case.lease_expires_at < now)
        states = [Case.status == CaseStatus.OPEN,
                  and_(Case.status == CaseStatus.AWAITING_CONFIRMATION, Case.proposed_by != reviewer.id)]
        if reviewer.role == "supervisor":
            states.append(Case.status == CaseStatus.ESCALATED)
        return and_(free, or_(*states))

    def _is_pg(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    def expire_leases(self) -> int:
        """Return every case whose lease ran out to the queue (audited). Safe to run concurrently."""
        now = self.clock()
        q = select(Case).where(Case.claimed_by.is_not(None), Case.lease_expires_at < now)
        if self._is_pg():
            q = q.with_for_update(skip_locked=True)
        n = 0
        for c in self.session.scalars(q):
            self._audit("system", None, "lease_expired", c.id, {"reviewer_id": c.claimed_by})
            c.claimed_by, c.claimed_at, c.lease_expires_at = None, None, None
            n += 1
        self.session.flush()
        return n

    def claim_next(self, reviewer: Reviewer) -> Case:
        """Claim the most urgent claimable case; two reviewers never get the same one."""
        self.expire_leases()
        now = self.clock()
        order = (Case.due_at, Case.priority.desc(), Case.created_at)
        if self._is_pg():
            c = self.session.scalars(
                select(Case).where(self._claimable(reviewer, now)).order_by(*order).limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if c is None:
                raise IdvError(Reason.REVIEW_QUEUE_EMPTY, "no case is waiting for you", status_code=404)
            c.claimed_by, c.claimed_at, c.lease_expires_at = reviewer.id, now, now + self.config.lease
            self.session.flush()
            case_id = c.id
        else:
            # SQLite: one atomic conditional UPDATE (the engine also begins IMMEDIATE, so writers queue)
            pick = select(Case.id).where(self._claimable(reviewer, now)).order_by(*order).limit(1).scalar_subquery()
            case_id = self.session.execute(
                update(Case).where(Case.id == pick, self._claimable(reviewer, now))
                .values(claimed_by=reviewer.id, claimed_at=now, lease_expires_at=now + self.config.lease)
                .returning(Case.id),
                execution_options={"synchronize_session": False},
            ).scalar()
            if case_id is None:
                raise IdvError(Reason.REVIEW_QUEUE_EMPTY, "no case is waiting for you", status_code=404)
        self._audit(reviewer.username, reviewer.id, "claim", case_id, {"lease_s": self.config.lease.total_seconds()})
        return self.get_case(case_id)

    def claim(self, case_id: str, reviewer: Reviewer) -> Case:
        """Claim one given case (or renew your own lease on it)."""
        now = self.clock()
        mine = and_(Case.claimed_by == reviewer.id, Case.status.in_(CaseStatus.QUEUED))
        got = self.session.execute(
            update(Case).where(Case.id == case_id, or_(mine, self._claimable(reviewer, now)))
            .values(claimed_by=reviewer.id, claimed_at=now, lease_expires_at=now + self.config.lease)
            .returning(Case.id),
            execution_options={"synchronize_session": False},
        ).scalar()
        if got is None:
            self._refuse_claim(self.get_case(case_id), reviewer, now)
        self._audit(reviewer.username, reviewer.id, "claim", case_id, {"lease_s": self.config.lease.total_seconds()})
        return self.get_case(case_id)

    def _refuse_claim(self, c: Case, reviewer: Reviewer, now: dt.datetime) -> None:
        if c.status in CaseStatus.DECIDED:
            raise IdvError(Reason.REVIEW_ALREADY_DECIDED, "the case has already been decided", status_code=409)
        if c.claimed_by not in (None, reviewer.id) and c.lease_expires_at and c.lease_expires_at >= now:
            raise IdvError(Reason.REVIEW_CLAIMED_BY_OTHER, "another reviewer has claimed this case", status_code=409)
        if c.status == CaseStatus.AWAITING_CONFIRMATION and c.proposed_by == reviewer.id:
            raise IdvError(Reason.REVIEW_SAME_REVIEWER, "a reject must be confirmed by a different reviewer",
                           status_code=403)
        if c.status == CaseStatus.ESCALATED:
            raise IdvError(Reason.REVIEW_FORBIDDEN, "escalated cases are for supervisors", status_code=403)
        raise IdvError(Reason.CONFLICT, "the case cannot be claimed now", status_code=409)

    def _require_claim(self, case_id: str, reviewer: Reviewer) -> Case:
        c = self.get_case(case_id)
        now = self.clock()
        if c.status in CaseStatus.DECIDED:
            raise IdvError(Reason.REVIEW_ALREADY_DECIDED, "the case has already been decided", status_code=409)
        if c.claimed_by is None or (c.lease_expires_at is not None and c.lease_expires_at < now):
            raise IdvError(Reason.REVIEW_NOT_CLAIMED, "claim the case first (or your claim expired)", status_code=409)
        if c.claimed_by != reviewer.id:
            raise IdvError(Reason.REVIEW_CLAIMED_BY_OTHER, "another reviewer has claimed this case", status_code=409)
        return c

    def release(self, case_id: str, reviewer: Reviewer) -> Case:
        c = self._require_claim(case_id, reviewer)
        c.claimed_by, c.claimed_at, c.lease_expires_at = None, None, None
        self._audit(reviewer.username, reviewer.id, "release", c.id, {})
        self.session.flush()
        return c

    # --- looking at a case ------------------------------------------------------------------------

    def _check_view(self, c: Case, reviewer: Reviewer) -> None:
        now = self.clock()
        held_by_other = (c.claimed_by not in (None, reviewer.id) and c.lease_expires_at is not None
                         and c.lease_expires_at >= now)
        if held_by_other and reviewer.role != "supervisor":
            raise IdvError(Reason.REVIEW_CLAIMED_BY_OTHER, "another reviewer has claimed this case", status_code=403)
        if c.status == CaseStatus.ESCALATED and reviewer.role != "supervisor" and c.escalated_by != reviewer.id:
            raise IdvError(Reason.REVIEW_FORBIDDEN, "escalated cases are for supervisors", status_code=403)

    def view_case(self, case_id: str, reviewer: Reviewer) -> Case:
        c = self.get_case(case_id)
        self._check_view(c, reviewer)
        self._audit(reviewer.username, reviewer.id, "view", c.id, {})
        return c

    def image_bytes(self, case_id: str, image_id: str, reviewer: Reviewer) -> tuple[bytes, str]:
        c = self.get_case(case_id)
        self._check_view(c, reviewer)
        im = self.session.get(CaseImage, image_id)
        if im is None or im.case_id != c.id or self.store is None:
            raise IdvError(Reason.REVIEW_NOT_FOUND, "no such image in this case", status_code=404)
        return self.store.get(im.object_id), im.content_type

    def reveal(self, case_id: str, reviewer: Reviewer) -> dict[str, Any]:
        """The unmasked fields, for the claimant (or a supervisor); every reveal is audited."""
        c = self.get_case(case_id)
        if reviewer.role != "supervisor":
            c = self._require_claim(case_id, reviewer)
        fields = self.fields_of(c)
        names = sorted(k for k in fields if k in PII_FIELDS)
        self._audit(reviewer.username, reviewer.id, "reveal", c.id, {"fields": names})
        return fields

    def fields_of(self, case: Case) -> dict[str, dict[str, Any]]:
        """A case's read fields, unmasked (callers mask them for display unless revealing)."""
        raw = case.fields or {}
        if SEALED_KEY not in raw:
            return {k: dict(v) for k, v in raw.items()}
        if self.store is None:
            raise IdvError(Reason.REVIEW_STORE_KEY_INVALID, "the case's fields are sealed and no key is configured",
                           status_code=500)
        return json.loads(self.store.unseal(raw[SEALED_KEY], case.verification_id))

    def _set_fields(self, case: Case, fields: dict[str, dict[str, Any]]) -> None:
        # names, ID numbers and addresses are sealed with the evidence key: a database dump (or a
        # backup) shows none of them; without a store (reviewer tooling, tests) they stay plain.
        if self.store is None or not fields:
            case.fields = fields
        else:
            case.fields = {SEALED_KEY: self.store.seal(json.dumps(fields).encode(), case.verification_id)}

    def audit_log(self, case_id: str | None = None) -> list[AuditEvent]:
        q = select(AuditEvent).order_by(AuditEvent.id)
        if case_id is not None:
            q = q.where(AuditEvent.case_id == case_id)
        return list(self.session.scalars(q))

    # --- acting on a case -------------------------------------------------------------------------

    def _check_note(self, note: str) -> str:
        if len(note) > self.config.max_note_chars:
            raise IdvError(Reason.REVIEW_TEXT_TOO_LONG,
                           f"the note has {len(note)} characters; at most {self.config.max_note_chars}",
                           status_code=422)
        return note.strip()

    def decide(self, case_id: str, reviewer: Reviewer, *, outcome: str, reason: str, note: str = "") -> Case:
        """Approve or reject a case you hold. With four-eyes, a first reject is a proposal that a
        different reviewer (or a supervisor) must confirm."""
        if outcome not in ("approve", "reject"):
            raise IdvError(Reason.INPUT_INVALID, "outcome must be approve or reject", status_code=422)
        allowed = APPROVE_REASONS if outcome == "approve" else REJECT_REASONS
        if reason not in allowed:
            raise IdvError(Reason.REVIEW_REASON_UNKNOWN,
                           f"unknown {outcome} reason; choose one of {sorted(allowed)}", status_code=422)
        note = self._check_note(note)
        c = self._require_claim(case_id, reviewer)
        now = self.clock()
        if c.status == CaseStatus.AWAITING_CONFIRMATION and c.proposed_by == reviewer.id:
            raise IdvError(Reason.REVIEW_SAME_REVIEWER, "a reject must be confirmed by a different reviewer",
                           status_code=403)
        needs_second = (outcome == "reject" and self.config.four_eyes_reject and reviewer.role != "supervisor"
                        and c.status != CaseStatus.AWAITING_CONFIRMATION)
        if needs_second:
            c.status = CaseStatus.AWAITING_CONFIRMATION
            c.proposed_by, c.proposed_reason, c.proposed_note, c.proposed_at = reviewer.id, reason, note, now
            c.claimed_by, c.claimed_at, c.lease_expires_at = None, None, None
            self._audit(reviewer.username, reviewer.id, "propose_reject", c.id, {"reason": reason})
            self.session.flush()
            return c
        c.status = CaseStatus.APPROVED if outcome == "approve" else CaseStatus.REJECTED
        c.decided_by, c.decided_at, c.decided_outcome = reviewer.id, now, outcome
        c.decided_reason, c.decided_note = reason, note
        c.claimed_by, c.claimed_at, c.lease_expires_at = None, None, None
        detail: dict[str, Any] = {"outcome": outcome, "reason": reason, "note_chars": len(note)}
        if c.proposed_by is not None:
            detail["confirms_proposal_of"] = c.proposed_by
        self._audit(reviewer.username, reviewer.id, "decide", c.id, detail)
        if self.config.webhook_url:
            self.session.add(WebhookDelivery(
                event_type="verification.decided", verification_id=c.verification_id, url=self.config.webhook_url,
                payload={"type": "verification.decided", "verification_id": c.verification_id,
                         "applicant_ref": c.applicant_ref, "status": c.status, "reason": reason,
                         "decided_at": now.isoformat(), "by": "review"},
                status="pending", attempts=0, created_at=now, next_attempt_at=now,
            ))
        if self.on_decided is not None:
            self.on_decided(self.session, c)
        self.session.flush()
        return c

    def withdraw(self, case_id: str, *, actor: str = "system", why: str = "verification_deleted") -> None:
        """Purge a case whose verification was deleted: images (ciphertext and rows) and personal
        fields are deleted for real, the case leaves the queue, the audit keeps that it happened."""
        c = self.session.get(Case, case_id)
        if c is None:
            return
        for im in list(self.session.scalars(select(CaseImage).where(CaseImage.case_id == case_id))):
            if self.store is not None:
                self.store.delete(im.object_id)
            self.session.delete(im)
        c.fields = {}
        c.applicant_ref = None
        if c.status in CaseStatus.QUEUED:
            c.status = CaseStatus.WITHDRAWN
            c.claimed_by = None
            c.lease_expires_at = None
        self._audit(actor, None, "withdrawn", c.id, {"why": why})

    def escalate(self, case_id: str, reviewer: Reviewer, *, note: str = "") -> Case:
        note = self._check_note(note)
        c = self._require_claim(case_id, reviewer)
        if c.status == CaseStatus.ESCALATED:
            raise IdvError(Reason.REVIEW_FORBIDDEN, "the case is already escalated", status_code=409)
        c.status, c.escalated_by, c.escalated_at = CaseStatus.ESCALATED, reviewer.id, self.clock()
        c.claimed_by, c.claimed_at, c.lease_expires_at = None, None, None
        self._audit(reviewer.username, reviewer.id, "escalate", c.id, {"note_chars": len(note)})
        self.session.flush()
        return c

    def correct_field(self, case_id: str, reviewer: Reviewer, *, field_name: str, value: str) -> Case:
        """Record a reviewer's reading of a field; the machine's value is kept beside it."""
        c = self._require_claim(case_id, reviewer)
        fields = self.fields_of(c)
        if field_name not in fields:
            raise IdvError(Reason.REVIEW_FIELD_UNKNOWN, f"the case has no field {field_name!r}", status_code=422)
        if not value.strip():
            raise IdvError(Reason.REVIEW_CORRECTION_INVALID, f"{field_name}: a corrected value cannot be empty",
                           status_code=422)
        if len(value) > MAX_FIELD_CHARS:
            raise IdvError(Reason.REVIEW_TEXT_TOO_LONG, f"a corrected value has 1-{MAX_FIELD_CHARS} characters",
                           status_code=422)
        value = value.strip()
        # the card as it now reads: other fields' corrections where made, else the machine's reading
        card = {k: (f.get("corrected") or f.get("value")) for k, f in fields.items() if k != field_name}
        problem = self.check_correction(field_name, value, card) if self.check_correction is not None else (
            "holds control or undecodable characters"
            if any(c in value for c in "\ufffd\x00") or not value.isprintable() else None
        )
        if problem:
            raise IdvError(Reason.REVIEW_CORRECTION_INVALID, f"{field_name}: {problem}", status_code=422)
        fields[field_name]["corrected"] = value
        fields[field_name]["corrected_by"] = reviewer.username
        self._set_fields(c, fields)  # a new object: JSON columns track assignment only
        self._audit(reviewer.username, reviewer.id, "correct_field", c.id, {"field": field_name})
        self.session.flush()
        return c

    # --- audit ------------------------------------------------------------------------------------

    def _audit(self, actor: str, actor_id: int | None, action: str, case_id: str | None,
               detail: Mapping[str, Any]) -> None:
        self.session.add(AuditEvent(at=self.clock(), actor=actor, actor_id=actor_id, action=action,
                                    case_id=case_id, detail=_json_safe(dict(detail))))


def _token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_DUMMY_HASH = _hasher.hash("not-a-real-password-used-for-constant-time")

__all__ = [
    "APPROVE_REASONS",
    "IMAGE_KINDS",
    "PII_FIELDS",
    "REJECT_REASONS",
    "ROLES",
    "EvidenceImage",
    "QueueItem",
    "ReviewConfig",
    "ReviewService",
    "mask_value",
    "masked_fields",
]
