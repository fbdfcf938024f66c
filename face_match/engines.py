"""Model sessions: YuNet (detector) and SFace (embedder) on onnxruntime.

Each wrapper owns one onnxruntime session built once from the registry-verified file (rewritten in
memory, see onnx_graph.py). `InferenceSession.run` is thread-safe and the wrappers hold no per-call
state, so one instance serves every thread.
"""

from __future__ import annotations

import numpy as np

from models import ModelRegistry
from models.registry import sha256_file

from .geometry import ALIGNED_SIZE, decode_yunet, letterbox
from .onnx_graph import fold_dequantize


def _session_options(threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return opts


def _session(model_bytes: bytes, threads: int):
    import onnxruntime as ort

    return ort.InferenceSession(model_bytes, sess_options=_session_options(threads), providers=["CPUExecutionProvider"])


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


# The file beside an insightface pack's models that holds this product's calibration of the pack's
# recognition model, bound to that file's sha256 (written by `python -m benchmarks.face_match
# --insightface-dir DIR --write-thresholds`).
INSIGHTFACE_THRESHOLDS_FILE = "idverify-thresholds.json"


class InsightFaceEmbedder:
    """Embeddings from an operator's insightface model pack (e.g. buffalo_l's ArcFace R50), loaded
    through insightface 2.1's model zoo from a local directory, never downloaded.

    Opt-in only: the packs' weights are licensed for non-commercial research, so the product never
    ships or defaults to them. Detection and alignment stay YuNet + the 5-point transform, which
    produces the same 112 x 112 ArcFace-template crop that insightface's own `norm_crop` does.
    """

    def __init__(self, directory, threads: int = 1) -> None:
        from pathlib import Path

        from models import ModelError, Reason

        root = Path(directory)
        if not root.is_dir():
            raise ModelError(Reason.MODEL_MISSING,
                             f"IDV_INSIGHTFACE_DIR {root} is not a directory; unset it to use YuNet + SFace")
        candidates = sorted(root.glob("*.onnx"))
        model = None
        for path in candidates:
            m = self._load(path, threads)
            if getattr(m, "taskname", None) == "recognition":
                model, self.path = m, path
                break
        if model is None:
            raise ModelError(
                Reason.MODEL_MISSING,
                f"no recognition model (112 x 112 input, one output) among the {len(candidates)} .onnx files "
                f"in IDV_INSIGHTFACE_DIR {root}; point it at an unpacked pack such as buffalo_l",
            )
        if tuple(model.input_size) != (ALIGNED_SIZE, ALIGNED_SIZE):
            raise ModelError(Reason.MODEL_SHAPE_MISMATCH,
                             f"{self.path.name} wants {model.input_size} crops; only {ALIGNED_SIZE} x {ALIGNED_SIZE} is supported")
        self._model = model
        self.sha256 = sha256_file(self.path)
        self.model_id = f"insightface:{self.path.name}@{self.sha256[:12]}"

    @staticmethod
    def _load(path, threads: int):
        from insightface.model_zoo import get_model

        from models import ModelError, Reason

        try:
            # a path ending in .onnx: the model zoo's shape-based router; download stays off
            return get_model(str(path), providers=["CPUExecutionProvider"], sess_options=_session_options(threads),
                             download=False)
        except Exception as exc:  # protobuf DecodeError, onnxruntime's Fail, ...: one clear error
            raise ModelError(Reason.MODEL_MISSING,
                             f"{path.name} in IDV_INSIGHTFACE_DIR is not a loadable ONNX model ({type(exc).__name__})") from None

    def thresholds(self) -> dict[str, float]:
        """The cosine thresholds calibrated for exactly this file, by FMR."""
        import json

        from models import InputError, ModelError, Reason
        from models.files import read_text_file

        f = self.path.parent / INSIGHTFACE_THRESHOLDS_FILE
        fix = (f"calibrate it with `python -m benchmarks.face_match --insightface-dir {self.path.parent} "
               f"--write-thresholds`, or set IDV_FACE_THRESHOLD")
        try:
            data = json.loads(read_text_file(f, what=f.name, max_bytes=64 * 1024))
            sha, table = data["sha256"], {str(k): float(v) for k, v in data["thresholds"].items()}
        except InputError as exc:
            if exc.code is Reason.INPUT_MISSING:
                raise ModelError(Reason.MODEL_MISSING, f"{self.path.name} has no calibrated thresholds ({f.name}); {fix}") from None
            raise ModelError(Reason.MODEL_MISSING, f"{exc.detail}; {fix}") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(Reason.MODEL_MISSING, f"{f.name} is not a thresholds file ({type(exc).__name__}); {fix}") from None
        if sha != self.sha256:
            raise ModelError(Reason.MODEL_CHECKSUM_MISMATCH,
                             f"{f.name} was calibrated for another file than {self.path.name}; {fix}")
        return table

    def embed(self, aligned_bgr: np.ndarray) -> np.ndarray:
        if aligned_bgr.shape != (ALIGNED_SIZE, ALIGNED_SIZE, 3):
            raise ValueError(f"expected an aligned {ALIGNED_SIZE}x{ALIGNED_SIZE} BGR crop, got {aligned_bgr.shape}")
        # get_feat does insightface's own preprocessing (RGB, mean/std read from the graph)
        out = np.asarray(self._model.get_feat(aligned_bgr), dtype=np.float32).reshape(-1)
        n = float(np.linalg.norm(out))
        return out / n if n > 0 else out
