"""The reviewer UI: refusals over HTTP (forged CSRF, another reviewer's case, unknown reason,
oversized note) and a real headless Chromium session (log in, open the oldest case, see images and
fields, approve, see the queue shrink), with screenshots kept as artifacts."""

from __future__ import annotations

import re
import secrets

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from models.reasons import Reason as R
from review_queue import EvidenceImage, ReviewService, Signals, decide, unit_of_work
from review_queue.db import AuditEvent, Case
from review_queue.web import create_review_app
from tests.servers import serve_in_thread

PW = "correct horse"


@pytest.fixture
def app_env(db_url, tmp_path, policy, face_bytes):
    key = secrets.token_bytes(32)
    app = create_review_app(database_url=db_url, store_dir=tmp_path / "store", encryption_key=key,
                            secret_key=secrets.token_urlsafe(32), run_migrations=False)
    factory = app.state.session_factory
    from review_queue.storage import EncryptedStore

    store = EncryptedStore(tmp_path / "store", key)
    d = decide(Signals(frozenset({R.IDCARD_ETHNICITY_UNKNOWN}), face_similarity=0.38, face_threshold=0.36), policy)
    with unit_of_work(factory) as s:
        svc = ReviewService(s, store=store)
        for n in ("alice", "bob"):
            svc.create_reviewer(username=n, password=PW)
        ids = []
        for i in range(3):
            c = svc.create_case(
                verification_id=f"ver-{i}", applicant_ref=f"app-{i}", decision=d,
                fields={"name": {"value": "李华", "confidence": 0.97, "valid": True},
                        "ethnicity": {"value": "穿青人", "confidence": 0.95, "valid": False,
                                      "reasons": ["idcard.ethnicity_unknown"]},
                        "id_number": {"value": "11010119900307123X", "confidence": 0.99, "valid": True}},
                scores={"face_similarity": {"score": 0.38, "threshold": 0.36}},
                images=[EvidenceImage("selfie_with_card", face_bytes["img1.jpg"]),
                        EvidenceImage("card_front", face_bytes["img2.jpg"]),
                        EvidenceImage("best_frame", face_bytes["img3.jpg"]),
                        EvidenceImage("audit_frame", face_bytes["img4.jpg"], 1)])
            ids.append(c.id)
    yield app, factory, ids
    app.state.engine.dispose()


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _login(client: TestClient, user: str) -> str:
    tok = _csrf(client.get("/review/login").text)
    r = client.post("/review/login", data={"username": user, "password": PW, "csrf_token": tok})
    assert r.status_code == 200 and "Review queue" in r.text
    return _csrf(r.text)


def _state(factory, cid):
    with factory() as s:
        c = s.get(Case, cid)
        return (c.status, c.claimed_by, c.decided_reason, c.decided_note,
                s.scalar(select(func.count()).where(AuditEvent.action.in_(("decide", "claim")))))


def test_web_refusals_change_nothing(app_env):
    app, factory, ids = app_env
    alice, bob = TestClient(app), TestClient(app)
    ta, tb = _login(alice, "alice"), _login(bob, "bob")
    failed = bob.post("/review/login", data={"username": "bob", "password": "nope", "csrf_token": tb})
    assert failed.status_code == 401 and "review.login_failed" in failed.text  # the page carries its reason code

    r = alice.post("/review/next", data={"csrf_token": ta})
    cid = r.url.path.rsplit("/", 1)[1]
    assert cid == ids[0] and "Best live frame" in r.text and "李*" in r.text and "李华" not in r.text
    before = _state(factory, cid)

    # forged CSRF token
    r = alice.post(f"/review/cases/{cid}/decision",
                   data={"outcome": "approve", "reason": "identity_confirmed", "csrf_token": "forged"})
    assert r.status_code == 403 and "form token" in r.text and "review.csrf_invalid" in r.text
    # unknown reason
    r = alice.post(f"/review/cases/{cid}/decision", data={"outcome": "approve", "reason": "looks fine", "csrf_token": ta})
    assert r.status_code == 422 and "review.reason_unknown" in r.text
    # oversized free text
    r = alice.post(f"/review/cases/{cid}/decision",
                   data={"outcome": "approve", "reason": "identity_confirmed", "note": "x" * 501, "csrf_token": ta})
    assert r.status_code == 422 and "at most 500" in r.text
    # another reviewer opening / deciding / fetching images of alice's claimed case
    r = bob.get(f"/review/cases/{cid}")
    assert r.status_code == 403 and "Another reviewer has claimed this case" in r.text
    r = bob.post(f"/review/cases/{cid}/decision", data={"outcome": "reject", "reason": "liveness_spoof", "csrf_token": tb})
    assert r.status_code == 409 and "review.claimed_by_other" in r.text
    img = re.search(r'/review/cases/[0-9a-f]+/images/[0-9a-f]+', alice.get(f"/review/cases/{cid}").text).group(0)
    assert bob.get(img).status_code == 403 and alice.get(img).headers["content-type"] == "image/jpeg"
    # a session cookie from alice with bob's token does not pass either
    r = alice.post(f"/review/cases/{cid}/decision", data={"outcome": "approve", "reason": "identity_confirmed", "csrf_token": tb})
    assert r.status_code == 403
    assert _state(factory, cid) == before

    # not logged in: sent to the login page, images not served
    anon = TestClient(app)
    assert anon.get(img, follow_redirects=False).status_code == 303
    assert anon.get("/review/", follow_redirects=False).headers["location"] == "/review/login"

    # reveal is audited
    r = alice.post(f"/review/cases/{cid}/reveal", data={"csrf_token": ta})
    assert "李华" in r.text and "revealed" in r.text
    with factory() as s:
        assert s.scalar(select(func.count()).where(AuditEvent.action == "reveal", AuditEvent.case_id == cid)) == 1


def test_logout_ends_the_session_on_the_server(app_env):
    """A copy of the session cookie taken before logout opens nothing afterwards."""
    app, factory, ids = app_env
    alice = TestClient(app)
    token = _login(alice, "alice")
    stolen = dict(alice.cookies)
    r = alice.post("/review/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/review/login"
    thief = TestClient(app, cookies=stolen)
    for url in ("/review/", f"/review/cases/{ids[0]}"):
        r = thief.get(url, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/review/login", url
    with factory() as s:
        assert s.scalar(select(func.count()).where(AuditEvent.action == "logout")) == 1
    # logging in again works and makes a new session
    _login(alice, "alice")


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def live_server(app_env):
    app, factory, ids = app_env
    with serve_in_thread(app) as port:
        yield f"http://127.0.0.1:{port}", factory, ids


@pytest.mark.slow
def test_reviewer_session_in_chromium(live_server, artifacts_dir, request):
    from playwright.sync_api import sync_playwright

    base, factory, ids = live_server
    tag = request.node.callspec.id
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/review/")
            assert page.url.endswith("/review/login")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", PW)
            page.click("button[type=submit]")
            page.wait_for_selector("#queue")
            assert page.locator("tr.case-row").count() == 3
            page.screenshot(path=str(artifacts_dir / f"review_queue_{tag}.png"), full_page=True)

            # the oldest case (earliest due) is the first row
            first = page.locator("tr.case-row").first
            assert first.get_attribute("data-case") == ids[0]
            first.locator("a", has_text="Open").click()
            page.click("#claim")
            page.wait_for_selector("#decision-form")
            imgs = page.locator("#images img")
            assert imgs.count() == 4
            page.wait_for_function(
                "() => [...document.querySelectorAll('#images img')].every(i => i.complete && i.naturalWidth > 0)")
            kinds = [imgs.nth(i).get_attribute("data-kind") for i in range(4)]
            assert kinds == ["selfie_with_card", "card_front", "best_frame", "audit_frame"]
            assert "穿青人" in page.inner_text("#fields")
            assert "not one of the 56 recognised groups" in page.inner_text("#fields")
            assert "0.380" in page.inner_text("#scores") and "0.360" in page.inner_text("#scores")
            assert "李*" in page.inner_text("#fields")
            page.screenshot(path=str(artifacts_dir / f"review_case_{tag}.png"), full_page=True)

            page.locator("body").press("a")  # keyboard shortcut: approve, first approve reason
            assert page.is_checked("#outcome-approve")
            assert page.eval_on_selector("#reason", "e => e.value") == "identity_confirmed"
            page.click("#submit-decision")
            page.wait_for_selector("#queue")
            assert page.locator("tr.case-row").count() == 2
            assert page.inner_text("#queue-count") == "2"
            assert ids[0] not in [page.locator("tr.case-row").nth(i).get_attribute("data-case") for i in range(2)]
        finally:
            browser.close()
    with factory() as s:
        c = s.get(Case, ids[0])
        assert (c.status, c.decided_reason) == ("approved", "identity_confirmed")
