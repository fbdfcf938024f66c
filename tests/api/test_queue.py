"""IDV_QUEUE=celery through the real app and a REAL `idverify worker` subprocess on Redis: 202 +
Location, queued -> processing -> approved, idempotent retries, the broker message carries only the
id, and a worker SIGKILLed mid-job is restarted and the verification still completes exactly once.

Redis must be running on 127.0.0.1:6379 (the test fails, it never skips, when it is not)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .conftest import DEMO_ACTIONS, DEMO_CLIP, WEBHOOK_SECRET, WebhookReceiver

REDIS_DB = 11  # a database of its own on the local Redis
# a queue of this run's own: a worker left over from a killed run (or another run on the machine)
# listens on another name and cannot take this run's jobs
QUEUE = f"idv-test-{secrets.token_hex(4)}"
BROKER_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
VISIBILITY_TIMEOUT_S = 8  # how soon a killed worker's job is handed out again (Redis broker)
REPO = Path(__file__).resolve().parents[2]
FINAL = ("completed", "review", "failed")


@dataclass
class QueueEnv:
    client: Any
    ctx: Any
    key: str
    data_dir: Path
    files: dict[str, tuple[str, bytes, str]]
    receiver: WebhookReceiver
    worker_env: dict[str, str]
    redis: Any
    worker: subprocess.Popen | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def start_worker(self) -> None:
        assert self.worker is None
        log = open(self.data_dir / "worker.log", "ab")  # noqa: SIM115 - kept open for the process
        self.worker = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "idverify"), "worker", "--concurrency", "1"],
            env=self.worker_env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGKILL reaches the pool child too
        )

    def kill_worker(self, sig: int = signal.SIGKILL) -> None:
        if self.worker is None:
            return
        try:
            os.killpg(self.worker.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait(timeout=10)
        self.worker = None

    def challenge(self) -> str:
        from datetime import timedelta

        from api.db import ChallengeRecord, unit_of_work, utcnow
        from liveness.challenge import issue_challenge

        ch = issue_challenge()
        now = utcnow()
        with unit_of_work(self.ctx.session_factory) as s:
            s.add(ChallengeRecord(id=ch.id, client_id="app_q", nonce=ch.nonce, actions=DEMO_ACTIONS,
                                  issued_at=now - timedelta(seconds=1), expires_at=now + timedelta(seconds=120)))
        return ch.id

    def post(self, challenge_id: str, idem_key: str | None = None) -> Any:
        h = {**self.auth, **({"Idempotency-Key": idem_key} if idem_key else {})}
        return self.client.post("/v1/verifications", headers=h, files=self.files,
                                data={"challenge_id": challenge_id, "applicant_ref": "q-applicant-1"})

    def wait_status(self, vid: str, done: Callable[[dict], bool], timeout_s: float, what: str) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            body = self.client.get(f"/v1/verifications/{vid}", headers=self.auth).json()
            if done(body):
                return body
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: still {body.get('status')} after {timeout_s}s; worker log:\n{self.worker_log()}")
            time.sleep(0.1)

    def worker_log(self) -> str:
        p = self.data_dir / "worker.log"
        return p.read_text(errors="replace")[-4000:] if p.exists() else ""


@pytest.fixture(scope="module")
def qenv(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueueEnv]:
    import redis
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.auth import DEFAULT_SCOPES, create_api_key
    from api.db import unit_of_work
    from api.demo import build_demo_cards
    from api.pipeline import build_engines
    from api.settings import Settings

    r = redis.Redis.from_url(BROKER_URL, socket_connect_timeout=3)
    try:
        r.ping()
    except redis.exceptions.ConnectionError as e:
        pytest.fail(f"Redis at 127.0.0.1:6379 is not reachable: {e}", pytrace=False)
    data_dir = tmp_path_factory.mktemp("idv-queue")
    receiver = WebhookReceiver()
    common = {
        "IDV_QUEUE": "celery", "IDV_BROKER_URL": BROKER_URL, "IDV_BROKER_QUEUE": QUEUE, "IDV_DATA_DIR": str(data_dir),
        "IDV_BROKER_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
        "IDV_WEBHOOK_URL": receiver.url, "IDV_WEBHOOK_SECRET": WEBHOOK_SECRET, "IDV_TESTDATA": str(testdata),
    }
    settings = Settings(
        data_dir=data_dir, queue="celery", broker_url=BROKER_URL, broker_queue=QUEUE, broker_visibility_timeout_s=VISIBILITY_TIMEOUT_S,
        webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET, rate_limit_per_minute=0, testdata=testdata,
    )
    engines = build_engines(settings)
    app = create_app(settings, engines=engines)
    ctx = app.state.ctx
    with unit_of_work(ctx.session_factory) as s:
        key = create_api_key(s, "app_q", DEFAULT_SCOPES)[1]
    cards = build_demo_cards(testdata, data_dir / "cards", engines.matcher)
    files = {
        "capture": ("capture.mp4", (testdata / DEMO_CLIP).read_bytes(), "video/mp4"),
        "id_front": ("front.png", cards["same_person"][0].read_bytes(), "image/png"),
        "id_back": ("back.png", cards["same_person"][1].read_bytes(), "image/png"),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDV_")}
    env.update(common, PYTHONUNBUFFERED="1")
    with TestClient(app, raise_server_exceptions=False) as client:
        q = QueueEnv(client=client, ctx=ctx, key=key, data_dir=data_dir, files=files, receiver=receiver,
                     worker_env=env, redis=r)
        try:
            yield q
        finally:
            q.kill_worker(signal.SIGTERM)
            receiver.close()
            r.delete(QUEUE)


def _upload_objects(ctx: Any, vid: str) -> list[str]:
    from api.db import VerificationRecord

    with ctx.session_factory() as s:
        return [v for k, v in (s.get(VerificationRecord, vid).evidence or {}).items() if k.startswith("upload.")]


def _assert_decided_once(q: QueueEnv, vid: str) -> None:
    from sqlalchemy import func, select

    from review_queue.db import WebhookDelivery

    with q.ctx.session_factory() as s:
        n = s.scalar(select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.verification_id == vid))
    assert n == 1  # one decision, one outbox row: a redelivered job never decided it again
    q.ctx.webhooks.kick()
    q.receiver.wait_for(vid, timeout_s=30)
    time.sleep(0.5)
    assert sum(json.loads(b)["verification_id"] == vid for _, b in q.receiver.received) == 1


def test_queued_verification_202_location_then_approved(qenv: QueueEnv) -> None:
    q = qenv
    q.start_worker()
    ch = q.challenge()
    r = q.post(ch, idem_key="queue-happy-1")
    assert r.status_code == 202, r.text
    body = r.json()
    vid = body["id"]
    assert r.headers["Location"] == f"/v1/verifications/{vid}"
    assert body["status"] in ("queued", "processing") and body["decision"] is None
    # the upload waits encrypted in the store, listed on the row
    uploads = _upload_objects(q.ctx, vid)
    assert len(uploads) == 4 and all(q.ctx.evidence.store.exists(o) for o in uploads)  # 3 files + params
    assert (q.data_dir / "evidence").is_dir()
    # an idempotent retry while it waits: the same verification, still 202
    again = q.post(ch, idem_key="queue-happy-1")
    assert again.status_code in (200, 202) and again.json()["id"] == vid  # (200 only if it finished already)

    final = q.wait_status(vid, lambda b: b["status"] in FINAL, 120, "queued verification")
    assert final["status"] == "completed" and final["decision"] == "approved", final["reasons"]
    assert "*" in final["result"]["fields"]["name"]  # masked as in the inline mode
    # the retry now returns the final result; the raw uploads are gone from the store
    replay = q.post(ch, idem_key="queue-happy-1")
    assert replay.status_code == 200 and replay.json()["decision"] == "approved"
    assert not _upload_objects(q.ctx, vid) and not any(q.ctx.evidence.store.exists(o) for o in uploads)
    _assert_decided_once(q, vid)


def test_worker_killed_mid_job_is_restarted_and_the_job_completes_exactly_once(qenv: QueueEnv) -> None:
    q = qenv
    if q.worker is None:
        q.start_worker()
    vid = q.post(q.challenge()).json()["id"]
    q.wait_status(vid, lambda b: b["status"] == "processing", 90, "job start")
    q.kill_worker(signal.SIGKILL)  # the whole worker, pool process included, mid-job
    time.sleep(1.0)
    assert q.client.get(f"/v1/verifications/{vid}", headers=q.auth).json()["status"] == "processing"

    # accepted while no worker runs: the broker holds a message with the id and nothing else
    r2 = q.post(q.challenge())
    assert r2.status_code == 202
    vid2 = r2.json()["id"]
    raw = [m for m in q.redis.lrange(QUEUE, 0, -1)]
    msgs = [json.loads(m) for m in raw]
    mine = [m for m in msgs if m["headers"].get("task") == "idverify.run_verification"
            and json.loads(base64.b64decode(m["body"]))[0] == [vid2]]
    assert len(mine) == 1 and len(raw[msgs.index(mine[0])]) < 4096  # no image bytes, only the id
    args, kwargs, _ = json.loads(base64.b64decode(mine[0]["body"]))
    assert args == [vid2] and kwargs == {}
    assert b"q-applicant-1" not in raw[msgs.index(mine[0])]

    q.start_worker()
    for v in (vid, vid2):
        final = q.wait_status(v, lambda b: b["status"] in FINAL, 120, "job after the worker restart")
        assert final["status"] == "completed" and final["decision"] == "approved", final["reasons"]
        _assert_decided_once(q, v)
        assert not _upload_objects(q.ctx, v)
    q.kill_worker(signal.SIGTERM)


def test_sweep_requeues_a_verification_left_queued(qenv: QueueEnv) -> None:
    """A `queued` row whose message never reached the broker is sent again by the sweep."""
    from api.tasks import requeue_stale

    q = qenv
    vid = q.post(q.challenge()).json()["id"]
    q.redis.delete(QUEUE)  # the message is lost (e.g. a broker restart without persistence)
    assert q.client.get(f"/v1/verifications/{vid}", headers=q.auth).json()["status"] == "queued"
    assert requeue_stale(q.ctx, older_than_s=0) >= 1
    q.start_worker()
    final = q.wait_status(vid, lambda b: b["status"] in FINAL, 120, "requeued verification")
    assert final["status"] == "completed"
    _assert_decided_once(q, vid)
    q.kill_worker(signal.SIGTERM)

