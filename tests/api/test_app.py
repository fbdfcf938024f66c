"""Operations endpoints, the OpenAPI document, and no PII in any log line of a full verification."""

from __future__ import annotations

import logging

import numpy as np

from .conftest import ApiEnv, verify_files


def test_health_ready_metrics_docs(api: ApiEnv) -> None:
    assert api.client.get("/healthz").json()["status"] == "ok"
    r = api.client.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"] == {"models": "ok", "database": "ok"}
    schema = api.client.get("/openapi.json").json()
    assert {"/v1/challenges", "/v1/verifications", "/v1/verifications/{verification_id}"} <= set(schema["paths"])
    assert "image's right" in schema["paths"]["/v1/challenges"]["post"]["description"]
    docs = api.client.get("/docs")
    assert docs.status_code == 200
    # offline: every script and stylesheet of the docs page is served by the app itself
    assert "cdn." not in docs.text and "http" not in docs.text.split("<body>")[0]
    for asset in ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"):
        assert asset in docs.text and api.client.get(asset).status_code == 200
    m = api.client.get("/metrics").text
    for name in ("idv_http_requests_total", "idv_stage_seconds", "idv_decisions_total", "idv_review_queue_depth"):
        assert name in m
    for probe in ("/healthz", "/readyz", "/metrics"):  # load balancers probe with HEAD
        assert api.client.head(probe).status_code == 200, probe


def test_made_up_methods_share_one_metrics_label(api: ApiEnv) -> None:
    for i in range(5):
        assert api.client.request(f"RND{i}XYZ", "/healthz").status_code == 405
    m = api.client.get("/metrics").text
    assert "RND" not in m and 'method="other"' in m


def test_no_pii_in_logs(api: ApiEnv, caplog) -> None:
    from ocr.synthetic import random_person

    rng = np.random.default_rng(2026)  # api.demo.build_demo_cards draws the same two people
    person = random_person(rng)
    caplog.set_level(logging.DEBUG)  # root at DEBUG: every logger's records
    for name in list(logging.root.manager.loggerDict):
        logging.getLogger(name).setLevel(logging.DEBUG)
    r = api.client.post(
        "/v1/verifications", headers=api.auth("a_pii"),
        data={"challenge_id": api.challenge(), "declared_name": person.name, "declared_id_number": person.id_number},
        files=verify_files(api),
    )
    assert r.status_code == 200, r.text
    assert r.json()["result"]["fields"].get("id_number")  # the verification really read the card
    text = "\n".join(f"{rec.name} {rec.getMessage()} {rec.args!r}" for rec in caplog.records)
    assert len(caplog.records) > 3
    for secret in (person.name, person.id_number, person.address, person.address[:6], person.id_number[:14]):
        assert secret not in text, "applicant data in a log line"


def test_retention_purge_keeps_only_the_anonymised_record(api: ApiEnv) -> None:
    from datetime import timedelta

    from api.db import VerificationRecord, unit_of_work, utcnow
    from api.jobs import purge_expired

    r = api.client.post(
        "/v1/verifications", headers=api.auth("a"), data={"challenge_id": api.challenge(), "applicant_ref": "old-1"},
        files={**verify_files(api), "id_front": ("x.jpg", b"\xff\xd8\xff" + b"\0" * 64, "image/jpeg")},
    )
    vid = r.json()["verification_id"]
    with unit_of_work(api.ctx.session_factory) as s:
        s.get(VerificationRecord, vid).created_at = utcnow() - timedelta(days=api.ctx.settings.retention_days + 1)
    assert purge_expired(api.ctx) >= 1
    out = api.client.get(f"/v1/verifications/{vid}", headers=api.auth("a")).json()
    assert out["purged"] is True and out["applicant_ref"] is None and out["status"] == "failed"
