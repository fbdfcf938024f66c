"""Liveness fixtures: one checker per session and per-clip signal extraction cached (the expensive
part), so each test only re-runs the cheap, challenge-dependent decision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from liveness import Analysis, FrameSequence, LivenessChecker, load_capture


@pytest.fixture(scope="session")
def live_dir(testdata: Path) -> Path:
    return testdata / "liveness"


@pytest.fixture(scope="session")
def labels(live_dir: Path) -> dict:
    data = json.loads((live_dir / "labels.json").read_text(encoding="utf-8"))
    return {c["file"]: c for c in data["clips"]}


@pytest.fixture(scope="session")
def checker(registry) -> LivenessChecker:
    c = LivenessChecker(registry=registry)
    c.warm_up()
    return c


@pytest.fixture(scope="session")
def clip(live_dir: Path, checker: LivenessChecker):
    """clip(name, **load_kwargs) -> (FrameSequence, Analysis), computed once per session."""
    cache: dict[tuple, tuple[FrameSequence, Analysis]] = {}

    def get(name: str, **kw) -> tuple[FrameSequence, Analysis]:
        key = (name, tuple(sorted(kw.items())))
        if key not in cache:
            frames = load_capture(live_dir / name, **kw)
            cache[key] = (frames, checker.analyse(frames))
        return cache[key]

    return get
