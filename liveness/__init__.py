"""Action liveness: random challenges, per-frame Face Mesh signals, action detection, anti-spoof.

Public API (everything else is internal):

    issue_challenge(), parse_actions(), Action, Challenge
    load_capture(path), load_capture_bytes(data) -> FrameSequence
    LivenessChecker(config, registry, face_embedder).check(frames, actions, mirrored=) -> LivenessResult

Direction convention: see `Action` (turn_left = the subject's own left; on an unmirrored capture
the nose then points to the image's right; mirrored=True swaps image directions).
"""

from .capture import FrameSequence, load_capture, load_capture_bytes
from .challenge import Action, Challenge, issue_challenge, parse_actions, parse_challenge
from .checker import (
    QUALITY_REASONS,
    SPOOF_REASONS,
    ActionResult,
    Analysis,
    LivenessChecker,
    LivenessConfig,
    LivenessResult,
)
from .detect import DetectorConfig

__all__ = [
    "Action", "ActionResult", "Analysis", "Challenge", "DetectorConfig", "FrameSequence", "LivenessChecker",
    "LivenessConfig", "LivenessResult", "QUALITY_REASONS", "SPOOF_REASONS", "issue_challenge",
    "load_capture", "load_capture_bytes", "parse_actions", "parse_challenge",
]
