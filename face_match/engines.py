"""Model sessions: YuNet (detector) and SFace (embedder) on onnxruntime.

Each wrapper owns one onnxruntime session built once from the registry-verified file (rewritten in
memory, see onnx_graph.py). `InferenceSession.run` is thread-safe and the wrappers hold no per-call
state, so one instance serves every thread.
"""

from __future__ import annotations

import numpy as np

from models import ModelRegistry

from .geometry import ALIGNED_SIZE, decode_yunet, letterbox
from .onnx_graph import fold_dequantize


def _session(model_bytes: bytes, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])


class YuNetDetector:
    """Faces with five landmarks, in the coordinates of the image passed in."""

    def __init__(self, registry: ModelRegistry, threads: int = 1) -> None:
        spec = registry.spec("yunet")
        self.model_id = spec.model_id
        self.canvas = int(spec.input_shape[-1]) if spec.input_shape else 640
        self._sess = _session(fold_dequantize(registry.path("yunet")), threads)
        self._input = self._sess.get_inputs()[0].name
        self._outputs = [o.name for o in self._sess.get_outputs()]

    def detect(self, bgr: np.ndarray, longest_side: int, score_threshold: float, nms_threshold: float = 0.3) -> np.ndarray:
        """Rows [x, y, w, h, 10 landmark coords, score] in `bgr`'s pixels, best first."""
        canvas, box = letterbox(bgr, self.canvas, longest_side)
        # OpenCV feeds YuNet BGR, 0-255, no mean/scale: do exactly the same
        blob = canvas.transpose(2, 0, 1)[None].astype(np.float32)
        raw = self._sess.run(self._outputs, {self._input: blob})
        dets = decode_yunet(dict(zip(self._outputs, raw)), self.canvas, score_threshold, nms_threshold)
        if len(dets):
            dets = dets.copy()
            dets[:, :14] /= box.scale
        return dets


class SFaceEmbedder:
    """128-d embeddings from 112 x 112 aligned BGR crops."""

    def __init__(self, registry: ModelRegistry, threads: int = 1) -> None:
        self.model_id = registry.spec("sface").model_id
        self._sess = _session(fold_dequantize(registry.path("sface")), threads)
        self._input = self._sess.get_inputs()[0].name

    def embed(self, aligned_bgr: np.ndarray) -> np.ndarray:
        if aligned_bgr.shape != (ALIGNED_SIZE, ALIGNED_SIZE, 3):
            raise ValueError(f"expected an aligned {ALIGNED_SIZE}x{ALIGNED_SIZE} BGR crop, got {aligned_bgr.shape}")
        # cv2.FaceRecognizerSF builds its blob with swapRB=True and no mean/scale: the model wants
        # RGB 0-255 (its own first layers normalise). Feeding BGR here silently degrades matching.
        blob = aligned_bgr[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32)
        out = self._sess.run(None, {self._input: blob})[0].reshape(-1)
        n = float(np.linalg.norm(out))
        return (out / n).astype(np.float32) if n > 0 else out.astype(np.float32)
