"""The one object that owns the OCR model sessions: rapidocr 3.10 running the PP-OCRv4 files.

rapidocr's own `RapidOCR.__call__` mutates shared state per call (update_params), so we drive its
detector / classifier / recogniser stages directly, under one lock: the stages are cheap to call
in sequence and onnxruntime already uses both cores inside a call.
"""

from __future__ import annotations

import threading
import unicodedata
import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RawLine:
    box: np.ndarray  # 4x2 in the input image
    text: str
    score: float
    chars: tuple[tuple[str, float, float], ...]  # (char, confidence, x-centre as a fraction of the box width)


class OcrEngine:
    def __init__(self, registry, *, det_side: int = 736, threads: int = 2) -> None:
        from rapidocr import RapidOCR
        from rapidocr.utils.typings import ModelType, OCRVersion

        params = {
            "Global.log_level": "error",
            "Det.model_path": str(registry.path("ocr_det")),
            "Det.ocr_version": OCRVersion.PPOCRV4,
            "Det.model_type": ModelType.MOBILE,
            "Det.limit_type": "max",
            "Det.limit_side_len": det_side,
            "Cls.model_path": str(registry.path("ocr_cls")),
            "Rec.model_path": str(registry.path("ocr_rec")),
            "Rec.ocr_version": OCRVersion.PPOCRV4,
            "Rec.model_type": ModelType.MOBILE,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        rapid = RapidOCR(params=params)
        # build all three sessions now (rapidocr builds them lazily on first call)
        self._det = rapid._load_det_model()
        self._cls = rapid._load_cls_model()
        self._rec = rapid._load_rec_model()
        self._lock = threading.Lock()
        chars = list(self._rec.postprocess_op.character)
        self.charset = frozenset(chars)
        # The dictionary holds both full-width and ASCII forms (３ and 3); the recogniser splits its
        # probability between them on card digits, so every per-character confidence looked low.
        # Fold each compatibility form into its NFKC target before decoding.
        index = {c: i for i, c in enumerate(chars)}
        pairs = [(i, index[unicodedata.normalize("NFKC", c)]) for i, c in enumerate(chars)
                 if len(c) == 1 and unicodedata.normalize("NFKC", c) != c
                 and unicodedata.normalize("NFKC", c) in index and not c.isspace()]
        # × and lowercase x are never printed on a card but take the check character X's probability
        # (a clean render: × 0.61, or X 0.84 + x 0.15): the same split, folded the same way
        pairs += [(index[c], index["X"]) for c in ("×", "x") if c in index and "X" in index]
        self._index = index
        self._is_space = np.array([c.isspace() for c in chars], bool)
        self._fold_src = np.array([a for a, _ in pairs], np.int64)
        self._fold_dst = np.array([b for _, b in pairs], np.int64)
        self.model_ids = {n: registry.spec(n).model_id for n in ("ocr_det", "ocr_cls", "ocr_rec")}

    def detect(self, image: np.ndarray) -> tuple[list[np.ndarray], float]:
        t = time.perf_counter()
        with self._lock:
            out = self._det(image)
        boxes = [] if out.boxes is None else [np.asarray(b, np.float32) for b in out.boxes]
        return boxes, (time.perf_counter() - t) * 1000

    def classify(self, crops: list[np.ndarray]) -> tuple[list[tuple[str, float]], float]:
        """Per crop: ("0" or "180", score)."""
        if not crops:
            return [], 0.0
        t = time.perf_counter()
        with self._lock:
            out = self._cls([c.copy() for c in crops])
        return [(str(l), float(s)) for l, s in out.cls_res], (time.perf_counter() - t) * 1000

    def recognise(self, crops: list[np.ndarray]) -> tuple[list[tuple[str, float, tuple]], float]:
        if not crops:
            return [], 0.0
        t = time.perf_counter()
        rec = self._rec
        ratios = np.array([c.shape[1] / float(c.shape[0]) for c in crops])
        order = np.argsort(ratios)  # similar widths batch together (less padding)
        res: list = [None] * len(crops)
        _, img_h, img_w = rec.rec_image_shape[:3]
        batch = rec.rec_batch_num
        with self._lock:
            for beg in range(0, len(crops), batch):
                idx = order[beg: beg + batch]
                max_ratio = max(img_w / img_h, *(ratios[i] for i in idx))
                norm = np.stack([rec.resize_norm_img(crops[i], max_ratio) for i in idx]).astype(np.float32)
                preds = rec.session(norm)
                # np.add.at, not +=: several forms fold into one target (３ and ③ into 3)
                np.add.at(preds, (slice(None), slice(None), self._fold_dst), preds[:, :, self._fold_src])
                preds[:, :, self._fold_src] = 0.0
                for k, i in enumerate(idx):
                    res[i] = self._decode(preds[k], ratios[i] / max_ratio)
        return res, (time.perf_counter() - t) * 1000


    def _frame_probs(self, crop: np.ndarray) -> tuple[np.ndarray, float]:
        """The recogniser's per-frame class probabilities for one crop, compatibility forms folded,
        and the fraction of the frames the crop fills (the rest is padding)."""
        rec = self._rec
        _, img_h, img_w = rec.rec_image_shape[:3]
        ratio = max(img_w / img_h, crop.shape[1] / float(crop.shape[0]))
        norm = rec.resize_norm_img(crop, ratio)[None].astype(np.float32)
        with self._lock:
            preds = rec.session(norm)
        np.add.at(preds, (slice(None), slice(None), self._fold_dst), preds[:, :, self._fold_src])
        preds[:, :, self._fold_src] = 0.0
        return preds[0], crop.shape[1] / float(crop.shape[0]) / ratio

    def lexicon_log_likelihoods(self, crop: np.ndarray, candidates: list[str]) -> np.ndarray:
        """log P(text | crop) of each candidate under the recogniser's CTC output (the sum over all
        alignments, not the greedy path); -inf for a candidate with a character outside the
        dictionary. For closed vocabularies, where the greedy read dropped glyphs (傈僳 -> "")."""
        logp = np.log(np.clip(self._frame_probs(crop)[0], 1e-30, None))
        out = np.full(len(candidates), -np.inf)
        for k, text in enumerate(candidates):
            if all(c in self._index for c in text):
                out[k] = _ctc_log_likelihood(logp, [self._index[c] for c in text])
        return out

    def recognise_within(self, crop: np.ndarray, allowed: str) -> tuple[str, float, tuple]:
        """Greedy read of a crop whose text can only use `allowed` characters (the ID number line).

        Where the free read emitted a character outside the set (a 4 read as L), the glyph is
        still there: that frame takes the best allowed character, never the blank, with its own
        (low) probability as confidence, so the field stays doubtful instead of losing a digit.
        """
        probs, used = self._frame_probs(crop)
        allowed_mask = np.zeros(probs.shape[1], bool)
        allowed_mask[[self._index[c] for c in allowed if c in self._index]] = True
        masked = restrict_frames(probs, allowed_mask, self._is_space)
        return self._decode(masked, used)

    def _decode(self, probs: np.ndarray, used: float) -> tuple[str, float, tuple]:
        """Greedy CTC decode. A character's confidence is its best frame within its run (the first
        frame of a run is often a transition frame); its x is the run's centre."""
        chars = self._rec.postprocess_op.character
        idx = probs.argmax(axis=1)
        p = probs.max(axis=1)
        t_used = max(1.0, probs.shape[0] * used)
        out = []
        t = 0
        n = len(idx)
        while t < n:
            j = t
            while j + 1 < n and idx[j + 1] == idx[t]:
                j += 1
            if idx[t] != 0:  # 0 = CTC blank
                ch = chars[int(idx[t])]
                if not ch.isspace():
                    out.append((ch, float(p[t: j + 1].max()), min(1.0, ((t + j) / 2 + 0.5) / t_used)))
            t = j + 1
        text = "".join(c for c, _, _ in out)
        score = float(np.mean([c for _, c, _ in out])) if out else 0.0
        return text, score, tuple(out)


def restrict_frames(probs: np.ndarray, allowed: np.ndarray, space: np.ndarray) -> np.ndarray:
    """Per-frame probabilities with every class outside `allowed` (and blank, 0) zeroed. A frame
    the free read gave to a foreign character loses its blank too: a glyph is there, so it becomes
    the best allowed character. A space is a gap like the blank and never forces a character."""
    free = probs.argmax(axis=1)
    foreign = (free != 0) & ~allowed[free] & ~space[free]
    keep = allowed.copy()
    keep[0] = True
    masked = np.where(keep[None, :], probs, 0.0)
    masked[foreign, 0] = 0.0
    return masked


def _ctc_log_likelihood(logp: np.ndarray, labels: list[int]) -> float:
    """CTC forward algorithm in log space (blank = 0): log of the summed probability of every frame
    alignment that collapses to `labels`."""
    ext = np.zeros(2 * len(labels) + 1, np.int64)
    ext[1::2] = labels
    s_len = len(ext)
    # a label may skip the blank before it unless it repeats the previous label
    skip = np.zeros(s_len, bool)
    skip[3::2] = ext[3::2] != ext[1:-2:2]
    alpha = np.full(s_len, -np.inf)
    alpha[0] = logp[0, 0]
    if s_len > 1:
        alpha[1] = logp[0, ext[1]]
    for t in range(1, logp.shape[0]):
        prev1 = np.concatenate(([-np.inf], alpha[:-1]))
        prev2 = np.where(skip, np.concatenate(([-np.inf, -np.inf], alpha[:-2])), -np.inf)
        alpha = np.logaddexp(np.logaddexp(alpha, prev1), prev2) + logp[t, ext]
    return float(np.logaddexp(alpha[-1], alpha[-2]) if s_len > 1 else alpha[-1])
