"""Signed webhooks against a real local HTTP receiver: signature checked on arrival, retries with
exponential backoff, every attempt recorded, a dead endpoint ends as failed."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from models.errors import IdvError
from models.reasons import Reason as R
from review_queue import unit_of_work
from review_queue.db import WebhookAttempt, WebhookDelivery
from review_queue.webhooks import SIGNATURE_HEADER, WebhookConfig, WebhookSender, canonical_body, sign, verify_signature

SECRET = "whsec-test-secret"


def test_sign_and_verify():
    body = canonical_body({"verification_id": "v1", "status": "approved"})
    ts = int(time.time())
    header = sign(body, SECRET, ts)
    assert header.startswith(f"t={ts},v1=") and verify_signature(body, header, SECRET) == ts
    for bad_body, bad_header, code in (
        (body + b" ", header, R.WEBHOOK_SIGNATURE_INVALID),
        (body, header.replace("v1=", "v1=0"), R.WEBHOOK_SIGNATURE_INVALID),
        (body, "garbage", R.WEBHOOK_SIGNATURE_INVALID),
        (body, sign(body, "other-secret", ts), R.WEBHOOK_SIGNATURE_INVALID),
        (body, sign(body, SECRET, ts - 3600), R.WEBHOOK_TIMESTAMP_STALE),
    ):
        with pytest.raises(IdvError) as ei:
            verify_signature(bad_body, bad_header, SECRET)
        assert ei.value.code is code


class _Receiver(BaseHTTPRequestHandler):
    fail_first = 2
    seen: list[tuple[int, bool]] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            verify_signature(body, self.headers[SIGNATURE_HEADER], SECRET)
            ok = True
        except IdvError:
            ok = False
        type(self).seen.append((len(type(self).seen) + 1, ok))
        status = 503 if len(type(self).seen) <= type(self).fail_first else (200 if ok else 401)
        self.send_response(status)
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def receiver():
    _Receiver.seen = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/hook"
    srv.shutdown()
    srv.server_close()


def test_retries_with_backoff_until_delivered(factory, receiver):
    waits: list[float] = []
    sender = WebhookSender(WebhookConfig(secret=SECRET, max_attempts=5, base_delay_s=0.5), sleep=waits.append)
    with unit_of_work(factory) as s:
        d = sender.enqueue(s, url=receiver, event_type="verification.decided",
                           payload={"verification_id": "v1", "status": "approved"}, verification_id="v1")
        did = d.id
    (out,) = sender.deliver_pending(factory)
    assert out.status == "delivered" and out.attempts == 3 and out.last_status_code == 200
    assert waits == [0.5, 1.0]  # exponential backoff between the failed attempts
    assert _Receiver.seen == [(1, True), (2, True), (3, True)]  # every attempt correctly signed
    with factory() as s:
        attempts = s.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == did)
                             .order_by(WebhookAttempt.attempt_no)).all()
        assert [(a.attempt_no, a.status_code) for a in attempts] == [(1, 503), (2, 503), (3, 200)]
    assert sender.deliver_pending(factory) == []  # nothing left pending
    sender.close()


def test_dead_endpoint_ends_failed(factory):
    waits: list[float] = []
    sender = WebhookSender(WebhookConfig(secret=SECRET, max_attempts=3, base_delay_s=1.0, timeout_s=2), sleep=waits.append)
    with unit_of_work(factory) as s:
        did = sender.enqueue(s, url="http://127.0.0.1:9/hook", event_type="verification.decided",
                             payload={"verification_id": "v2"}).id
    d = sender.deliver(factory, did)
    assert d.status == "failed" and d.attempts == 3 and d.last_status_code is None and d.last_error
    assert waits == [1.0, 2.0]
    with factory() as s:
        assert s.get(WebhookDelivery, did).status == "failed"
        assert len(s.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == did)).all()) == 3
    sender.close()


class _CountingReceiver(BaseHTTPRequestHandler):
    lock = threading.Lock()
    bodies: list[bytes] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(0.01)  # a real receiver takes a moment: widens the window in which a double send would show
        with type(self).lock:
            type(self).bodies.append(body)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


def test_two_senders_claim_each_row_once_and_a_dead_senders_lease_expires(factory):
    import datetime as dt
    import json

    from review_queue.db import utcnow

    _CountingReceiver.bodies = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _CountingReceiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/hook"
    n = 30
    with unit_of_work(factory) as s:
        seed = WebhookSender(WebhookConfig(secret=SECRET))
        for i in range(n):
            seed.enqueue(s, url=url, event_type="verification.decided", payload={"verification_id": f"v{i}"})
        seed.close()
    # two senders, as two API worker processes would have, each with its own client, started together
    senders = [WebhookSender(WebhookConfig(secret=SECRET)) for _ in range(2)]
    got: list[list[str]] = [[], []]
    barrier = threading.Barrier(2)

    def run(k: int) -> None:
        barrier.wait()
        for _ in range(3):  # several rounds each, as the delivery threads do
            got[k].extend(d.id for d in senders[k].deliver_pending(factory, limit=7))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    ids = [json.loads(b)["verification_id"] for b in _CountingReceiver.bodies]
    assert sorted(ids) == sorted(f"v{i}" for i in range(n))  # every row sent, none twice
    assert not set(got[0]) & set(got[1]) and len(got[0]) + len(got[1]) == n
    with factory() as s:
        assert {d.status for d in s.scalars(select(WebhookDelivery))} == {"delivered"}
        assert all(len(s.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == i)).all()) == 1
                   for i in got[0] + got[1])

    # a sender that claimed a row and died: nobody touches it during its lease, anyone after it
    with unit_of_work(factory) as s:
        held = seed.enqueue(s, url=url, event_type="verification.decided", payload={"verification_id": "held"})
        held.status, held.next_attempt_at = "sending", utcnow() + dt.timedelta(seconds=60)
        dead = seed.enqueue(s, url=url, event_type="verification.decided", payload={"verification_id": "dead"})
        dead.status, dead.next_attempt_at = "sending", utcnow() - dt.timedelta(seconds=1)
        held_id, dead_id = held.id, dead.id
    assert [d.id for d in senders[0].deliver_pending(factory)] == [dead_id]
    assert senders[1].deliver(factory, held_id).status == "sending"  # still leased: left alone
    with factory() as s:
        assert s.get(WebhookDelivery, dead_id).status == "delivered"
    for sender in senders:
        sender.close()
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # PostgreSQL claims with SKIP LOCKED in one statement
def test_a_sender_that_loses_rows_to_a_rival_still_claims_its_full_batch(factory):
    """What CI once caught on SQLite: two senders list the same due rows, the rival wins some of them
    between this sender's listing and its claims. This sender must go on to the next due rows, not
    return a short batch (three rounds of 7 then left rows undelivered)."""
    seed = WebhookSender(WebhookConfig(secret=SECRET))
    with unit_of_work(factory) as s:
        ids = [seed.enqueue(s, url="http://127.0.0.1:9/hook", event_type="verification.decided",
                            payload={"verification_id": f"r{i}"}).id for i in range(12)]
    rival = WebhookSender(WebhookConfig(secret=SECRET))
    stolen: list[str] = []

    class Loser(WebhookSender):
        def claim(self, session_factory, delivery_id):
            if not stolen:  # just before this sender's first claim, the rival takes the first three rows
                stolen.extend(i for i in ids[:3] if rival.claim(session_factory, i))
            return super().claim(session_factory, delivery_id)

    loser = Loser(WebhookConfig(secret=SECRET))
    got = loser._claim_due(factory, 5)
    assert stolen == ids[:3]
    assert got == ids[3:8]  # five rows, none of the stolen ones
    with factory() as s:
        assert {s.get(WebhookDelivery, i).status for i in ids[:8]} == {"sending"}
        assert {s.get(WebhookDelivery, i).status for i in ids[8:]} == {"pending"}
    for sender in (seed, rival, loser):
        sender.close()


def test_webhook_urls_are_http_targets_never_files_or_instance_metadata():
    from review_queue.webhooks import check_webhook_url

    for ok in ("https://app.example/hooks/idv", "http://10.0.0.5:8080/hook", "http://127.0.0.1:9000/h"):
        assert check_webhook_url(ok) == ok
    for bad in ("file:///etc/passwd", "http://169.254.169.254/latest/meta-data", "gopher://x/", "https://",
                "http://[fe80::1]/h", "http://user:pw@app.example/h", "http://app.example:99999/h", "http://0.0.0.0/h"):
        with pytest.raises(ValueError):
            check_webhook_url(bad)
