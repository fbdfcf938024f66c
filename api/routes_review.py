"""Wiring to the review queue (one implementation of cases, evidence and webhooks, owned by
review_queue): open a case when the decision is `review` or the submission is manual, take the
reviewer's decision back through `ReviewService(on_decided=...)`, send signed webhooks for every final
decision through `review_queue.webhooks` (outbox rows + a delivery thread), and mount the reviewer UI
under /review when `review_queue.web.make_review_router` is present.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.orm import Session

from review_queue.db import Case

from .db import VerificationRecord, utcnow
from .routes_common import ApiContext
from .storage import encode_jpeg

log = logging.getLogger("idverify.api")

_KIND = {"best_frame": "best_frame", "id_front": "card_front", "id_back": "card_back",
         "selfie_with_card": "selfie_with_card"}
PUMP_INTERVAL_S = 2.0


class WebhookOutbox:
    """Final decisions become pending `webhook_deliveries` rows in the deciding transaction (outbox);
    one daemon thread per process sends them with review_queue's signed, retrying sender."""

    def __init__(self, ctx: ApiContext, *, default_url: str, secret: str) -> None:
        from review_queue.webhooks import WebhookConfig, WebhookSender

        self.ctx = ctx
        self.default_url = default_url
        self.sender = WebhookSender(WebhookConfig(secret=secret))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._users = 0

    def url_for(self, session: Session, client_id: str) -> str:
        from .db import ApiKey
        from sqlalchemy import select

        url = session.scalar(
            select(ApiKey.webhook_url).where(ApiKey.client_id == client_id, ApiKey.webhook_url.is_not(None)).limit(1)
        )
        return url or self.default_url

    def enqueue(self, session: Session, rec: VerificationRecord, event: dict[str, Any]) -> bool:
        url = self.url_for(session, rec.client_id)
        if not url:
            return False
        self.sender.enqueue(session, url=url, event_type=event["event"], payload=event, verification_id=rec.id)
        rec.webhook_sent = True
        return True

    def kick(self) -> None:
        self._wake.set()

    def start(self) -> None:
        """One pump per process, counted per lifespan: an app whose lifespan is entered twice at once
        (a test client plus a schema fuzzer, or the app mounted twice) keeps sending until the last
        one exits. Without the count the first exit stopped the pump for the other."""
        with self._lock:
            self._users += 1
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="idv-webhooks", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users or self._thread is None:
                return
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(PUMP_INTERVAL_S)
            self._wake.clear()
            try:
                for d in self.sender.deliver_pending(self.ctx.session_factory):
                    self.ctx.metrics.webhooks.labels(result=d.status).inc()
            except Exception as exc:  # the pump must survive a DB hiccup; the row stays pending
                log.warning("webhook delivery round failed: %s", type(exc).__name__)


class ReviewBridge:
    """Cases for `review` decisions and the reviewers' decisions back into the verification."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def service(self, session: Session) -> Any:
        from ocr import check_field_value
        from review_queue.service import ReviewConfig, ReviewService

        policy = getattr(self.ctx.engines, "policy", None)
        config = ReviewConfig.from_policy(policy) if policy is not None else ReviewConfig()
        return ReviewService(session, config=config, store=self.ctx.evidence.store, on_decided=self.on_decided,
                             check_correction=check_field_value)

    def open_case(self, session: Session, rec: VerificationRecord, report: Any) -> str:
        from review_queue.service import EvidenceImage

        from .jobs import _numbers_and_codes

        images = []
        n_audit = 0
        for name, img in report.evidence.items():
            if name.startswith("audit_"):
                n_audit += 1
                images.append(EvidenceImage("audit_frame", encode_jpeg(img), seq=n_audit))
            elif name in _KIND:
                images.append(EvidenceImage(_KIND[name], encode_jpeg(img)))
        fields: dict[str, Any] = {}
        for stage in ("ocr_front", "ocr_back"):
            for k, f in (report.stages.get(stage, {}).get("fields") or {}).items():
                if isinstance(f, dict):
                    fields[k] = {"value": f.get("value"), "confidence": f.get("confidence"),
                                 "reasons": [r for r in f.get("reasons", []) if isinstance(r, str)]}
        for k, v in report.fields.items():
            fields.setdefault(k, {"value": v})
        scores = {k: _numbers_and_codes(v) for k, v in report.stages_masked.items() if isinstance(v, dict)}
        case = self.service(session).create_case(
            verification_id=rec.id, decision=report.decision, applicant_ref=rec.applicant_ref, fields=fields,
            scores=scores, images=images, manual=rec.mode == "manual",
        )
        return case.id

    def on_decided(self, session: Session, case: Case) -> None:
        """Called by ReviewService.decide inside the reviewer's transaction."""
        rec = session.get(VerificationRecord, case.verification_id)
        if rec is None or rec.status != "review":
            return
        outcome = {"approve": "approved", "reject": "rejected"}.get(case.decided_outcome or "")
        if outcome is None:
            return
        rec.status, rec.outcome, rec.decided_at = "completed", outcome, utcnow()
        if rec.result is not None:
            rec.result = {**rec.result, "decision": outcome, "decided_by": "reviewer",
                          "review_reason": case.decided_reason}
            self._apply_corrections(session, rec, case)
        self.ctx.metrics.decisions.labels(outcome=f"review_{outcome}").inc()
        log.info("verification %s decided %s by review", rec.id, outcome)
        if self.ctx.webhooks is not None:
            from .jobs import decision_event

            self.ctx.webhooks.enqueue(session, rec, decision_event(rec, decided_by="reviewer"))
            self.ctx.webhooks.kick()  # the pump retries until the reviewer's transaction has committed

    def _apply_corrections(self, session: Session, rec: VerificationRecord, case: Case) -> None:
        """The reviewer's readings replace the machine's in what the app reads back: masked in the
        row's result, in full in the encrypted PII object; each listed in `review_corrections`."""
        from models.masking import mask_value
        from review_queue.service import ReviewService

        fields = ReviewService(session, store=self.ctx.evidence.store).fields_of(case)
        corrected = {k: f["corrected"] for k, f in fields.items() if f.get("corrected")}
        if not corrected:
            return
        result = dict(rec.result or {})
        masked = dict(result.get("fields") or {})
        notes = []
        for k, v in corrected.items():
            notes.append({"field": k, "from": mask_value(k, fields[k].get("value")), "to": mask_value(k, v)})
            masked[k] = mask_value(k, v)
        result["fields"], result["review_corrections"] = masked, notes
        rec.result = result
        if rec.pii_object:
            ev = self.ctx.evidence
            pii = ev.get_json(rec.pii_object) or {}
            pii["fields"] = {**(pii.get("fields") or {}), **corrected}
            pii["review_corrections"] = [{"field": k, "from": fields[k].get("value"), "to": v}
                                         for k, v in corrected.items()]
            old, new = rec.pii_object, ev.put_json(pii)
            rec.pii_object = new
            # the replaced ciphertext goes once the decision commits; if it rolls back, the new one
            # goes instead, so no orphan is left either way
            event.listen(session, "after_commit", lambda _s: ev.delete([old]), once=True)
            event.listen(session, "after_rollback", lambda _s: ev.delete([new]), once=True)

    def purge_case(self, session: Session, case_id: str) -> None:
        """Delete the case's images (ciphertext files and rows) and its personal fields."""
        from review_queue.service import ReviewService

        ReviewService(session, store=self.ctx.evidence.store).withdraw(case_id)

    def open_cases(self) -> int:
        from sqlalchemy import func, select

        from review_queue.db import CaseStatus

        with self.ctx.session_factory() as s:
            return int(s.scalar(select(func.count()).select_from(Case).where(
                Case.status.in_(CaseStatus.QUEUED)
            )) or 0)


def wire_review_queue(ctx: ApiContext) -> None:
    ctx.review = ReviewBridge(ctx)
    ctx.metrics.set_queue_depth_source(ctx.review.open_cases)
    s = ctx.settings
    if s.webhook_secret:
        ctx.webhooks = WebhookOutbox(ctx, default_url=s.webhook_url, secret=s.webhook_secret)
    else:
        log.warning("IDV_WEBHOOK_SECRET is not set: decisions will not be sent by webhook")


def mount_review_ui(app: FastAPI, ctx: ApiContext) -> None:
    """The reviewer UI under /review. Its own webhook is left off (webhook_url=""): the API sends one
    event shape for machine and reviewer decisions alike, from `on_decided`."""
    import hashlib

    from ocr import check_field_value
    from review_queue.policy import load_policy
    from review_queue.web import make_review_router

    s = ctx.settings
    # a separate key for reviewer session cookies, derived so it is never the storage key itself
    cookie_key = hashlib.sha256(b"idverify/review-session/" + s.effective_encryption_key).hexdigest()
    router = make_review_router(
        session_factory=ctx.session_factory,
        store=ctx.evidence.store,
        secret_key=cookie_key,
        policy=load_policy(s.policy_file),
        on_decided=ctx.review.on_decided,
        prefix="/review",
        secure_cookie=s.mode == "production",
        check_correction=check_field_value,
    )
    app.include_router(router)
