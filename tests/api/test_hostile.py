"""Hostile input: every one ends in the right 4xx in the one error shape, no crash, no stack trace."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from .conftest import ApiEnv, verify_files, zip_bytes


def _shape(r) -> dict:
    body = r.json()
    assert set(body) == {"type", "detail", "verification_id"}, body
    assert "Traceback" not in r.text and 'File "' not in r.text
    return body


def _post(env: ApiEnv, files: dict, data: dict | None = None, who: str = "a", **kw):
    data = {"challenge_id": env.challenge(), **(data or {})}
    return env.client.post("/v1/verifications", headers=env.auth(who), data=data, files=files, **kw)


@pytest.mark.parametrize("header, code", [
    ({}, "auth.missing"),
    ({"Authorization": "Bearer nope"}, "auth.invalid"),
    ({"Authorization": "Bearer idv_0123456789abcdef_" + "x" * 43}, "auth.invalid"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "auth.missing"),
])
def test_missing_or_wrong_key_is_401(api: ApiEnv, header: dict, code: str) -> None:
    r = api.client.post("/v1/challenges", headers=header)
    assert r.status_code == 401 and _shape(r)["type"] == code


def test_scope_enforced(api: ApiEnv) -> None:
    r = api.client.post("/v1/challenges", headers=api.auth("a_ro"))
    assert r.status_code == 403 and _shape(r)["type"] == "auth.forbidden"


def test_other_clients_id_is_404(api: ApiEnv) -> None:
    r = _post(api, {**verify_files(api), "id_front": ("x.jpg", b"\xff\xd8\xff" + b"\0" * 100, "image/jpeg")})
    vid = _shape(r)["verification_id"]
    assert vid
    for method in ("get", "delete"):
        r = getattr(api.client, method)(f"/v1/verifications/{vid}", headers=api.auth("b"))
        assert r.status_code == 404 and _shape(r)["type"] == "resource.not_found"
    assert api.client.get(f"/v1/verifications/{vid}", headers=api.auth("a")).status_code == 200


def test_challenge_endpoint_single_use_expiry_and_client_binding(api: ApiEnv) -> None:
    r = api.client.post("/v1/challenges", headers=api.auth("a"))
    assert r.status_code == 201
    ch = r.json()
    assert 2 <= len(ch["actions"]) <= 3 and len(set(ch["actions"])) == len(ch["actions"])
    bad = {**verify_files(api), "id_front": ("x.jpg", b"\xff\xd8\xff" + b"\0" * 100, "image/jpeg")}
    # another client cannot use it
    r = api.client.post("/v1/verifications", headers=api.auth("b"), data={"challenge_id": ch["challenge_id"]}, files=bad)
    assert r.status_code == 422 and _shape(r)["type"] == "liveness.challenge_unknown"
    # first use consumes it (even though the upload is then unusable), the second is refused
    r = api.client.post("/v1/verifications", headers=api.auth("a"), data={"challenge_id": ch["challenge_id"]}, files=bad)
    assert r.status_code == 422 and _shape(r)["type"] == "input.unreadable"
    r = api.client.post("/v1/verifications", headers=api.auth("a"), data={"challenge_id": ch["challenge_id"]}, files=bad)
    assert r.status_code == 409 and _shape(r)["type"] == "liveness.challenge_used"
    expired = api.challenge(expired=True)
    r = api.client.post("/v1/verifications", headers=api.auth("a"), data={"challenge_id": expired}, files=bad)
    assert r.status_code == 410 and _shape(r)["type"] == "liveness.challenge_expired"
    r = api.client.post("/v1/verifications", headers=api.auth("a"), data={"challenge_id": "made-up"}, files=bad)
    assert r.status_code == 422 and _shape(r)["type"] == "liveness.challenge_unknown"


def test_declared_2gb_upload_refused_before_reading(api: ApiEnv) -> None:
    def body():
        yield b"--x\r\n"
        raise AssertionError("the body must not be read")

    h = {**api.auth("a"), "Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(2 * 1024**3)}
    r = api.client.post("/v1/verifications", headers=h, content=body())
    assert r.status_code == 413 and _shape(r)["type"] == "input.too_large"


def test_streamed_oversize_refused_while_streaming(api: ApiEnv) -> None:
    from api.app import max_request_bytes

    limit = max_request_bytes(api.ctx.settings)
    sent = 0

    def body():
        nonlocal sent
        yield b'--x\r\nContent-Disposition: form-data; name="capture"; filename="c.mp4"\r\n\r\n'
        chunk = b"\0" * (1 << 20)
        while sent <= limit + (4 << 20):
            sent += len(chunk)
            yield chunk

    h = {**api.auth("a"), "Content-Type": "multipart/form-data; boundary=x"}
    r = api.client.post("/v1/verifications", headers=h, content=body())
    assert r.status_code == 413 and _shape(r)["type"] == "input.too_large"


def test_one_file_over_its_limit_is_413(api: ApiEnv) -> None:
    big = b"\xff\xd8\xff" + b"\0" * (api.ctx.settings.max_image_bytes + 10)
    r = _post(api, {**verify_files(api), "id_back": ("b.jpg", big, "image/jpeg")})
    assert r.status_code == 413 and _shape(r)["type"] == "input.too_large"


def test_zip_bomb(api: ApiEnv) -> None:
    bomb = zip_bytes({f"{i:03d}.jpg": b"\0" * (64 << 20) for i in range(5)})  # 320 MB inflated, ~300 KB
    assert len(bomb) < 2 << 20
    r = _post(api, {**verify_files(api), "capture": ("frames.zip", bomb, "application/zip")})
    assert r.status_code == 413 and _shape(r)["type"] == "input.too_large"


def test_image_bomb(api: ApiEnv) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (20000, 20000)).save(buf, format="PNG")  # 400 MP of zeros, a few hundred KB
    r = _post(api, {**verify_files(api), "id_front": ("f.png", buf.getvalue(), "image/png")})
    assert r.status_code == 413 and _shape(r)["type"] == "input.too_many_pixels"


def test_huge_frame_count_video(api: ApiEnv, tmp_path: Path) -> None:
    n = api.ctx.settings.max_video_frames + 500
    p = tmp_path / "long.mp4"
    w = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"mp4v"), 100.0, (32, 32))
    frame = np.zeros((32, 32, 3), np.uint8)
    for _ in range(n):
        w.write(frame)
    w.release()
    r = _post(api, {**verify_files(api), "capture": ("c.mp4", p.read_bytes(), "video/mp4")})
    assert r.status_code in (413, 422), r.text
    assert _shape(r)["type"] in ("liveness.too_long", "input.too_large")


def test_many_frames_zip(api: ApiEnv) -> None:
    ok, jpg = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    z = zip_bytes({f"{i:05d}.jpg": jpg.tobytes() for i in range(api.ctx.settings.max_video_frames + 1)},
                  compression=zipfile.ZIP_STORED)
    r = _post(api, {**verify_files(api), "capture": ("f.zip", z, "application/zip")})
    assert r.status_code in (413, 422) and _shape(r)["type"] in ("liveness.too_long", "input.too_large")


@pytest.mark.parametrize("field, payload", [
    ("id_front", b"%PDF-1.4\n<script>alert(1)</script>\xff\xd8\xff"),  # PDF/HTML/JPEG polyglot: not an image by content
    ("id_front", b"GIF89a/*" + b"\0" * 64 + b"*/=alert(1)"),  # GIF/JS polyglot
    ("capture", b"\xff\xd8\xff\xe0" + b"\0" * 64),  # a JPEG sent as the video
    ("capture", b"<html><body>not a video</body></html>"),
])
def test_wrong_type_by_content(api: ApiEnv, field: str, payload: bytes) -> None:
    r = _post(api, {**verify_files(api), field: ("innocent.mp4" if field == "capture" else "innocent.jpg", payload,
                                                 "video/mp4" if field == "capture" else "image/jpeg")})
    assert r.status_code == 422 and _shape(r)["type"] == "input.wrong_type"


def test_jpeg_zip_polyglot_capture_is_not_read_as_zip(api: ApiEnv) -> None:
    ok, jpg = cv2.imencode(".jpg", np.zeros((32, 32, 3), np.uint8))
    poly = jpg.tobytes() + zip_bytes({"../../etc/x.jpg": jpg.tobytes()})
    r = _post(api, {**verify_files(api), "capture": ("c.zip", poly, "application/zip")})
    assert r.status_code == 422 and _shape(r)["type"] == "input.wrong_type"


def test_path_traversal_names_are_never_used(api: ApiEnv) -> None:
    target = api.data_dir.parent / "evil_traversal.jpg"
    ok, jpg = cv2.imencode(".jpg", np.zeros((32, 32, 3), np.uint8))
    names = ["../../../../" + str(target).lstrip("/"), "..\\..\\evil.jpg", "/etc/passwd", "a\x00b.jpg"]
    for name in names:
        files = {**verify_files(api), "id_front": (name, b"\xff\xd8\xff" + b"\0" * 50, "image/jpeg")}
        r = _post(api, files)
        assert r.status_code == 422, r.text
        _shape(r)
    zipped = zip_bytes({"../../../../" + str(target).lstrip("/"): jpg.tobytes(), "../x.jpg": jpg.tobytes()})
    r = _post(api, {**verify_files(api), "capture": ("../../c.zip", zipped, "application/zip")})
    assert r.status_code < 500
    assert not target.exists()


@pytest.mark.parametrize("content, ctype", [
    (b"--x\r\nContent-Disposition: form-data; name=\"id_front\"; filename=\"a\"\r\n\r\nabc", "multipart/form-data; boundary=x"),
    (b"garbage without boundary", "multipart/form-data"),
    (b"\x00\x01\x02", "multipart/form-data; boundary=" + "b" * 5000),
    (b'{"id_front": "x"}', "application/json"),
])
def test_malformed_multipart(api: ApiEnv, content: bytes, ctype: str) -> None:
    r = api.client.post("/v1/verifications", headers={**api.auth("a"), "Content-Type": ctype}, content=content)
    assert 400 <= r.status_code < 500, r.text
    _shape(r)


def test_declared_fields_bounded(api: ApiEnv) -> None:
    r = _post(api, verify_files(api), data={"declared_name": "张" * 500})
    assert r.status_code == 422 and _shape(r)["type"] == "input.invalid"
    assert "张张" not in r.text  # the value is never echoed back


def test_long_thin_image_is_refused_before_it_reaches_storage(api: ApiEnv) -> None:
    """70000 x 20: 1.4 MP (under the pixel limit) but wider than JPEG can store; once a 500 that
    left the verification 'processing' for good."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (70000, 20), 128).save(buf, format="PNG")
    r = _post(api, {**verify_files(api), "id_front": ("f.png", buf.getvalue(), "image/png")})
    assert r.status_code == 413 and _shape(r)["type"] == "input.too_many_pixels"
    assert "70000x20" in r.json()["detail"]


def test_failure_while_storing_evidence_ends_failed_with_nothing_left(api: ApiEnv, monkeypatch) -> None:
    """Fault injection: the encrypted store fails after its first image. The caller gets a 500 in
    the error shape naming the verification; the row is failed (not stuck 'processing'), can be
    deleted, and no ciphertext of it stays on disk."""
    store_dir = api.ctx.evidence.store.directory
    before = {p for p in store_dir.rglob("*") if p.is_file()}
    real_put = api.ctx.evidence.put_image
    calls = []

    def failing_put(img):
        calls.append(1)
        if len(calls) > 1:
            raise OSError("disk full")
        return real_put(img)

    monkeypatch.setattr(api.ctx.evidence, "put_image", failing_put)
    r = _post(api, verify_files(api))
    body = _shape(r)
    assert r.status_code == 500 and body["type"] == "server.internal_error" and body["verification_id"]
    assert "disk full" not in r.text
    monkeypatch.undo()
    vid = body["verification_id"]
    got = api.client.get(f"/v1/verifications/{vid}", headers=api.auth())
    assert got.status_code == 200 and got.json()["status"] == "failed", got.json()
    assert {p for p in store_dir.rglob("*") if p.is_file()} == before
    assert api.client.delete(f"/v1/verifications/{vid}", headers=api.auth()).status_code == 204


def test_unexpected_exception_is_contained_without_traceback_or_input(api: ApiEnv, monkeypatch, caplog) -> None:
    """Fault injection: a bug raising with an applicant's data in its message. The answer is the
    one-shape 500; the exception goes no further than the app (the server would print its whole
    traceback), and no log line carries the message."""
    import logging

    from fastapi.testclient import TestClient

    from api import routes_challenges

    def broken(**_kw):
        raise ValueError("张三 11010519491231002X")

    monkeypatch.setattr(routes_challenges, "issue_challenge", broken)
    caplog.set_level(logging.DEBUG)
    client = TestClient(api.client.app, raise_server_exceptions=True)  # would raise if it escaped
    r = client.post("/v1/challenges", headers=api.auth())
    assert r.status_code == 500 and _shape(r)["type"] == "server.internal_error"
    logged = "\n".join(rec.getMessage() + (str(rec.exc_info) if rec.exc_info else "") for rec in caplog.records)
    assert "ValueError" in logged and "张三" not in logged and "11010519491231002X" not in logged


def test_absent_required_part_is_input_missing(api: ApiEnv) -> None:
    files = verify_files(api)
    del files["id_front"]
    r = _post(api, files)
    body = _shape(r)
    assert r.status_code == 422 and body["type"] == "input.missing" and "id_front" in body["detail"]


@pytest.mark.parametrize("field, value", [
    ("declared_name", b"\xff\xfe\xc3\x28"),  # not UTF-8
    ("declared_name", "张\x00三".encode()),
    ("declared_name", b"   "),
    ("declared_id_number", b"11010519491231002"),  # 17 characters
    ("declared_id_number", b"1101051949123100ZX"),
])
def test_declared_fields_must_be_text_of_their_form(api: ApiEnv, field: str, value: bytes) -> None:
    """Raw multipart parts, so undecodable bytes reach the server as sent."""
    import uuid

    boundary = uuid.uuid4().hex
    parts = {"challenge_id": api.challenge().encode(), field: value}
    body = b""
    for k, v in parts.items():
        body += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n".encode() + v + b"\r\n"
    for name, (fname, data, ctype) in verify_files(api).items():
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{fname}\"\r\n"
                 f"Content-Type: {ctype}\r\n\r\n").encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    r = api.client.post("/v1/verifications", headers={**api.auth(), "Content-Type": f"multipart/form-data; boundary={boundary}"},
                        content=body)
    assert r.status_code == 422 and _shape(r)["type"] == "input.invalid", r.text


def test_fixed_challenge_actions_only_in_development(api: ApiEnv, monkeypatch) -> None:
    r = api.client.post("/v1/challenges?actions=open_mouth,blink", headers=api.auth("a"))
    assert r.status_code == 201 and r.json()["actions"] == ["open_mouth", "blink"]
    for bad in ("open_mouth,open_mouth", "fly", "blink,open_mouth,turn_left,turn_right"):
        r = api.client.post(f"/v1/challenges?actions={bad}", headers=api.auth("a"))
        assert r.status_code == 422 and _shape(r)["type"] == "liveness.challenge_invalid", bad
    r = api.client.post("/v1/challenges?actions=blink&actions=open_mouth", headers=api.auth("a"))
    assert r.status_code == 422 and _shape(r)["type"] == "liveness.challenge_invalid"
    monkeypatch.setattr(api.ctx, "settings", api.ctx.settings.model_copy(update={"mode": "production"}))
    r = api.client.post("/v1/challenges?actions=blink", headers=api.auth("a"))
    assert r.status_code == 403 and _shape(r)["type"] == "auth.forbidden"
    assert api.client.post("/v1/challenges", headers=api.auth("a")).status_code == 201


def test_a_part_sent_twice_is_refused(api: ApiEnv) -> None:
    files = verify_files(api)
    parts = [(k, v) for k, v in files.items()] + [("capture", files["capture"])]
    r = api.client.post("/v1/verifications", headers=api.auth("a"), data={"challenge_id": api.challenge()}, files=parts)
    body = _shape(r)
    assert r.status_code == 422 and body["type"] == "input.invalid" and "capture" in body["detail"]


def test_two_idempotency_keys_are_refused_and_the_challenge_stays_unused(api: ApiEnv) -> None:
    """Only the first of two headers used to be stored: a retry with the second got 409."""
    ch = api.challenge()
    headers = [*api.auth("a").items(), ("Idempotency-Key", "dup-a"), ("Idempotency-Key", "dup-b")]
    r = api.client.post("/v1/verifications", headers=headers, data={"challenge_id": ch}, files=verify_files(api))
    body = _shape(r)
    assert r.status_code == 422 and body["type"] == "input.invalid" and "Idempotency-Key" in body["detail"]
    again = api.client.post("/v1/verifications", headers={**api.auth("a"), "Idempotency-Key": "dup-a"},
                            data={"challenge_id": ch}, files=verify_files(api))
    assert again.status_code == 200, again.text  # the refused request did not consume the challenge
