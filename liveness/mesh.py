"""The Face Mesh session: the only code in this package that touches mediapipe.

mediapipe is imported lazily (it costs ~1-2 s) and its files are verified through the registry
before the graph is built. A FaceMesh graph keeps tracking state between frames and is not
thread-safe, so each analysis of one capture builds its own graph (cheap next to the frames
themselves): captures never leak tracking state into each other and threads never share a graph.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import numpy as np

from models.errors import ModelError
from models.reasons import Reason

from .signals import FrameSignals, compute_signals

log = logging.getLogger(__name__)

MESH_MODELS = ("face_mesh", "face_mesh_detector")


class FaceMeshEngine:
    """Runs MediaPipe Face Mesh (478 landmarks with irises) over the frames of one capture."""

    def __init__(self, registry=None, *, max_num_faces: int = 2, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5) -> None:
        if registry is None:
            from models import default_registry

            registry = default_registry()
        # verify the shipped tflite files (sha256) before mediapipe ever loads them
        self.model_ids = {name: registry.spec(name).model_id for name in MESH_MODELS}
        for name in MESH_MODELS:
            registry.path(name)
        self._max_faces = max_num_faces
        self._det_conf = min_detection_confidence
        self._track_conf = min_tracking_confidence
        self._import_lock = threading.Lock()
        self._mp = None

    def _solution(self):
        with self._import_lock:
            if self._mp is None:
                try:
                    import mediapipe as mp
                except ImportError as e:  # pragma: no cover - pinned in requirements.lock
                    raise ModelError(Reason.MODEL_MISSING, f"mediapipe is not importable: {e}") from None
                self._mp = mp
        return self._mp.solutions.face_mesh

    def warm_up(self) -> None:
        self.analyse([np.zeros((64, 64, 3), np.uint8)], [0.0])

    def analyse(self, frames: Sequence[np.ndarray], timestamps_s: Sequence[float]) -> list[FrameSignals]:
        import cv2

        fm = self._solution().FaceMesh(
            static_image_mode=False, max_num_faces=self._max_faces, refine_landmarks=True,
            min_detection_confidence=self._det_conf, min_tracking_confidence=self._track_conf,
        )
        out: list[FrameSignals] = []
        try:
            for i, (frame, t) in enumerate(zip(frames, timestamps_s)):
                h, w = frame.shape[:2]
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                res = fm.process(rgb)
                faces = res.multi_face_landmarks or []
                lm = None
                if faces:
                    # the largest face is the applicant; others only count toward n_faces
                    arrays = [
                        np.array([(p.x * w, p.y * h, p.z * w) for p in f.landmark], dtype=np.float32)
                        for f in faces
                    ]
                    lm = max(arrays, key=lambda a: float(np.ptp(a[:, 0]) * np.ptp(a[:, 1])))
                out.append(compute_signals(i, float(t), frame, lm, len(faces)))
        finally:
            fm.close()
        return out
