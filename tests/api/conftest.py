"""The API through the real app: built ONCE per session (models load once), real models, real clips
from shared/data, cards rendered with ocr.synthetic, a local webhook receiver on 127.0.0.1."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

DEMO_CLIP = "liveness/liveportrait_d18.mp4"
DEMO_ACTIONS = "open_mouth,blink"  # the actions the clip performs, in this order
WEBHOOK_SECRET = "test-webhook-secret-0123456789"


class WebhookReceiver:
    """A tiny HTTP server on 127.0.0.1 recording every POST (headers + exact body bytes)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.event = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.event:
                    outer.received.append(({k: v for k, v in self.headers.items()}, body))
                    outer.event.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/idverify"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, verification_id: str, timeout_s: float = 30.0) -> tuple[dict[str, str], bytes]:
        with self.event:
            ok = self.event.wait_for(
                lambda: any(json.loads(b).get("verification_id") == verification_id for _, b in self.received),
                timeout=timeout_s,
            )
            assert ok, f"no webhook for {verification_id} within {timeout_s}s"
            return next((h, b) for h, b in self.received if json.loads(b).get("verification_id") == verification_id)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class ApiEnv:
    client: Any  # fastapi.testclient.TestClient
    ctx: Any  # api.routes_common.ApiContext
    keys: dict[str, str]
    receiver: WebhookReceiver
    data_dir: Path
    files: dict[str, bytes] = field(default_factory=dict)

    def auth(self, who: str = "a") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def challenge(self, client_id: str = "app_a", actions: str = DEMO_ACTIONS, *, expired: bool = False) -> str:
        """A stored challenge with the actions a real clip performs (the endpoint itself draws random ones)."""
        from api.db import ChallengeRecord, unit_of_work, utcnow
        from liveness.challenge import issue_challenge

        ch = issue_challenge()
        now = utcnow()
        with unit_of_work(self.ctx.session_factory) as s:
            s.add(ChallengeRecord(
                id=ch.id, client_id=client_id, nonce=ch.nonce, actions=actions, issued_at=now - timedelta(seconds=1),
                expires_at=now + (timedelta(seconds=-1) if expired else timedelta(seconds=120)),
            ))
        return ch.id


def _encode(img: np.ndarray, ext: str = ".jpg") -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def _dark_clip(src: Path, out: Path, factor: float = 0.12) -> bytes:
    """The demo clip at 12 % brightness: a poor capture (too dark to judge the actions)."""
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    writer = None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if writer is None:
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frame.shape[1], frame.shape[0]))
        writer.write((frame * factor).astype(np.uint8))
    cap.release()
    assert writer is not None
    writer.release()
    return out.read_bytes()


@pytest.fixture(scope="session")
def api(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.auth import ALL_SCOPES, DEFAULT_SCOPES, SCOPE_READ, create_api_key
    from api.db import unit_of_work
    from api.demo import build_demo_cards
    from api.pipeline import build_engines
    from api.settings import Settings

    data_dir = tmp_path_factory.mktemp("idv-api")
    receiver = WebhookReceiver()
    settings = Settings(
        data_dir=data_dir, webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET, rate_limit_per_minute=0,
        testdata=testdata,
    )
    engines = build_engines(settings)
    app = create_app(settings, engines=engines)
    ctx = app.state.ctx
    keys: dict[str, str] = {}
    with unit_of_work(ctx.session_factory) as s:
        keys["a"] = create_api_key(s, "app_a", DEFAULT_SCOPES)[1]
        keys["a_pii"] = create_api_key(s, "app_a_pii", ALL_SCOPES, client_id="app_a")[1]
        keys["a_ro"] = create_api_key(s, "app_a_ro", [SCOPE_READ], client_id="app_a")[1]
        keys["b"] = create_api_key(s, "app_b", DEFAULT_SCOPES)[1]
    cards = build_demo_cards(testdata, data_dir / "cards", engines.matcher)
    files = {
        "clip": (testdata / DEMO_CLIP).read_bytes(),
        "dark_clip": _dark_clip(testdata / DEMO_CLIP, data_dir / "dark.mp4"),
        "front": cards["same_person"][0].read_bytes(),
        "back": cards["same_person"][1].read_bytes(),
        "other_front": cards["other_person"][0].read_bytes(),
        "other_back": cards["other_person"][1].read_bytes(),
    }
    with TestClient(app, raise_server_exceptions=False) as client:
        yield ApiEnv(client=client, ctx=ctx, keys=keys, receiver=receiver, data_dir=data_dir, files=files)
    receiver.close()


def verify_files(env: ApiEnv, *, clip: str = "clip", front: str = "front", back: str = "back") -> dict[str, Any]:
    return {
        "capture": ("capture.mp4", env.files[clip], "video/mp4"),
        "id_front": ("front.png", env.files[front], "image/png"),
        "id_back": ("back.png", env.files[back], "image/png"),
    }


def zip_bytes(entries: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()
