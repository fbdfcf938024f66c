"""Shared fixtures. Real input comes from shared/data through one setting (IDV_TESTDATA)."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.settings import get_settings


@pytest.fixture(scope="session")
def testdata() -> Path:
    root = get_settings().testdata
    if not (root / "README.md").is_file():
        pytest.skip(f"real test data not found at {root} (set IDV_TESTDATA to shared/data)")
    return root


@pytest.fixture(scope="session")
def registry():
    from models import default_registry

    return default_registry()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    d = Path(__file__).resolve().parent / "artifacts"
    d.mkdir(exist_ok=True)
    return d
