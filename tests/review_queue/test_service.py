"""ReviewService on real SQLite and real PostgreSQL: claims under concurrency, leases, decisions,
four-eyes, escalation, corrections, reveal, and the append-only audit log."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest
from argon2 import PasswordHasher
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from models.errors import IdvError
from models.reasons import Reason as R
from review_queue import CaseStatus, EvidenceImage, ReviewConfig, ReviewService, Signals, decide, unit_of_work
from review_queue.db import AuditEvent, Case, CaseImage, Reviewer, WebhookDelivery, utcnow

PW = "correct horse"


def review_decision(policy, *reasons: R):
    return decide(Signals(frozenset(reasons or {R.FACE_BORDERLINE})), policy)


_HASH: list[str] = []


def make_reviewers(factory, *names: str, role: str = "reviewer"):
    """Reviewer rows sharing one argon2 hash (hashing is deliberately slow; it is not under test here)."""
    if not _HASH:
        _HASH.append(PasswordHasher().hash(PW))
    with unit_of_work(factory) as s:
        rows = [Reviewer(username=n, password_hash=_HASH[0], role=role, active=True) for n in names]
        s.add_all(rows)
        s.flush()
        return rows


def test_create_reviewer_and_authenticate(factory):
    with unit_of_work(factory) as s:
        r = ReviewService(s).create_reviewer(username="carol", password=PW, role="supervisor")
        assert r.password_hash.startswith("$argon2") and PW not in r.password_hash
    with unit_of_work(factory) as s:
        assert ReviewService(s).authenticate(username="carol", password=PW).role == "supervisor"
    for user, pw in (("carol", "wrong password"), ("nobody", PW)):
        with unit_of_work(factory) as s, pytest.raises(IdvError) as ei:
            ReviewService(s).authenticate(username=user, password=pw)
        assert ei.value.code is R.REVIEW_LOGIN_FAILED and ei.value.detail == "wrong username or password"


def test_password_guessing_is_throttled_per_account_and_client(factory):
    """Five failures from one client in the window lock that client out of the account, even with
    the right password; the reviewer at another address still logs in (a stranger cannot lock
    them out); other accounts are untouched; once the window has passed the right password works
    again from the guessing client too."""
    with unit_of_work(factory) as s:
        ReviewService(s).create_reviewer(username="dave", password=PW)
        ReviewService(s).create_reviewer(username="erin", password=PW)
    codes = []
    for _ in range(6):
        with unit_of_work(factory) as s, pytest.raises(IdvError) as ei:
            ReviewService(s).authenticate(username="dave", password="guess", client="203.0.113.9")
        codes.append(ei.value.code)
    assert codes == [R.REVIEW_LOGIN_FAILED] * 5 + [R.REVIEW_LOGIN_THROTTLED] and ei.value.status_code == 429
    with unit_of_work(factory) as s, pytest.raises(IdvError) as ei:
        ReviewService(s).authenticate(username="dave", password=PW, client="203.0.113.9")
    assert ei.value.code is R.REVIEW_LOGIN_THROTTLED
    with unit_of_work(factory) as s:
        assert ReviewService(s).authenticate(username="dave", password=PW, client="10.0.0.5").username == "dave"
        assert ReviewService(s).authenticate(username="erin", password=PW, client="203.0.113.9").username == "erin"
    later = lambda: utcnow() + dt.timedelta(minutes=16)  # noqa: E731
    with unit_of_work(factory) as s:
        assert ReviewService(s, clock=later).authenticate(username="dave", password=PW, client="203.0.113.9").username == "dave"


def test_guessing_spread_over_many_clients_is_capped_for_the_account(factory):
    """Past 10 x 5 failures on one account from anywhere, any client that has failed once is
    refused; a client with no failure (the reviewer) still gets its attempt."""
    with unit_of_work(factory) as s:
        svc = ReviewService(s)
        svc.create_reviewer(username="fay", password=PW)
        cfg = svc.config
    n = cfg.max_failed_logins * cfg.account_failure_factor
    for i in range(n):
        with unit_of_work(factory) as s, pytest.raises(IdvError):
            ReviewService(s).authenticate(username="fay", password="guess", client=f"198.51.100.{i % 25}")
    with unit_of_work(factory) as s, pytest.raises(IdvError) as ei:
        ReviewService(s).authenticate(username="fay", password=PW, client="198.51.100.3")
    assert ei.value.code is R.REVIEW_LOGIN_THROTTLED
    with unit_of_work(factory) as s:
        assert ReviewService(s).authenticate(username="fay", password=PW, client="192.0.2.1").username == "fay"


def make_cases(factory, policy, n: int, store=None, images=(), **kw) -> list[str]:
    with unit_of_work(factory) as s:
        svc = ReviewService(s, store=store, **kw)
        return [
            svc.create_case(verification_id=f"ver-{i:04d}", applicant_ref=f"app-{i}", decision=review_decision(policy),
                            fields={"name": "王小明", "id_number": "11010119900307123X"},
                            scores={"face_similarity": {"score": 0.38, "threshold": 0.36}}, images=images).id
            for i in range(n)
        ]


def snapshot(factory, case_id: str) -> dict:
    with factory() as s:
        c = s.get(Case, case_id)
        cols = {k: getattr(c, k) for k in Case.__table__.columns.keys()}
        cols["audit_rows"] = s.scalar(select(func.count()).select_from(AuditEvent))
        return cols


def test_twenty_concurrent_claimers_each_case_once(factory, policy):
    make_cases(factory, policy, 100)
    reviewers = make_reviewers(factory, *[f"r{i:02d}" for i in range(20)])
    claimed: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def worker(rev):
        start.wait()
        while True:
            try:
                with unit_of_work(factory) as s:  # each thread its own session and transactions
                    c = ReviewService(s).claim_next(rev)
                    got = (c.id, rev.username)
            except IdvError as e:
                if e.code is R.REVIEW_QUEUE_EMPTY:
                    return
                errors.append(e)
                return
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
                return
            with lock:
                claimed.append(got)

    threads = [threading.Thread(target=worker, args=(r,)) for r in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    counts = Counter(cid for cid, _ in claimed)
    assert len(counts) == 100 and set(counts.values()) == {1}
    assert len({who for _, who in claimed}) > 1  # the work really was shared
    with factory() as s:
        assert s.scalar(select(func.count()).where(Case.claimed_by.is_not(None))) == 100
        assert s.scalar(select(func.count()).where(AuditEvent.action == "claim")) == 100


def test_expired_lease_returns_the_case(factory, policy):
    (cid,) = make_cases(factory, policy, 1)
    alice, bob = make_reviewers(factory, "alice", "bob")
    t0 = utcnow()
    with unit_of_work(factory) as s:
        assert ReviewService(s, clock=lambda: t0).claim_next(alice).id == cid
    with unit_of_work(factory) as s, pytest.raises(IdvError) as ei:
        ReviewService(s, clock=lambda: t0 + dt.timedelta(minutes=14)).claim_next(bob)
    assert ei.value.code is R.REVIEW_QUEUE_EMPTY
    later = t0 + dt.timedelta(minutes=16)
    with unit_of_work(factory) as s:
        assert ReviewService(s, clock=lambda: later).claim_next(bob).id == cid
    with unit_of_work(factory) as s:  # alice's stale claim no longer lets her decide
        with pytest.raises(IdvError) as ei:
            ReviewService(s, clock=lambda: later).decide(cid, alice, outcome="approve", reason="identity_confirmed")
        assert ei.value.code is R.REVIEW_CLAIMED_BY_OTHER
    with factory() as s:
        actions = [a.action for a in ReviewService(s).audit_log(cid)]
    assert actions == ["case_created", "claim", "lease_expired", "claim"]


def test_decision_on_unclaimed_or_others_case_refused_nothing_changed(factory, policy):
    (cid,) = make_cases(factory, policy, 1)
    alice, bob = make_reviewers(factory, "alice", "bob")
    before = snapshot(factory, cid)
    with unit_of_work(factory) as s, pytest.raises(IdvError) as ei:
        ReviewService(s).decide(cid, alice, outcome="approve", reason="identity_confirmed")
    assert ei.value.code is R.REVIEW_NOT_CLAIMED and "claim" in ei.value.detail
    assert snapshot(factory, cid) == before
    with unit_of_work(factory) as s:
        ReviewService(s).claim(cid, alice)
    before = snapshot(factory, cid)
    for call in (
        lambda svc: svc.decide(cid, bob, outcome="reject", reason="face_does_not_match"),
        lambda svc: svc.view_case(cid, bob),
        lambda svc: svc.claim(cid, bob),
        lambda svc: svc.release(cid, bob),
        lambda svc: svc.reveal(cid, bob),
    ):
        with unit_of_work(factory) as s, pytest.raises(IdvError) as ei:
            call(ReviewService(s))
        assert ei.value.code is R.REVIEW_CLAIMED_BY_OTHER
    assert snapshot(factory, cid) == before


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        (dict(outcome="approve", reason="because"), R.REVIEW_REASON_UNKNOWN),
        (dict(outcome="reject", reason="identity_confirmed"), R.REVIEW_REASON_UNKNOWN),  # an approve reason
        (dict(outcome="maybe", reason="identity_confirmed"), R.INPUT_INVALID),
        (dict(outcome="approve", reason="identity_confirmed", note="x" * 501), R.REVIEW_TEXT_TOO_LONG),
    ],
)
def test_bad_decision_input_refused(factory, policy, kw, code):
    (cid,) = make_cases(factory, policy, 1)
    (alice,) = make_reviewers(factory, "alice")
    with unit_of_work(factory) as s:
        ReviewService(s).claim(cid, alice)
    before = snapshot(factory, cid)
    with unit_of_work(factory) as s, pytest.raises(IdvError) as ei:
        ReviewService(s).decide(cid, alice, **kw)
    assert ei.value.code is code and ei.value.detail
    assert snapshot(factory, cid) == before


def test_approve_records_decision_audit_and_webhook_outbox(factory, policy, store, face_bytes):
    images = [EvidenceImage("selfie_with_card", face_bytes["img1.jpg"]), EvidenceImage("card_front", face_bytes["img2.jpg"]),
              EvidenceImage("best_frame", face_bytes["img3.jpg"]), EvidenceImage("audit_frame", face_bytes["img4.jpg"], 1)]
    (cid,) = make_cases(factory, policy, 1, store=store, images=images)
    (alice,) = make_reviewers(factory, "alice")
    seen = []
    cfg = ReviewConfig(webhook_url="http://127.0.0.1:9/hook")
    with unit_of_work(factory) as s:
        svc = ReviewService(s, config=cfg, store=store, on_decided=lambda sess, c: seen.append(c.status))
        c = svc.claim_next(alice)
        assert len(svc.images(c.id)) == 4
        im = svc.images(c.id)[0]
        data, ctype = svc.image_bytes(c.id, im.id, alice)
        assert ctype == "image/jpeg" and data[:3] == b"\xff\xd8\xff"
        svc.decide(c.id, alice, outcome="approve", reason="identity_confirmed", note="  matches  ")
    assert seen == [CaseStatus.APPROVED]
    with factory() as s:
        c = s.get(Case, cid)
        assert (c.status, c.decided_by, c.decided_reason, c.decided_note, c.claimed_by) == (
            "approved", alice.id, "identity_confirmed", "matches", None)
        d = s.scalars(select(WebhookDelivery)).one()
        assert d.payload["verification_id"] == c.verification_id and d.payload["status"] == "approved"
        assert "王小明" not in str(d.payload)
        log = ReviewService(s).audit_log(cid)
        assert [(a.action, a.actor) for a in log][-2:] == [("claim", "alice"), ("decide", "alice")]
        assert all(a.at is not None and a.at.tzinfo is not None for a in log)
        assert "王小明" not in str([a.detail for a in log])  # no PII in the audit details
    with unit_of_work(factory) as s, pytest.raises(IdvError) as ei:
        ReviewService(s).claim(cid, alice)
    assert ei.value.code is R.REVIEW_ALREADY_DECIDED


def test_four_eyes_reject_needs_a_second_reviewer(factory, policy):
    (cid,) = make_cases(factory, policy, 1)
    alice, bob = make_reviewers(factory, "alice", "bob")
    cfg = ReviewConfig(four_eyes_reject=True)
    with unit_of_work(factory) as s:
        svc = ReviewService(s, config=cfg)
        svc.claim(cid, alice)
        c = svc.decide(cid, alice, outcome="reject", reason="card_forged_or_altered")
        assert c.status == CaseStatus.AWAITING_CONFIRMATION
    with unit_of_work(factory) as s, pytest.raises(IdvError) as ei:
        ReviewService(s, config=cfg).claim(cid, alice)
    assert ei.value.code is R.REVIEW_SAME_REVIEWER
    with unit_of_work(factory) as s, pytest.raises(IdvError) as ei:
        ReviewService(s, config=cfg).claim_next(alice)
    assert ei.value.code is R.REVIEW_QUEUE_EMPTY
    with unit_of_work(factory) as s:
        svc = ReviewService(s, config=cfg)
        assert svc.claim_next(bob).id == cid
        c = svc.decide(cid, bob, outcome="reject", reason="card_forged_or_altered")
        assert c.status == CaseStatus.REJECTED and c.proposed_by == alice.id and c.decided_by == bob.id
    with factory() as s:
        assert [a.action for a in ReviewService(s).audit_log(cid)][-3:] == ["propose_reject", "claim", "decide"]


def test_escalation_is_for_supervisors(factory, policy):
    (cid,) = make_cases(factory, policy, 1)
    (alice,) = make_reviewers(factory, "alice")
    (sup,) = make_reviewers(factory, "sue", role="supervisor")
    with unit_of_work(factory) as s:
        svc = ReviewService(s)
        svc.claim(cid, alice)
        assert svc.escalate(cid, alice, note="card looks altered").status == CaseStatus.ESCALATED
    with unit_of_work(factory) as s, pytest.raises(IdvError) as ei:
        ReviewService(s).claim(cid, alice)
    assert ei.value.code is R.REVIEW_FORBIDDEN
    with unit_of_work(factory) as s:
        svc = ReviewService(s, config=ReviewConfig(four_eyes_reject=True))
        assert svc.claim_next(sup).id == cid
        # a supervisor's reject is final even with four-eyes on
        assert svc.decide(cid, sup, outcome="reject", reason="card_forged_or_altered").status == CaseStatus.REJECTED


def test_correction_and_reveal_are_audited(factory, policy):
    (cid,) = make_cases(factory, policy, 1)
    (alice,) = make_reviewers(factory, "alice")
    with unit_of_work(factory) as s:
        svc = ReviewService(s)
        svc.claim(cid, alice)
        with pytest.raises(IdvError) as ei:
            svc.correct_field(cid, alice, field_name="nickname", value="x")
        assert ei.value.code is R.REVIEW_FIELD_UNKNOWN
        with pytest.raises(IdvError) as ei:
            svc.correct_field(cid, alice, field_name="name", value="x" * 201)
        assert ei.value.code is R.REVIEW_TEXT_TOO_LONG
    with unit_of_work(factory) as s:
        svc = ReviewService(s)
        svc.correct_field(cid, alice, field_name="name", value="王晓明")
        fields = svc.reveal(cid, alice)
    assert fields["name"]["value"] == "王小明" and fields["name"]["corrected"] == "王晓明"
    with factory() as s:
        log = ReviewService(s).audit_log(cid)
        assert [a.action for a in log][-2:] == ["correct_field", "reveal"]
        assert log[-2].detail == {"field": "name"} and log[-1].detail["fields"] == ["id_number", "name"]


def test_fields_are_sealed_in_the_database(factory, engine, policy, store):
    """With an evidence store the read fields are encrypted in the row: a dump shows no name or ID
    number; the service still reveals and corrects them; a row copied onto another case fails."""
    a, b = make_cases(factory, policy, 2, store=store)
    with engine.connect() as conn:
        dump = " ".join(str(r) for r in conn.execute(text("SELECT * FROM review_cases")))
    assert "王小明" not in dump and "11010119900307123X" not in dump and "1101011990" not in dump
    (alice,) = make_reviewers(factory, "alice")
    with unit_of_work(factory) as s:
        svc = ReviewService(s, store=store)
        svc.claim(a, alice)
        svc.correct_field(a, alice, field_name="id_number", value="110101199003071238")
        assert svc.reveal(a, alice)["id_number"] == {**svc.reveal(a, alice)["id_number"],
                                                     "value": "11010119900307123X", "corrected": "110101199003071238"}
    with unit_of_work(factory) as s:
        s.get(Case, b).fields = dict(s.get(Case, a).fields)  # ciphertext moved onto another case
    with factory() as s:
        with pytest.raises(IdvError) as ei:
            ReviewService(s, store=store).fields_of(s.get(Case, b))
        assert ei.value.code is R.REVIEW_EVIDENCE_TAMPERED


def test_release_returns_the_case(factory, policy):
    (cid,) = make_cases(factory, policy, 1)
    alice, bob = make_reviewers(factory, "alice", "bob")
    with unit_of_work(factory) as s:
        ReviewService(s).claim(cid, alice)
    with unit_of_work(factory) as s:
        ReviewService(s).release(cid, alice)
    with unit_of_work(factory) as s:
        assert ReviewService(s).claim_next(bob).id == cid


def test_audit_log_cannot_be_updated_or_deleted(factory, engine, policy):
    make_cases(factory, policy, 1)
    with factory() as s:
        n = s.scalar(select(func.count()).select_from(AuditEvent))
        ev = s.scalars(select(AuditEvent)).first()
        ev.actor = "mallory"
        with pytest.raises(IdvError) as ei:
            s.flush()
        assert ei.value.code is R.REVIEW_AUDIT_APPEND_ONLY
        s.rollback()
        ev = s.scalars(select(AuditEvent)).first()
        s.delete(ev)
        with pytest.raises(IdvError):
            s.flush()
        s.rollback()
        for stmt in (update(AuditEvent).values(actor="mallory"), delete(AuditEvent)):
            with pytest.raises(IdvError):
                s.execute(stmt)
            s.rollback()
    # below the application: the database triggers refuse raw SQL too
    for sql in ("UPDATE review_audit_log SET actor = 'mallory'", "DELETE FROM review_audit_log"):
        with engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text(sql))
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text("TRUNCATE review_audit_log"))
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == n
        assert s.scalar(select(func.count()).where(AuditEvent.actor == "mallory")) == 0


def test_bad_images_refused_with_reason_and_nothing_stored(factory, policy, store):
    with unit_of_work(factory) as s, pytest.raises(IdvError) as ei:
        ReviewService(s, store=store).create_case(
            verification_id="v-bad", decision=review_decision(policy),
            images=[EvidenceImage("card_front", b"not an image at all")])
    assert ei.value.code is R.INPUT_WRONG_TYPE
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 0
        assert s.scalar(select(func.count()).select_from(CaseImage)) == 0
    assert not list(store.directory.rglob("*.bin"))


def test_case_carries_due_and_priority(factory, policy):
    created = dt.datetime(2026, 9, 30, 2, 0, tzinfo=dt.UTC)  # 10:00 Beijing, eve of National Day
    with unit_of_work(factory) as s:
        c = ReviewService(s, clock=lambda: created).create_case(
            verification_id="v-nd", decision=review_decision(policy, R.LIVENESS_ACTION_MISSING, R.LIVENESS_POOR_QUALITY))
    assert c.due_at == dt.datetime(2026, 10, 8, 2, 0, tzinfo=dt.UTC) and c.calendar_fallback is False
    assert c.priority == 3
    late = dt.datetime(2027, 3, 4, 2, 0, tzinfo=dt.UTC)
    with unit_of_work(factory) as s:
        c = ReviewService(s, clock=lambda: late).create_case(verification_id="v-27", decision=review_decision(policy))
        assert c.calendar_fallback is True
        items = ReviewService(s, clock=lambda: late + dt.timedelta(days=3)).queue()
    assert [i.verification_id for i in items] == ["v-nd", "v-27"]  # earliest due first
    assert all(i.overdue for i in items) and items[1].calendar_fallback
