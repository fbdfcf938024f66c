"""The one settings object refuses unsafe or nonsensical values at start, with a clear message."""

import pytest
from pydantic import ValidationError

from api.settings import DEV_ADMIN_PASSWORD, Settings


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({"IDV_CHALLENGE_TTL_S": "-10"}, "challenge_ttl_s"),
        ({"IDV_CHALLENGE_ACTIONS_MIN": "4", "IDV_CHALLENGE_ACTIONS_MAX": "2"}, "CHALLENGE_ACTIONS_MIN"),
        ({"IDV_MAX_VIDEO_SECONDS": "nan"}, "max_video_seconds"),
        ({"IDV_MAX_IMAGE_PIXELS": "-1"}, "max_image_pixels"),
        ({"IDV_RETENTION_DAYS": "-3"}, "retention_days"),
        ({"IDV_WORKERS": "0"}, "workers"),
        ({"IDV_PORT": "99999"}, "port"),
        ({"IDV_MODE": "production"}, "IDV_ENCRYPTION_KEY"),
        ({"IDV_MODE": "production", "IDV_ENCRYPTION_KEY": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
          "IDV_ADMIN_PASSWORD": DEV_ADMIN_PASSWORD}, "IDV_ADMIN_PASSWORD"),
        ({"IDV_QUEUE": "celery"}, "IDV_BROKER_URL"),
    ],
)
def test_bad_settings_are_refused(monkeypatch, env, fragment):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValidationError) as e:
        Settings()
    assert fragment in str(e.value)


def test_production_with_its_own_secrets_starts(monkeypatch):
    monkeypatch.setenv("IDV_MODE", "production")
    monkeypatch.setenv("IDV_ENCRYPTION_KEY", "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=")
    monkeypatch.setenv("IDV_ADMIN_PASSWORD", "a-long-operator-secret")
    s = Settings()
    assert s.effective_admin_password == "a-long-operator-secret" and len(s.effective_encryption_key) == 32
