"""IdCardReader: find, straighten and read one side of a resident ID card."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import cv2
import numpy as np

from models.errors import InputError
from models.images import decode_image
from models.reasons import Reason

from . import geometry
from .engine import OcrEngine
from .ethnicities import ETHNICITIES, ETHNICITY_SET
from .fields import (NUMBER_LINE_CHARS, Char, Line, Parsed, looks_like_number_line, normalise_text, parse_back,
                     parse_front, side_scores)
from .idnumber import single_substitutions, validate_id_number
from .masking import PII_FIELDS, mask_value
from .quality import quality_signals
from .synthetic import CARD_H, CARD_W, PORTRAIT_BOX

log = logging.getLogger(__name__)


class Side(StrEnum):
    FRONT = "front"  # portrait side
    BACK = "back"  # emblem side


FRONT_FIELDS = ("name", "sex", "ethnicity", "birth_date", "address", "id_number")
BACK_FIELDS = ("authority", "valid_from", "valid_until")


@dataclass(frozen=True)
class OcrConfig:
    det_side: int = 736  # text detection input, longest side (the card is rectified first)
    threads: int = 2
    low_confidence: float = 0.85  # a field whose weakest character scores below is "low confidence"
    correctable_below: float = 0.8  # only a character read below this may be corrected by the check digit
    min_card_width_px: int = 300  # narrower than this in the photo: card.too_small
    min_area_fraction: float = 0.04
    blur_sharpness: float = 60.0  # Laplacian variance of the rectified card
    dark_brightness: float = 0.28
    glare_fraction: float = 0.01
    name_confidence: float = 0.98  # names are where unknown glyphs hide: a stricter bar than other fields


@dataclass(frozen=True)
class FieldRead:
    value: str
    confidence: float
    corrected_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "confidence": round(float(self.confidence), 4),
                "corrected_from": self.corrected_from}




@dataclass(frozen=True)
class IdCardResult:
    side: Side | None
    fields: dict[str, FieldRead]
    reasons: tuple[Reason, ...]
    portrait: np.ndarray | None
    quality: dict[str, float]
    card_found: bool
    elapsed_ms: float
    timings_ms: dict[str, float] = field(default_factory=dict)
    label_misprinted: bool = False

    def to_dict(self, *, mask_pii: bool = True) -> dict[str, Any]:
        fields = {}
        for k, f in self.fields.items():
            d = f.to_dict()
            if mask_pii and k in PII_FIELDS:
                d["value"] = mask_value(k, f.value)
                d["corrected_from"] = mask_value(k, f.corrected_from)
            fields[k] = d
        return {
            "side": None if self.side is None else str(self.side),
            "card_found": self.card_found,
            "fields": fields,
            "reasons": [str(r) for r in self.reasons],
            "portrait_found": self.portrait is not None,
            "quality": {k: float(v) for k, v in self.quality.items()},
            "elapsed_ms": round(self.elapsed_ms, 1),
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
        }


def _dedupe(reasons: list[Reason]) -> tuple[Reason, ...]:
    return tuple(dict.fromkeys(reasons))


NAME_VALUE_X = 16.5 / 85.6  # value column of the front's left block (card fraction)
ETH_VALUE_X = 34.0 / 85.6
GLYPH = 3.5 / 85.6  # width of one printed value character
TRAILING_HOLE = 1.2  # box edge to last glyph centre, in glyphs: 0.41-0.73 over 80 rendered names, 1.6-1.67 with the last dropped


def _has_hole(chars: tuple[Char, ...], start: float, end: float | None = None) -> bool:
    """A missing glyph: a gap of more than ~1.7 characters between neighbours, before the first, or
    between the last and the right edge of the detected text box (the detector boxes every glyph,
    emittable or not, so a dropped last character leaves the box a glyph longer than the read)."""
    xs = [c.x for c in chars]
    if xs[0] - start > 1.7 * GLYPH:
        return True
    if end is not None and end - xs[-1] > TRAILING_HOLE * GLYPH:
        return True
    return any(b - a > 2.0 * GLYPH for a, b in zip(xs, xs[1:]))


def _completeness(r: "IdCardResult") -> tuple[int, int]:
    """(a card was read, how many of its side's fields have a value): to compare two quads."""
    return int(r.card_found), sum(1 for f in r.fields.values() if f.value)


def _emittable(text: str, charset: frozenset[str]) -> str:
    return "".join(c for c in text if c in charset)


def _crop(img: np.ndarray, box: np.ndarray) -> np.ndarray:
    from rapidocr.utils.process_img import get_rotate_crop_image

    return get_rotate_crop_image(img, box.copy())


class IdCardReader:
    """Built once (loads and verifies the three PP-OCRv4 models); `read` is safe from many threads."""

    def __init__(self, config: OcrConfig | None = None, registry=None) -> None:
        if registry is None:
            from models import default_registry

            registry = default_registry()
        self.config = config or OcrConfig()
        self._engine = OcrEngine(registry, det_side=self.config.det_side, threads=self.config.threads)
        self.model_ids = dict(self._engine.model_ids)

    # ---------------------------------------------------------------------------------------
    def read(self, image: np.ndarray | bytes, *, expected_side: Side | None = None) -> IdCardResult:
        t0 = time.perf_counter()
        img = self._as_bgr(image)
        timings: dict[str, float] = {}

        t = time.perf_counter()
        quads = geometry.find_card_candidates(img)
        quad = quads[0] if quads else None
        if geometry.image_is_card_shaped(img) and (quad is None or quad.touches_border or not 0.3 <= quad.area_fraction <= 0.7):
            # already a tight crop of the card: a quad found inside it is a printed block, not the card
            quad = geometry.whole_image_quad(img)
            quads = [quad]
        timings["locate"] = (time.perf_counter() - t) * 1000
        if quad is None:
            return self._empty(Reason.CARD_NOT_FOUND, t0, timings)
        result = self._read_quad(img, quad, expected_side, t0, dict(timings))
        for alt in quads[1:]:
            # a field missing may mean the quad cut the card: the runner-up quad gets one read, and
            # its result is kept only when it has more of the side's fields
            if result.card_found and Reason.IDCARD_FIELD_MISSING not in result.reasons:
                break
            other = self._read_quad(img, alt, expected_side, t0, dict(timings))
            if _completeness(other) > _completeness(result):
                result = other
        return result

    def _read_quad(self, img: np.ndarray, quad: geometry.CardQuad, expected_side: Side | None, t0: float,
                   timings: dict[str, float]) -> IdCardResult:
        cfg = self.config
        reasons: list[Reason] = []
        if geometry.card_width_px(quad) < cfg.min_card_width_px or quad.area_fraction < cfg.min_area_fraction:
            reasons.append(Reason.CARD_TOO_SMALL)
        # a card filling the frame is a tight crop, not a card cut off by the frame
        if quad.touches_border and quad.area_fraction < 0.8:
            reasons.append(Reason.CARD_PARTIALLY_OUTSIDE)
        t = time.perf_counter()
        card = geometry.rectify(img, quad, (CARD_W, CARD_H))
        timings["locate"] += (time.perf_counter() - t) * 1000

        boxes, timings["det"] = self._engine.detect(card)
        if not boxes:
            return self._empty(Reason.CARD_NOT_FOUND, t0, timings)
        crops = [_crop(card, b) for b in boxes]
        cls, timings["cls"] = self._engine.classify(crops)
        # the card is upside down when most text (weighted by line length) says 180 degrees
        w180 = sum(c.shape[1] * s for c, (lab, s) in zip(crops, cls) if lab == "180")
        w0 = sum(c.shape[1] * s for c, (lab, s) in zip(crops, cls) if lab != "180")
        if w180 > w0:
            card = np.ascontiguousarray(card[::-1, ::-1])
            boxes = [np.float32([[CARD_W - 1, CARD_H - 1]]) - b[[2, 3, 0, 1]] for b in boxes]
            crops = [np.ascontiguousarray(c[::-1, ::-1]) for c in crops]
        recs, timings["rec"] = self._engine.recognise(crops)
        lines = self._lines(boxes, recs)

        front_score, back_score = side_scores(lines)
        if front_score < 2 and back_score < 2:
            code = Reason.CARD_NOT_ID_CARD if lines else Reason.CARD_NOT_FOUND
            return self._empty(code, t0, timings, quality=quality_signals(card))
        side = Side.FRONT if front_score >= back_score else Side.BACK
        if side == Side.FRONT:
            reread = self._reread_number_line(boxes, crops, recs)
            if reread is not recs:
                recs = reread
                lines = self._lines(boxes, recs)
        if expected_side is not None and side != expected_side:
            reasons.append(Reason.CARD_WRONG_SIDE)

        quality = quality_signals(card)
        quality["card_area_fraction"] = round(quad.area_fraction, 4)
        quality["card_width_px"] = round(geometry.card_width_px(quad), 1)
        if quality["sharpness"] < cfg.blur_sharpness:
            reasons.append(Reason.QUALITY_BLURRED)
        if quality["brightness"] < cfg.dark_brightness:
            reasons.append(Reason.QUALITY_TOO_DARK)
        if quality["glare_fraction"] > cfg.glare_fraction:
            reasons.append(Reason.QUALITY_GLARE)

        portrait = None
        misprinted = False
        if side == Side.FRONT:
            parsed, flags = parse_front(lines)
            eth = parsed.get("ethnicity")
            if eth is None or eth.value not in ETHNICITY_SET:
                parsed.update(self._ethnicity_from_lexicon(boxes, crops, recs, eth.value if eth else ""))
            misprinted = flags["label_misprinted"]
            if misprinted:
                reasons.append(Reason.CARD_LABEL_MISPRINTED)
            fields, more = self._front_fields(parsed, lines)
            reasons.extend(more)
            portrait = self._portrait(card)
            if portrait is None:
                reasons.append(Reason.CARD_PORTRAIT_NOT_FOUND)
            wanted = FRONT_FIELDS
        else:
            parsed = parse_back(lines)
            fields = {k: FieldRead(p.value, p.confidence) for k, p in parsed.items()}
            wanted = BACK_FIELDS
        if any(k not in fields or not fields[k].value for k in wanted):
            reasons.append(Reason.IDCARD_FIELD_MISSING)
        if any(f.confidence < cfg.low_confidence for f in fields.values()):
            reasons.append(Reason.IDCARD_LOW_CONFIDENCE)
        elapsed = (time.perf_counter() - t0) * 1000
        log.info("ocr read side=%s lines=%d reasons=%s elapsed_ms=%.0f", side, len(lines),
                 ",".join(map(str, reasons)), elapsed)
        return IdCardResult(side, fields, _dedupe(reasons), portrait, quality, True, elapsed, timings, misprinted)

    # ---------------------------------------------------------------------------------------
    def _as_bgr(self, image: Any) -> np.ndarray:
        if isinstance(image, (bytes, bytearray, memoryview)):
            return decode_image(bytes(image), what="ID card image")
        if not isinstance(image, np.ndarray):
            raise InputError(Reason.INPUT_INVALID, "ID card image must be a numpy array or encoded bytes")
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.ndim == 3 and image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        if image.ndim != 3 or image.shape[2] != 3:
            raise InputError(Reason.INPUT_INVALID, f"ID card image has shape {image.shape}; expected HxWx3")
        if image.dtype != np.uint8:
            raise InputError(Reason.INPUT_INVALID, f"ID card image has dtype {image.dtype}; expected uint8")
        if min(image.shape[:2]) < 16:
            raise InputError(Reason.INPUT_TOO_SMALL, f"ID card image is {image.shape[1]}x{image.shape[0]} pixels")
        return image

    def _empty(self, code: Reason, t0: float, timings: dict[str, float], quality=None) -> IdCardResult:
        return IdCardResult(None, {}, (code,), None, quality or {}, False,
                            (time.perf_counter() - t0) * 1000, timings)

    @staticmethod
    def _lines(boxes: list[np.ndarray], recs: list[tuple[str, float, tuple]]) -> list[Line]:
        out = []
        for b, (txt, score, chars) in zip(boxes, recs):
            if not txt.strip():
                continue
            x0, y0 = float(b[:, 0].min()) / CARD_W, float(b[:, 1].min()) / CARD_H
            x1, y1 = float(b[:, 0].max()) / CARD_W, float(b[:, 1].max()) / CARD_H
            cs = tuple(Char(c, conf, x0 + fx * (x1 - x0)) for c, conf, fx in chars)
            out.append(Line(txt, score, (x0, y0, x1, y1), cs))
        return out

    def _reread_number_line(self, boxes: list[np.ndarray], crops: list[np.ndarray],
                            recs: list[tuple[str, float, tuple]]) -> list[tuple[str, float, tuple]]:
        """The number line read again within its own alphabet when the free read holds fewer than
        18 number characters and something else (a 4 read as L left 17 digits): taken only when
        that gives exactly 18, the model's best digit at its own low confidence, so validation and
        the policy see a doubtful whole number, not a short one. A stray mark beside a whole
        number (g before 18 digits) is never turned into a 19th digit."""

        def number_chars(text: str) -> int:
            return sum(c in "0123456789X" for c in normalise_text(text).upper())

        out = None
        for i, (b, crop, (text, _s, _c)) in enumerate(zip(boxes, crops, recs)):
            t = normalise_text(text).upper()
            if not (looks_like_number_line(t, float(b[:, 1].mean()) / CARD_H) and number_chars(t) < 18
                    and any(c not in NUMBER_LINE_CHARS for c in t)):
                continue
            again = self._engine.recognise_within(crop, NUMBER_LINE_CHARS)
            if number_chars(again[0]) == 18:
                out = out or list(recs)
                out[i] = again
        return recs if out is None else out

    def _ethnicity_from_lexicon(self, boxes: list[np.ndarray], crops: list[np.ndarray],
                                recs: list[tuple[str, float, tuple]], greedy: str) -> dict[str, Parsed]:
        """Re-read the ethnicity against the 56 printed names when the greedy read is empty or not
        one of them: the recogniser leaves rare glyphs unemitted (傈僳 read as nothing, 仡佬 as 佬)
        although its per-frame output still favours them. The posterior over the list is the
        confidence, so a doubtful choice stays low and goes to review."""
        for b, crop, (text, _s, _c) in zip(boxes, crops, recs):
            t = normalise_text(text)
            cx, cy = float(b[:, 0].mean()) / CARD_W, float(b[:, 1].mean()) / CARD_H
            if "族" not in t or not (0.25 < cx < 0.6 and cy < 0.5):
                continue
            prefix = t[: t.index("族") + 1]
            names = [e for e in ETHNICITIES if all(c in self._engine.charset for c in e)]
            # what was read competes too: wording outside the 56 (穿青人) or a read the list
            # cannot explain better keeps its own reading (and validation flags it)
            ll = self._engine.lexicon_log_likelihoods(crop, [prefix + e for e in names] + [prefix + greedy] * bool(greedy))
            if not np.isfinite(ll).any():
                return {}
            post = np.exp(ll - np.logaddexp.reduce(ll))
            best = int(np.argmax(post))
            if best == len(names):
                return {}
            conf = float(post[best])
            # a group with a glyph the dictionary lacks (仫 of 仫佬) cannot be scored; when what it
            # leaves (佬) is inside the winner (仡佬), the two cannot be told apart: review
            if any(_emittable(e, self._engine.charset) in names[best] for e in ETHNICITIES if e not in names):
                conf = min(conf, self.config.low_confidence * 0.9)
            return {"ethnicity": Parsed(names[best], conf)}
        return {}

    def _front_fields(self, parsed: dict[str, Parsed], lines: list[Line]) -> tuple[dict[str, FieldRead], list[Reason]]:
        cfg = self.config
        reasons: list[Reason] = []
        fields = {k: FieldRead(p.value, p.confidence) for k, p in parsed.items()}
        # The recogniser drops or replaces characters it cannot emit (CJK Extension A, and e.g. the
        # 仡 of 仡佬 in some crops) while staying confident about the rest. A dropped glyph leaves a
        # hole in the character positions; a replaced one usually scores a little lower.
        for key, start in (("name", NAME_VALUE_X), ("ethnicity", ETH_VALUE_X)):
            p = parsed.get(key)
            if p is None or not p.chars:
                continue
            weak = p.confidence < (cfg.name_confidence if key == "name" else cfg.low_confidence)
            if weak or _has_hole(p.chars, start, p.end) or (key == "name" and len(p.value) < 2):
                reasons.append(Reason.IDCARD_RARE_CHARACTER)
                fields[key] = FieldRead(p.value, min(p.confidence, cfg.low_confidence * 0.9))
        num = parsed.get("id_number")
        if num is not None and len(num.value) == 18 and validate_id_number(num.value):
            birth = fields.get("birth_date")
            from datetime import date as _date

            printed = None
            if birth is not None and birth.value:
                try:
                    printed = _date.fromisoformat(birth.value)
                except ValueError:
                    printed = None
            weak = [i for i, c in enumerate(num.chars) if c.conf < cfg.correctable_below]
            # Never "correct" the check character itself: any number passes once its check character
            # is recomputed, so that proves nothing and would hide a wrong printed check digit.
            if len(weak) == 1 and weak[0] < 17:
                cands = single_substitutions(num.value, weak[0], printed_birth=printed)
                if len(cands) == 1:
                    fields["id_number"] = FieldRead(cands[0], min(num.confidence, cfg.low_confidence * 0.9),
                                                    corrected_from=num.value)
                    reasons.append(Reason.IDCARD_CHARACTER_CORRECTED)
        return fields, reasons

    @staticmethod
    def _portrait(card: np.ndarray) -> np.ndarray | None:
        x0, y0, x1, y1 = PORTRAIT_BOX
        mx, my = 0.01, 0.02
        crop = card[int((y0 - my) * CARD_H): int(min(1.0, y1 + my) * CARD_H),
                    int((x0 - mx) * CARD_W): int(min(1.0, x1 + mx) * CARD_W)]
        if crop.size == 0 or float(crop.std()) < 8.0:
            return None
        return np.ascontiguousarray(crop)
