"""`idverify` end to end on real input, through the same entry point a user runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from api.cli import EXIT_INPUT, EXIT_OK, main

REPO = Path(__file__).resolve().parents[2]
IDVERIFY = REPO / ".venv" / "bin" / "idverify"


def run_cli(capsys, *argv: str) -> tuple[int, dict | None, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == EXIT_OK and out.strip().startswith("{") else None), err


@pytest.fixture(scope="module")
def demo_cards(testdata, tmp_path_factory):
    from api.demo import build_demo_cards
    from face_match import FaceMatcher

    return build_demo_cards(testdata, tmp_path_factory.mktemp("demo"), FaceMatcher())


def test_models_command_lists_every_model_ok(capsys):
    assert main(["models"]) == EXIT_OK
    out = capsys.readouterr().out
    for name in ("yunet", "sface", "ocr_det", "ocr_rec", "ocr_cls", "face_mesh"):
        assert any(line.startswith("ok ") and f" {name} " in line for line in out.splitlines()), name


def test_same_person_is_approved(capsys, testdata, demo_cards):
    front, back = demo_cards["same_person"]
    code, doc, err = run_cli(
        capsys, "verify", "--video", str(testdata / "liveness/liveportrait_d18.mp4"),
        "--challenge", "open_mouth,blink", "--id-front", str(front), "--id-back", str(back),
    )
    assert code == EXIT_OK, err
    assert doc["decision"] == "approved", doc["reasons"]
    assert doc["stages"]["liveness"]["passed"] is True
    assert doc["stages"]["face_match"]["passed"] is True
    # PII masked by default
    assert "*" in doc["fields"]["id_number"] and "*" in doc["fields"]["name"]


def test_other_person_is_rejected_for_face_mismatch(capsys, testdata, demo_cards):
    front, back = demo_cards["other_person"]
    code, doc, err = run_cli(
        capsys, "verify", "--video", str(testdata / "liveness/liveportrait_d18.mp4"),
        "--challenge", "open_mouth,blink", "--id-front", str(front), "--id-back", str(back),
    )
    assert code == EXIT_OK, err
    assert doc["decision"] == "rejected"
    assert "face.mismatch" in doc["reasons"]


def test_specimen_card_reports_wrong_check_digit_and_birth_date_mismatch(capsys, testdata):
    code, doc, err = run_cli(
        capsys, "verify", "--video", str(testdata / "liveness/liveportrait_d18.mp4"),
        "--challenge", "open_mouth,blink",
        "--id-front", str(testdata / "idcards/chineseocr_idcard-demo_upside_down.jpeg"),
    )
    assert code == EXIT_OK, err
    assert "idcard.checksum_invalid" in doc["reasons"]
    assert "idcard.birth_date_mismatch" in doc["reasons"]
    assert doc["decision"] != "approved"


def test_challenge_with_an_action_the_clip_lacks_is_not_approved(capsys, testdata, demo_cards):
    front, back = demo_cards["same_person"]
    code, doc, err = run_cli(
        capsys, "verify", "--video", str(testdata / "liveness/liveportrait_d18.mp4"),
        "--challenge", "turn_left,blink", "--id-front", str(front), "--id-back", str(back),
    )
    assert code == EXIT_OK, err
    assert doc["decision"] != "approved"
    assert "liveness.action_missing" in doc["reasons"]


def test_no_face_in_capture_is_a_clear_error(capsys, tmp_path, demo_cards):
    video = tmp_path / "wall.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 15, (320, 240))
    rng = np.random.default_rng(0)
    for _ in range(45):  # 3 s of a textured wall, no face
        writer.write(cv2.GaussianBlur(rng.integers(60, 200, (240, 320, 3), dtype=np.uint8), (9, 9), 0))
    writer.release()
    front, back = demo_cards["same_person"]
    code, doc, err = run_cli(capsys, "verify", "--video", str(video), "--challenge", "blink,open_mouth",
                             "--id-front", str(front), "--id-back", str(back))
    assert code == EXIT_INPUT
    assert err.count("\n") == 1 and "liveness.no_face" in err


@pytest.mark.parametrize(
    "make, code_expected",
    [
        (lambda p: p.write_bytes(b""), "input.empty"),
        (lambda p: p.write_bytes(b"this is not an image at all" * 10), "input.wrong_type"),
        (lambda p: p.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64), "input.unreadable"),
    ],
    ids=["empty", "text", "truncated-jpeg"],
)
def test_bad_card_file_is_a_clear_error(capsys, tmp_path, testdata, make, code_expected):
    bad = tmp_path / "front.jpg"
    make(bad)
    code, _, err = run_cli(capsys, "verify", "--video", str(testdata / "liveness/dinoman_blink_example.mp4"),
                           "--challenge", "blink", "--id-front", str(bad))
    assert code == EXIT_INPUT
    assert code_expected in err and "Traceback" not in err


def test_missing_file_is_a_clear_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, "verify", "--video", str(tmp_path / "nope.mp4"), "--challenge", "blink",
                           "--id-front", str(tmp_path / "nope.jpg"))
    assert code == EXIT_INPUT and err.startswith("idverify: input.missing")


def test_not_a_video_is_a_clear_error(capsys, tmp_path, testdata):
    fake = tmp_path / "capture.mp4"
    shutil.copyfile(testdata / "faces/img1.jpg", fake)  # a JPEG renamed .mp4
    code, _, err = run_cli(capsys, "verify", "--video", str(fake), "--challenge", "blink",
                           "--id-front", str(testdata / "idcards/chineseocr_idcard-demo_rotated180_upright.png"))
    assert code == EXIT_INPUT and ("liveness." in err or "input." in err)


def test_folder_as_video_and_file_as_frames_are_clear_errors(capsys, tmp_path, testdata):
    front = str(testdata / "idcards/chineseocr_idcard-demo_rotated180_upright.png")
    code, _, err = run_cli(capsys, "verify", "--video", str(tmp_path), "--challenge", "blink", "--id-front", front)
    assert code == EXIT_INPUT and err.startswith("idverify: input.wrong_type") and "is a folder" in err
    code, _, err = run_cli(capsys, "verify", "--frames", front, "--challenge", "blink", "--id-front", front)
    assert code == EXIT_INPUT and err.startswith("idverify: input.wrong_type") and "is a file" in err


@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare(1) not available")
def test_verify_runs_with_the_network_cut(testdata, demo_cards):
    """Nothing is downloaded at run time: the whole pipeline runs in a network namespace with no links."""
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("this machine does not allow network namespaces")
    front, back = demo_cards["same_person"]
    proc = subprocess.run(
        ["unshare", "-n", str(IDVERIFY), "verify", "--video", str(testdata / "liveness/liveportrait_d18.mp4"),
         "--challenge", "open_mouth,blink", "--id-front", str(front), "--id-back", str(back)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == EXIT_OK, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["decision"] == "approved"


def test_keys_and_reviewers_commands(capsys, tmp_path, monkeypatch):
    from api.auth import authenticate
    from api.settings import get_settings
    from review_queue.db import unit_of_work
    from review_queue.service import ReviewService

    monkeypatch.setenv("IDV_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        assert main(["keys", "create", "--name", "lender-app", "--scopes", "verifications:write,pii:read"]) == EXIT_OK
        created = json.loads(capsys.readouterr().out)
        assert created["api_key"].startswith("idv_")
        assert main(["keys", "create", "--name", "x", "--scopes", "root"]) == EXIT_INPUT
        monkeypatch.setenv("IDV_NEW_PASSWORD", "long-enough-pw")
        assert main(["reviewers", "add", "carol", "--role", "supervisor"]) == EXIT_OK
        monkeypatch.setenv("IDV_NEW_PASSWORD", "short")
        assert main(["reviewers", "add", "dave"]) == EXIT_INPUT  # clear error, no traceback
        from api.cli import _session_factory

        with unit_of_work(_session_factory()) as s:
            principal = authenticate(s, created["api_key"], dev_key=None)
            assert principal.client_id == "lender-app" and "pii:read" in principal.scopes
            assert ReviewService(s).authenticate(username="carol", password="long-enough-pw").role == "supervisor"
        assert main(["keys", "revoke", created["key_id"]]) == EXIT_OK
        with unit_of_work(_session_factory()) as s, pytest.raises(Exception):
            authenticate(s, created["api_key"], dev_key=None)
    finally:
        get_settings.cache_clear()


def test_first_start_creates_the_admin_supervisor(tmp_path):
    from api.app import ensure_admin
    from api.settings import Settings
    from review_queue.db import make_engine, make_session_factory, migrate, unit_of_work
    from review_queue.service import ReviewService

    settings = Settings(data_dir=tmp_path)
    migrate(settings.effective_database_url)
    factory = make_session_factory(make_engine(settings.effective_database_url))
    ensure_admin(factory, settings)
    ensure_admin(factory, settings)  # idempotent
    with unit_of_work(factory) as s:
        admin = ReviewService(s).authenticate(username="admin", password=settings.effective_admin_password)
        assert admin.role == "supervisor"


@pytest.mark.parametrize("allow, trusted", [("", False), ("127.0.0.1", True)])
def test_serve_trusts_forwarded_headers_only_from_configured_proxies(monkeypatch, allow, trusted):
    """X-Forwarded-For from an untrusted peer would let a client choose its own address and
    sidestep the reviewer login throttle; uvicorn trusts 127.0.0.1 unless told otherwise."""
    import uvicorn

    from api.settings import get_settings

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    monkeypatch.setenv("IDV_FORWARDED_ALLOW_IPS", allow)
    get_settings.cache_clear()
    try:
        assert main(["serve", "--port", "8799"]) == EXIT_OK
    finally:
        get_settings.cache_clear()
    assert seen["proxy_headers"] is trusted and seen["forwarded_allow_ips"] == (allow or None)
    from api.http_protocol import JsonErrorH11Protocol

    assert seen["http"] is JsonErrorH11Protocol  # malformed requests answered in the JSON error shape


def test_operator_mistakes_are_one_line_errors_not_tracebacks(tmp_path, testdata, capsys, monkeypatch):
    """Found by a trial session: a policy that is a device, not UTF-8, a folder or invalid; bad
    settings; a repeated challenged action. Each is one line with a reason code and exit 2."""
    from api.settings import get_settings

    garbage = tmp_path / "garbage.toml"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    bad = tmp_path / "bad.toml"
    bad.write_text('version = "1"\n[severity]\n"nope.code" = "weird"\n')
    verify = ["verify", "--video", str(testdata / "liveness/dinoman_blink_example.mp4"), "--id-front",
              str(testdata / "idcards/chineseocr_idcard-demo_upside_down.jpeg")]
    cases = [
        (verify + ["--challenge", "blink", "--policy", "/dev/zero"], "review.policy_invalid", "regular file"),
        (verify + ["--challenge", "blink", "--policy", str(garbage)], "review.policy_invalid", "UTF-8"),
        (verify + ["--challenge", "blink", "--policy", str(tmp_path)], "review.policy_invalid", "folder"),
        (verify + ["--challenge", "blink", "--policy", str(bad)], "review.policy_invalid", "severity"),
        (verify + ["--challenge", "blink,blink,blink"], "liveness.challenge_invalid", "distinct"),
    ]
    for argv, code, words in cases:
        assert main(argv) == EXIT_INPUT, argv
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"idverify: {code}: " in err and words in err, err
        assert "http" not in err  # not pydantic's text with its link
    monkeypatch.setenv("IDV_PORT", "abc")
    get_settings.cache_clear()
    try:
        assert main(["serve"]) == EXIT_INPUT
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err.strip()
    assert err.startswith("idverify: config.invalid: IDV_PORT: ") and err.count("\n") == 0
    with pytest.raises(SystemExit) as e:  # argparse's own usage error, before anything starts
        main(["serve", "--port", "99999"])
    assert e.value.code == 2


def test_serve_that_cannot_bind_says_so_without_the_models_exit_code(monkeypatch, capsys):
    import uvicorn

    def refuse(*a, **kw):
        raise SystemExit(3)  # what uvicorn does when the port is taken

    monkeypatch.setattr(uvicorn, "run", refuse)
    assert main(["serve", "--port", "8799"]) == 1  # not EXIT_MODELS (3): no model is at fault
    assert "server.start_failed" in capsys.readouterr().err


def test_reviewers_add_refuses_duplicates_odd_names_and_no_password(tmp_path, monkeypatch, capsys):
    from api.settings import get_settings

    monkeypatch.setenv("IDV_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("IDV_NEW_PASSWORD", "pw-bob-123456")
    get_settings.cache_clear()
    try:
        assert main(["reviewers", "add", "bob"]) == EXIT_OK
        capsys.readouterr()
        assert main(["reviewers", "add", "bob"]) == EXIT_INPUT
        err = capsys.readouterr().err
        assert "resource.conflict" in err and "already exists" in err and "argon2" not in err
        assert main(["reviewers", "add", "evil<script>\x1b[31m"]) == EXIT_INPUT
        assert "input.invalid" in capsys.readouterr().err
        monkeypatch.delenv("IDV_NEW_PASSWORD")
        monkeypatch.setattr("sys.stdin", open(os.devnull))  # no terminal, no password
        assert main(["reviewers", "add", "carol"]) == EXIT_INPUT
        assert "IDV_NEW_PASSWORD" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()


def test_keys_create_refuses_a_webhook_url_that_is_not_an_http_target(tmp_path, monkeypatch, capsys):
    from api.settings import get_settings

    monkeypatch.setenv("IDV_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        for url in ("file:///etc/passwd", "http://169.254.169.254/latest"):
            assert main(["keys", "create", "--name", "y", "--webhook-url", url]) == EXIT_INPUT
            assert "input.invalid: webhook URL" in capsys.readouterr().err
        assert main(["keys", "create", "--name", "y", "--webhook-url", "https://lender.example/hooks"]) == EXIT_OK
        monkeypatch.setenv("IDV_WEBHOOK_URL", "file:///etc/passwd")
        get_settings.cache_clear()
        assert main(["serve"]) == EXIT_INPUT
        assert "config.invalid" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
