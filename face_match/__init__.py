"""Face matching: YuNet detection, 5-point alignment, SFace embeddings, thresholds by false-match rate.

    matcher = FaceMatcher(MatchConfig(fmr="1e-3"))      # once, at start-up; thread-safe
    result = matcher.match(live_bgr, card_portrait_bgr)  # MatchResult(score, passed, margin, reasons...)

Images are BGR uint8 arrays (decode untrusted bytes with models.images first); grey, BGRA and 16-bit
arrays are accepted too.

Thresholds: `MatchConfig.fmr` picks the cosine threshold calibrated for that false-match rate
(models/manifest.toml, [models.sface.thresholds], written by `python -m benchmarks.face_match
--write-thresholds`). score = (cosine + 1) / 2.

insightface model packs (buffalo_l etc.) are licensed for non-commercial research only and so are
never the default; `MatchConfig.insightface_dir` opts into an operator's pack (engines.InsightFaceEmbedder),
with thresholds from the pack's own calibration file.
"""

from .geometry import REFERENCE_5PTS, align_face, similarity_transform
from .matcher import DetectedFace, FaceMatcher, MatchConfig, MatchResult, SelfieCardResult
from .quality import FaceQuality, QualityLimits
from .scoring import cosine, score_from_cosine, threshold_for_fmr

__all__ = [
    "REFERENCE_5PTS",
    "DetectedFace",
    "FaceMatcher",
    "FaceQuality",
    "MatchConfig",
    "MatchResult",
    "QualityLimits",
    "SelfieCardResult",
    "align_face",
    "cosine",
    "score_from_cosine",
    "similarity_transform",
    "threshold_for_fmr",
]
