"""Full verifications through the real app: approved, rejected, review -> reviewer -> signed webhook,
idempotency, masking, per-client isolation, purge."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import WEBHOOK_SECRET, ApiEnv, verify_files


def _verify(env: ApiEnv, who: str = "a", headers: dict | None = None, **kw) -> object:
    data = {"challenge_id": env.challenge(), "applicant_ref": "applicant-001"}
    return env.client.post(
        "/v1/verifications", headers={**env.auth(who), **(headers or {})}, data=data, files=verify_files(env, **kw)
    )


def _check_webhook(env: ApiEnv, vid: str, decision: str, decided_by: str) -> dict:
    from review_queue.webhooks import SIGNATURE_HEADER, verify_signature

    headers, body = env.receiver.wait_for(vid)
    sig = next(v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower())
    verify_signature(body, sig, WEBHOOK_SECRET)  # raises on a bad signature
    event = json.loads(body)
    assert event["decision"] == decision and event["decided_by"] == decided_by
    assert set(event) >= {"verification_id", "applicant_ref", "reasons", "event_id"}
    return event


def test_happy_path_approved_with_masked_pii_and_signed_webhook(api: ApiEnv) -> None:
    r = _verify(api)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] == "approved", body["reasons"]
    assert body["status"] == "completed" and body["pii_masked"] is True
    name = body["result"]["fields"].get("name", "")
    assert "*" in name  # masked: 张*
    # the birth date is eight digits of the ID number: masked too, everywhere in the document
    assert body["result"]["fields"]["birth_date"] == "****-**-**"
    assert body["result"]["stages"]["ocr_front"]["fields"]["birth_date"]["value"] == "****-**-**"
    _check_webhook(api, body["id"], "approved", "machine")

    # the pii:read key of the same client sees the full values; the plain key the masked ones
    full = api.client.get(f"/v1/verifications/{body['id']}", headers=api.auth("a_pii")).json()
    assert full["pii_masked"] is False and "*" not in full["result"]["fields"]["name"]
    assert "*" not in full["result"]["fields"]["birth_date"]
    masked = api.client.get(f"/v1/verifications/{body['id']}", headers=api.auth("a")).json()
    assert masked["result"]["fields"]["name"] == name
    # another client cannot see it
    assert api.client.get(f"/v1/verifications/{body['id']}", headers=api.auth("b")).status_code == 404


def test_face_mismatch_rejected(api: ApiEnv) -> None:
    r = _verify(api, front="other_front", back="other_back")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] == "rejected"
    assert "face.mismatch" in body["reasons"]
    _check_webhook(api, body["id"], "rejected", "machine")


def test_poor_capture_goes_to_review_then_reviewer_decides_and_webhook_is_signed(api: ApiEnv) -> None:
    from api.db import VerificationRecord, unit_of_work
    from models.errors import IdvError
    from review_queue.db import Case

    r = _verify(api, clip="dark_clip")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] == "review" and body["status"] == "review", body["reasons"]
    assert body["case_id"]
    assert any(c.startswith(("liveness.", "quality.")) for c in body["reasons"])

    with api.ctx.session_factory() as s0:
        pii_before = s0.get(VerificationRecord, body["id"]).pii_object
    # a reviewer decides through the review queue's service, with the API's hook
    bridge = api.ctx.review
    with unit_of_work(api.ctx.session_factory) as s:
        svc = bridge.service(s)
        reviewer = svc.create_reviewer(username="rev1", password="correct horse battery")
        svc.claim(body["case_id"], reviewer)
        # a reviewer's correction is held to the card's rules (a typo is refused, nothing stored) ...
        for field, bad in (("sex", "<img src=x>"), ("birth_date", "NaN"), ("id_number", "-1e309"), ("name", "\ufffd")):
            with pytest.raises(IdvError) as e:
                svc.correct_field(body["case_id"], reviewer, field_name=field, value=bad)
            assert e.value.code == "review.correction_invalid", field
        svc.correct_field(body["case_id"], reviewer, field_name="name", value="王小明")
        svc.decide(body["case_id"], reviewer, outcome="approve", reason="ocr_misread_corrected")
    api.ctx.webhooks.kick()
    event = _check_webhook(api, body["id"], "approved", "reviewer")
    assert event["applicant_ref"] == "applicant-001"
    after = api.client.get(f"/v1/verifications/{body['id']}", headers=api.auth("a")).json()
    assert after["status"] == "completed" and after["decision"] == "approved"
    # ... and what the app reads back carries it: masked by default, in full with pii:read
    assert after["result"]["fields"]["name"] == "王**"
    assert [c["field"] for c in after["result"]["review_corrections"]] == ["name"]
    full = api.client.get(f"/v1/verifications/{body['id']}", headers=api.auth("a_pii")).json()
    assert full["result"]["fields"]["name"] == "王小明"
    assert full["result"]["review_corrections"][0]["to"] == "王小明"
    assert not api.ctx.evidence.store.exists(pii_before)  # the superseded PII object is gone

    # DELETE purges images and PII for real (files and rows), the anonymised decision stays
    with api.ctx.session_factory() as s:
        case_images = [im.object_id for im in s.get(Case, body["case_id"]).images] if hasattr(Case, "images") else []
    from api.db import VerificationRecord

    with api.ctx.session_factory() as s:
        rec = s.get(VerificationRecord, body["id"])
        objects = [*rec.evidence.values(), rec.pii_object, *case_images]
    assert objects and all(api.ctx.evidence.store.exists(o) for o in objects)
    assert api.client.delete(f"/v1/verifications/{body['id']}", headers=api.auth("a")).status_code == 204
    assert not any(api.ctx.evidence.store.exists(o) for o in objects)
    with api.ctx.session_factory() as s:
        from review_queue.db import CaseImage

        assert s.query(CaseImage).filter(CaseImage.case_id == body["case_id"]).count() == 0
        assert s.get(Case, body["case_id"]).fields == {}
    gone = api.client.get(f"/v1/verifications/{body['id']}", headers=api.auth("a_pii")).json()
    assert gone["purged"] is True and gone["decision"] == "approved" and gone["applicant_ref"] is None
    assert "fields" not in (gone["result"] or {})
    assert all(isinstance(v, (bool, int, float, list, type(None))) for st in gone["result"]["stages"].values() for v in st.values())


def test_deleting_a_verification_in_review_withdraws_its_case(api: ApiEnv) -> None:
    """A deleted applicant leaves no empty case for reviewers: purged and out of the queue, audited."""
    from api.db import unit_of_work
    from review_queue.db import Case, CaseImage, CaseStatus

    body = _verify(api, clip="dark_clip").json()
    assert body["decision"] == "review" and body["case_id"]
    assert api.client.delete(f"/v1/verifications/{body['id']}", headers=api.auth("a")).status_code == 204
    with unit_of_work(api.ctx.session_factory) as s:
        case = s.get(Case, body["case_id"])
        assert case.status == CaseStatus.WITHDRAWN and case.fields == {} and case.applicant_ref is None
        assert s.query(CaseImage).filter(CaseImage.case_id == case.id).count() == 0
        svc = api.ctx.review.service(s)
        assert body["case_id"] not in {q.case_id for q in svc.queue()}
        assert "withdrawn" in [e.action for e in svc.audit_log(case.id)]


def test_idempotency_same_body_replays_different_body_conflicts(api: ApiEnv) -> None:
    # a failing (undecodable image) request is cheap and still creates a verification to replay
    ch = api.challenge()
    files = {**verify_files(api), "id_front": ("f.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 200, "image/jpeg")}
    h = {**api.auth("a"), "Idempotency-Key": "retry-1"}
    r1 = api.client.post("/v1/verifications", headers=h, data={"challenge_id": ch}, files=files)
    assert r1.status_code == 422 and r1.json()["type"] == "input.unreadable"
    vid = r1.json()["verification_id"]
    assert vid
    r2 = api.client.post("/v1/verifications", headers=h, data={"challenge_id": ch}, files=files)
    assert r2.status_code == 422 and r2.json() == r1.json()  # same first result, the used challenge not re-checked
    files3 = {**files, "id_front": ("f.jpg", b"\xff\xd8\xff\xe0" + b"\x01" * 200, "image/jpeg")}
    r3 = api.client.post("/v1/verifications", headers=h, data={"challenge_id": ch}, files=files3)
    assert r3.status_code == 409 and r3.json()["type"] == "idempotency.conflict"
    # keys are per client: the same key from another client is a new request
    h_b = {**api.auth("b"), "Idempotency-Key": "retry-1"}
    r4 = api.client.post("/v1/verifications", headers=h_b, data={"challenge_id": ch}, files=files)
    assert r4.status_code == 422 and r4.json()["type"] == "liveness.challenge_unknown"


def test_manual_mode_goes_to_review(api: ApiEnv) -> None:
    import cv2

    selfie = api.files["front"]  # any photo with a face and a card: the case still goes to a person
    r = api.client.post(
        "/v1/verifications", headers=api.auth("a"), data={"mode": "manual"},
        files={"id_front": ("f.png", api.files["front"], "image/png"), "selfie_with_card": ("s.png", selfie, "image/png")},
    )
    assert r.status_code == 200, r.text
    assert r.json()["decision"] == "review" and r.json()["case_id"]
    assert "decision.manual_submission" in r.json()["reasons"]

    # a "selfie" with no face at all is refused with a reason, and opens no case for a person
    ok, blank = cv2.imencode(".png", np.full((600, 800, 3), 200, np.uint8))
    r = api.client.post(
        "/v1/verifications", headers=api.auth("a"), data={"mode": "manual"},
        files={"id_front": ("f.png", api.files["front"], "image/png"), "selfie_with_card": ("s.png", blank.tobytes(), "image/png")},
    )
    assert r.status_code == 422 and r.json()["type"] == "face.not_detected", r.text


def test_webhooks_still_sent_after_a_second_lifespan_of_the_app_exits(api: ApiEnv) -> None:
    """The app's lifespan entered a second time and left (what schemathesis' `from_asgi` does) used to
    stop the one webhook pump for good: every later webhook stayed pending."""
    from fastapi.testclient import TestClient

    with TestClient(api.client.app) as second:
        assert second.get("/healthz").status_code == 200
    r = _verify(api)
    assert r.status_code == 200, r.text
    _check_webhook(api, r.json()["id"], "approved", "machine")
