"""API keys, scopes, the development key and the per-key rate limit (on a model-less app)."""

from __future__ import annotations

import pytest


def test_create_api_key_stores_only_a_hash(tmp_path) -> None:
    from api.app import build_context
    from api.auth import SCOPE_CREATE, authenticate, create_api_key, revoke_api_key
    from api.db import ApiKey, unit_of_work
    from api.settings import Settings
    from models.errors import IdvError

    ctx = build_context(Settings(data_dir=tmp_path))
    with unit_of_work(ctx.session_factory) as s:
        key_id, key = create_api_key(s, "lender", [SCOPE_CREATE])
    secret = key.rsplit("_", 1)[1]
    with ctx.session_factory() as s:
        row = s.get(ApiKey, key_id)
        assert secret not in row.secret_hash and key not in row.secret_hash
        p = authenticate(s, key, dev_key=None)
        assert p.client_id == "lender" and p.scopes == frozenset({SCOPE_CREATE})
        with pytest.raises(IdvError):
            authenticate(s, key[:-1] + ("A" if key[-1] != "A" else "B"), dev_key=None)
    with pytest.raises(ValueError):
        with unit_of_work(ctx.session_factory) as s:
            create_api_key(s, "lender", ["admin:everything"])
    with unit_of_work(ctx.session_factory) as s:
        assert revoke_api_key(s, key_id)
    with ctx.session_factory() as s, pytest.raises(IdvError):
        authenticate(s, key, dev_key=None)


def test_dev_key_never_reads_pii(tmp_path) -> None:
    from api.app import build_context
    from api.auth import DEV_API_KEY, SCOPE_CREATE, SCOPE_PII, authenticate
    from api.settings import Settings

    ctx = build_context(Settings(data_dir=tmp_path))
    with ctx.session_factory() as s:
        p = authenticate(s, DEV_API_KEY, dev_key=DEV_API_KEY)
    assert SCOPE_CREATE in p.scopes and SCOPE_PII not in p.scopes


def test_dev_key_only_in_development(tmp_path) -> None:
    from pydantic import ValidationError

    from api.auth import DEV_API_KEY
    from api.routes_common import dev_key_for
    from api.settings import Settings

    assert dev_key_for(Settings(data_dir=tmp_path)) == DEV_API_KEY
    prod = dict(mode="production", encryption_key="A" * 43 + "=", admin_password="s3cret-admin", data_dir=tmp_path)
    assert dev_key_for(Settings(**prod)) is None
    with pytest.raises(ValidationError):
        Settings(**prod, dev_api_key="my-dev-key")


def test_rate_limit_per_key(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.auth import DEV_API_KEY
    from api.settings import Settings

    app = create_app(Settings(data_dir=tmp_path, rate_limit_per_minute=3), engines=object())
    c = TestClient(app)  # no lifespan: no models needed for challenges
    h = {"Authorization": f"Bearer {DEV_API_KEY}"}
    codes = [c.post("/v1/challenges", headers=h).status_code for _ in range(4)]
    assert codes == [201, 201, 201, 429]
    r = c.post("/v1/challenges", headers=h)
    assert r.json()["type"] == "rate.limited" and int(r.headers["Retry-After"]) >= 1


def test_not_ready_without_models(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.auth import DEV_API_KEY
    from api.settings import Settings

    c = TestClient(create_app(Settings(data_dir=tmp_path)))  # lifespan not run: models not loaded
    assert c.get("/healthz").status_code == 200
    r = c.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["database"] == "ok"
    r = c.post("/v1/verifications", headers={"Authorization": f"Bearer {DEV_API_KEY}"},
               data={"mode": "manual"}, files={"id_front": ("a.jpg", b"\xff\xd8\xff\0", "image/jpeg"),
                                               "selfie_with_card": ("b.jpg", b"\xff\xd8\xff\0", "image/jpeg")})
    assert r.status_code == 503 and r.json()["type"] == "server.not_ready"
