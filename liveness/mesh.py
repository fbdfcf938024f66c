"""The Face Mesh session: the only code in this package that touches mediapipe.

mediapipe is imported lazily (it costs ~1-2 s) and its files are verified through the registry
before the graph is built. A FaceMesh graph keeps tracking state between frames and is not
thread-safe, so each analysis of one capture builds its own graph (cheap next to the frames
themselves): captures never leak tracking state into each other and threads never share a graph.

A long capture is cut into two consecutive chunks, each with its own graph on its own thread
(mediapipe releases the GIL while the graph runs): 150 frames of a 10 s clip take 0.55 s instead
of 1.0 s on 2 cores. Each chunk starts with a detection instead of tracking from the previous
frame, which is what the first frame of any capture does anyway.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from models.errors import ModelError
from models.reasons import Reason

from .signals import FrameSignals, compute_signals

log = logging.getLogger(__name__)

MESH_MODELS = ("face_mesh", "face_mesh_detector")
# a capture of 80+ frames is analysed as two chunks; below 40 frames a chunk is not worth a graph
MESH_CHUNKS = 2
MIN_CHUNK_FRAMES = 40


class FaceMeshEngine:
    """Runs MediaPipe Face Mesh (478 landmarks with irises) over the frames of one capture."""

    def __init__(self, registry=None, *, max_num_faces: int = 2, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, threads: int = 2) -> None:
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
        self._threads = max(1, int(threads))
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
        n = min(len(frames), len(timestamps_s))
        # the cut depends on the capture only, never on the thread count, so a verdict is the same
        # in a 1-thread batch worker and in the 2-thread API
        k = max(1, min(MESH_CHUNKS, n // MIN_CHUNK_FRAMES))
        bounds = [round(i * n / k) for i in range(k + 1)]
        spans = list(zip(bounds, bounds[1:]))
        if k == 1 or self._threads == 1:
            return [s for a, b in spans for s in self._analyse_chunk(frames, timestamps_s, a, b)]
        with ThreadPoolExecutor(max_workers=min(k, self._threads), thread_name_prefix="face-mesh") as ex:
            parts = [ex.submit(self._analyse_chunk, frames, timestamps_s, a, b) for a, b in spans]
            return [s for part in parts for s in part.result()]

    def _analyse_chunk(self, frames: Sequence[np.ndarray], timestamps_s: Sequence[float],
                       start: int, stop: int) -> list[FrameSignals]:
        import cv2

        fm = self._solution().FaceMesh(
            static_image_mode=False, max_num_faces=self._max_faces, refine_landmarks=True,
            min_detection_confidence=self._det_conf, min_tracking_confidence=self._track_conf,
        )
        out: list[FrameSignals] = []
        try:
            for i in range(start, stop):
                frame, t = frames[i], timestamps_s[i]
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
