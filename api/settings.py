"""The one root settings object (env prefix IDV_), validated at start.

Each module gets a plain config built from it; nothing else reads the environment. Outside
development mode it refuses insecure defaults (no encryption key, default admin password).
"""

from __future__ import annotations

import base64
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_REPO = Path(__file__).resolve().parent.parent
DEV_ENCRYPTION_KEY = base64.urlsafe_b64encode(b"idverify-development-only-key!!!"[:32]).decode()
DEV_ADMIN_PASSWORD = "idverify-dev"  # development mode only; production refuses it


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IDV_", env_file=None, extra="ignore")

    mode: Literal["development", "production"] = "development"
    data_dir: Path = _REPO / "var"
    database_url: str = ""  # empty = SQLite file in data_dir
    encryption_key: str = ""  # urlsafe base64 of 32 bytes (AES-256-GCM for stored images)
    admin_password: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)

    # real test data (shared/data) for tests and benchmarks; never copied into the repository
    testdata: Path = _REPO.parent / "shared" / "data"

    # decision
    policy_file: Path | None = None
    face_fmr: Literal["1e-2", "1e-3", "1e-4"] = "1e-3"
    holiday_file: Path | None = None

    # upload limits (enforced while streaming, before decoding)
    max_image_bytes: int = Field(default=15 * 1024 * 1024, ge=1024)
    max_video_bytes: int = Field(default=60 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=50_000_000, ge=256 * 256)
    # allow_inf_nan=False: "nan" would silently switch the limit off
    max_video_seconds: float = Field(default=30.0, gt=0, le=600, allow_inf_nan=False)
    max_video_frames: int = Field(default=2000, ge=3)

    # liveness
    challenge_ttl_s: int = Field(default=120, ge=10, le=3600)
    challenge_actions_min: int = Field(default=2, ge=1, le=4)
    challenge_actions_max: int = Field(default=3, ge=1, le=4)

    # retention of images and PII, in days (0 = keep until deleted)
    retention_days: int = Field(default=30, ge=0)

    # webhooks
    webhook_url: str = ""
    webhook_secret: str = ""

    # optional non-commercial insightface model directory (never the default); its thresholds come
    # from the pack's calibration file, or from face_threshold
    insightface_dir: Path | None = None
    # a cosine threshold that overrides the calibrated one for face_fmr (None = calibrated)
    face_threshold: float | None = Field(default=None, ge=-1.0, le=1.0, allow_inf_nan=False)

    threads_per_model: int = Field(default=1, ge=1)

    # HTTP API (api/app.py)
    dev_api_key: str = ""  # development only; empty = api.auth.DEV_API_KEY; refused in production
    rate_limit_per_minute: int = Field(default=120, ge=0)  # per API key, per worker process; 0 = off
    inference_concurrency: int = Field(default=0, ge=0)  # verifications run at once per worker; 0 = cores
    # addresses of reverse proxies whose X-Forwarded-For/-Proto are believed (comma-separated, e.g.
    # "127.0.0.1"); empty = none. Trusting them by default would let any client on the host pick
    # its own address and sidestep the per-address login throttle
    forwarded_allow_ips: str = Field(default="", max_length=1024)

    # verification jobs (api/tasks.py): "inline" runs them in the API process (embedded mode);
    # "celery" stores the upload, answers 202 and lets `idverify worker` processes run them
    queue: Literal["inline", "celery"] = "inline"
    broker_url: str = ""  # e.g. redis://127.0.0.1:6379/0 or amqp://guest:guest@127.0.0.1:5672//
    # Redis broker: an unacknowledged job (its worker died) is handed out again after this many
    # seconds; keep it above the longest job, or a slow job may also start on a second worker
    # the broker queue the API sends to and workers take from: services (or test runs) that share one
    # broker each need their own, or one's workers take the other's jobs
    broker_queue: str = Field(default="idverify", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    broker_visibility_timeout_s: int = Field(default=3600, ge=1)
    # the API's periodic sweep re-enqueues verifications still `queued` after this long (a lost message)
    queue_requeue_after_s: float = Field(default=300.0, gt=0)
    queue_sweep_interval_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _refuse_insecure(self) -> "Settings":
        if self.mode == "production":
            if not self.encryption_key or self.encryption_key == DEV_ENCRYPTION_KEY:
                raise ValueError("IDV_ENCRYPTION_KEY must be set to a secret key in production mode")
            if not self.admin_password or self.admin_password == DEV_ADMIN_PASSWORD:
                raise ValueError("IDV_ADMIN_PASSWORD must be set (not the default) in production mode")
            if self.dev_api_key:
                raise ValueError("IDV_DEV_API_KEY is for development mode only; create real keys instead")
        if self.webhook_url:
            from review_queue.webhooks import check_webhook_url

            try:
                check_webhook_url(self.webhook_url)
            except ValueError as e:
                raise ValueError(f"IDV_WEBHOOK_URL: {e}") from None
        if self.challenge_actions_min > self.challenge_actions_max:
            raise ValueError("IDV_CHALLENGE_ACTIONS_MIN must not exceed IDV_CHALLENGE_ACTIONS_MAX")
        if self.queue == "celery" and not self.broker_url:
            raise ValueError("IDV_QUEUE=celery needs IDV_BROKER_URL (redis://... or amqp://...)")
        if self.encryption_key:
            try:
                raw = base64.urlsafe_b64decode(self.encryption_key.encode())
            except Exception:
                raise ValueError("IDV_ENCRYPTION_KEY must be urlsafe base64") from None
            if len(raw) != 32:
                raise ValueError("IDV_ENCRYPTION_KEY must decode to 32 bytes")
        return self

    @property
    def effective_encryption_key(self) -> bytes:
        return base64.urlsafe_b64decode((self.encryption_key or DEV_ENCRYPTION_KEY).encode())

    @property
    def effective_admin_password(self) -> str:
        return self.admin_password or DEV_ADMIN_PASSWORD

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'idverify.sqlite3'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
