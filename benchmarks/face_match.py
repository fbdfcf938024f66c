"""Face matching accuracy, calibration and speed on the shared faces/ photos.

    python -m benchmarks.face_match [--quick] [--out DIR] [--write-thresholds] [--insightface-dir DIR]

- photo pairs: the 521 listed pairs of faces/pairs.csv, plus every cross-person combination of the 61
  photos as impostors (so FAR 1e-3 rests on ~1,700 impostor pairs, not 380);
- calibration: cosine thresholds for FMR 1e-2 / 1e-3 / 1e-4 from that impostor distribution;
  `--write-thresholds` writes them into models/manifest.toml's [models.sface.thresholds] table;
- selfie vs card: each photo rendered as the portrait of a synthetic ID card (ocr.synthetic), the card
  photographed (perspective, blur, JPEG), the portrait face found again in the card photo and matched
  against every other photo (same person = genuine, other people = impostors);
- speed: detect + align + embed per 640 px image and per 4000 x 3000 photo, median / p95.

`--insightface-dir DIR` measures an operator's insightface pack instead of SFace (result
`face_match_insightface`); with `--write-thresholds` its calibration goes to DIR's
idverify-thresholds.json, bound to the recognition file's sha256, where the matcher reads it.
"""

from __future__ import annotations

import csv
import itertools
import re
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.common import (
    NOISE_NOTE,
    fmt_pct,
    make_result,
    md_table,
    require_testdata,
    run_main,
    time_calls,
)
from face_match import FaceMatcher, MatchConfig
from face_match.scoring import eer, roc_points, tar_at_far, threshold_for_fmr
from models import IdvError
from models.images import read_image_file
from models.registry import MANIFEST

FMRS = {"1e-2": 1e-2, "1e-3": 1e-3, "1e-4": 1e-4}


def _load(root: Path, quick: bool) -> tuple[dict[str, np.ndarray], dict[str, str], list[dict[str, str]]]:
    faces = root / "faces"
    ids = {r["file"]: r["person"] for r in csv.DictReader((faces / "identities.csv").open())}
    pairs = list(csv.DictReader((faces / "pairs.csv").open()))
    names = sorted(ids)
    if quick:
        names = names[:16]
        pairs = [p for p in pairs if p["img_a"] in names and p["img_b"] in names]
    return {n: read_image_file(faces / n) for n in names}, ids, pairs


def _stats(genuine: list[float], impostor: list[float]) -> dict[str, Any]:
    g, i = np.asarray(genuine), np.asarray(impostor)
    e, et = eer(g, i)
    out: dict[str, Any] = {"genuine_pairs": int(g.size), "impostor_pairs": int(i.size), "eer": round(e, 4),
                           "eer_threshold": round(et, 4)}
    for name, far in (("1e-2", 1e-2), ("1e-3", 1e-3)):
        tar, t = tar_at_far(g, i, far)
        out[f"tar_at_far_{name}"] = round(tar, 4)
        out[f"threshold_at_far_{name}"] = round(t, 4)
        out[f"impostors_allowed_at_far_{name}"] = int(np.floor(far * i.size))
    out["min_genuine"] = round(float(g.min()), 4) if g.size else None
    out["max_impostor"] = round(float(i.max()), 4) if i.size else None
    # a coarse ROC (FAR, TAR) for plotting; every 10th distinct point keeps the JSON small
    pts = roc_points(g, i)
    out["roc"] = [[round(t, 4), round(far, 5), round(tar, 4)] for t, far, tar in pts[:: max(1, len(pts) // 60)]]
    return out


def _errors_at(threshold: float, scored: list[tuple[float, str, str, bool]], k: int = 5) -> dict[str, Any]:
    fm = sorted([s for s in scored if not s[3] and s[0] >= threshold], reverse=True)
    fnm = sorted([s for s in scored if s[3] and s[0] < threshold])
    worst_imp = sorted([s for s in scored if not s[3]], reverse=True)[:k]
    worst_gen = sorted([s for s in scored if s[3]])[:k]
    row = lambda s: {"similarity": round(s[0], 4), "a": s[1], "b": s[2]}  # noqa: E731
    return {
        "threshold": round(threshold, 4),
        "false_matches": len(fm),
        "false_non_matches": len(fnm),
        "worst_impostors": [row(s) for s in worst_imp],
        "worst_genuines": [row(s) for s in worst_gen],
    }


def _selfie_card(matcher: FaceMatcher, images: dict[str, np.ndarray], ids: dict[str, str],
                 emb: dict[str, np.ndarray], cal: dict[str, float]) -> dict[str, Any]:
    try:
        from ocr.synthetic import phone_photo, random_person, render_front
    except ImportError as e:
        return {"available": False, "detail": f"ocr.synthetic not importable: {e}"}
    rng = np.random.default_rng(9)
    card_emb: dict[str, np.ndarray] = {}
    missed: list[str] = []
    crop_method = "face detection on the whole card photo (the card's only face)"
    for name, img in images.items():
        faces = matcher.detect(img)
        if not faces:
            continue
        box = tuple(int(v) for v in faces[0].box)
        card = render_front(random_person(rng), img, face_box=box)
        photo = phone_photo(card, rng, strength="medium", quarter_turns=0)
        try:
            card_emb[name] = matcher.embed(photo, role="card photo")
        except IdvError:
            missed.append(name)
    gen: list[float] = []
    imp: list[float] = []
    scored: list[tuple[float, str, str, bool]] = []
    for c, ce in card_emb.items():
        for n, e in emb.items():
            if n == c:
                continue  # the portrait's own source photo would be trivially similar
            s = float(ce @ e)
            same = ids[c] == ids[n]
            (gen if same else imp).append(s)
            scored.append((s, f"card({c})", n, same))
    out: dict[str, Any] = {"available": True, "cards": len(images), "portrait_found": len(card_emb),
                           "portrait_missed": missed, "crop_method": crop_method}
    if gen and imp:
        out.update(_stats(gen, imp))
        out["at_configured"] = _errors_at(cal[matcher.config.fmr], scored)
        out["at_calibrated"] = {
            k: {"threshold": t, "tar": round(float(np.mean(np.asarray(gen) >= t)), 4),
                "far": round(float(np.mean(np.asarray(imp) >= t)), 5)}
            for k, t in cal.items()
        }
    return out


def _speed(matcher: FaceMatcher, images: dict[str, np.ndarray], quick: bool) -> dict[str, Any]:
    sample = list(images.values())[: (6 if quick else 20)]

    def fit(img: np.ndarray, w: int, h: int) -> np.ndarray:
        # cover then centre-crop to exactly w x h, keeping the aspect ratio (a real camera frame)
        s = max(w / img.shape[1], h / img.shape[0])
        big = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_LINEAR)
        y0, x0 = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
        return np.ascontiguousarray(big[y0 : y0 + h, x0 : x0 + w])

    small = []
    for img in sample:
        s = 640 / max(img.shape[:2])
        small.append(cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA))
    large = [fit(img, 4000, 3000) for img in sample[: (3 if quick else 8)]]
    st_small, _ = time_calls(lambda im: matcher.embed(im), small, warmup=2)
    st_large, _ = time_calls(lambda im: matcher.embed(im), large, warmup=1)
    st_match, _ = time_calls(lambda ab: matcher.match(*ab), list(zip(small[:-1], small[1:])), warmup=1)
    return {"embed_640px": st_small, "embed_4000x3000": st_large, "match_two_640px": st_match,
            "intra_op_threads": matcher.config.intra_op_threads}


def run(quick: bool = False, insightface_dir: Path | None = None) -> dict[str, Any]:
    root = require_testdata("faces/pairs.csv")
    images, ids, pairs = _load(root, quick)
    # a pack is measured before it has thresholds (they are this run's output): the override only
    # lets the matcher be built; every figure below is computed from the raw cosines
    matcher = FaceMatcher(MatchConfig(insightface_dir=insightface_dir,
                                      threshold_override=1.0 if insightface_dir else None))

    # detection and embeddings
    detect_counts: dict[str, int] = {}
    emb: dict[str, np.ndarray] = {}
    embed_errors: dict[str, str] = {}
    for name, img in images.items():
        detect_counts[name] = len(matcher.detect(img))
        try:
            emb[name] = matcher.embed(img)
        except IdvError as e:
            embed_errors[name] = str(e.code)

    # listed pairs
    listed: list[tuple[float, str, str, bool]] = []
    for p in pairs:
        a, b = p["img_a"], p["img_b"]
        if a in emb and b in emb:
            listed.append((float(emb[a] @ emb[b]), a, b, p["same"] == "1"))
    # all cross-person combinations
    cross = [(float(emb[a] @ emb[b]), a, b, False) for a, b in itertools.combinations(sorted(emb), 2)
             if ids[a] != ids[b]]
    same_all = [(float(emb[a] @ emb[b]), a, b, True) for a, b in itertools.combinations(sorted(emb), 2)
                if ids[a] == ids[b]]
    cal = {k: round(threshold_for_fmr([s[0] for s in cross], v), 4) for k, v in FMRS.items()}
    configured = cal[matcher.config.fmr]

    listed_stats = _stats([s[0] for s in listed if s[3]], [s[0] for s in listed if not s[3]])
    all_stats = _stats([s[0] for s in same_all], [s[0] for s in cross])
    listed_err = {k: _errors_at(t, listed) for k, t in cal.items()}
    all_err = {k: _errors_at(t, same_all + cross) for k, t in cal.items()}

    selfie = _selfie_card(matcher, images, ids, emb, cal)
    speed = _speed(matcher, images, quick)

    n_img = len(images)
    found = sum(1 for c in detect_counts.values() if c > 0)
    metrics = {
        "images": n_img,
        "detection_rate": round(found / n_img, 4),
        "images_without_face": [n for n, c in detect_counts.items() if c == 0],
        "images_with_several_faces": {n: c for n, c in detect_counts.items() if c > 1},
        "embed_errors": embed_errors,
        "calibrated_thresholds": cal,
        "calibration_impostors": len(cross),
        "configured_fmr": matcher.config.fmr,
        "listed_pairs": listed_stats,
        "listed_pairs_errors": listed_err,
        "all_combinations": all_stats,
        "all_combinations_errors": all_err,
        "selfie_vs_card": selfie,
        "speed": speed,
    }
    metrics["model_id"] = matcher.model_id
    md = _markdown(metrics, configured)
    return make_result("face_match_insightface" if insightface_dir else "face_match", quick=quick, metrics=metrics,
                       markdown=md, data={"faces": str(root / "faces"), "pairs": len(pairs), "images": n_img},
                       models=["yunet"] if insightface_dir else ["yunet", "sface"], notes=[NOISE_NOTE])


def _markdown(m: dict[str, Any], configured: float) -> str:
    fmr = m["configured_fmr"]
    rows = []
    for label, st, err in (("listed pairs (pairs.csv)", m["listed_pairs"], m["listed_pairs_errors"][fmr]),
                           ("all combinations of the photos", m["all_combinations"], m["all_combinations_errors"][fmr])):
        rows.append([label, st["genuine_pairs"], st["impostor_pairs"], fmt_pct(st["eer"], 2),
                     fmt_pct(st["tar_at_far_1e-2"]), fmt_pct(st["tar_at_far_1e-3"]),
                     st["min_genuine"], st["max_impostor"], f'{err["false_matches"]} / {err["false_non_matches"]}'])
    sc = m["selfie_vs_card"]
    if sc.get("available") and "eer" in sc:
        err = sc["at_configured"]
        rows.append(["selfie vs card portrait (synthetic cards)", sc["genuine_pairs"], sc["impostor_pairs"],
                     fmt_pct(sc["eer"], 2), fmt_pct(sc["tar_at_far_1e-2"]), fmt_pct(sc["tar_at_far_1e-3"]),
                     sc["min_genuine"], sc["max_impostor"], f'{err["false_matches"]} / {err["false_non_matches"]}'])
    acc = md_table(["set", "genuine", "impostor", "EER", "TAR@FAR 1e-2", "TAR@FAR 1e-3", "min genuine cos",
                    "max impostor cos", f"FM / FNM at FMR {fmr} (cos {configured})"], rows)
    cal = md_table(["FMR", "cosine threshold", "impostor pairs"],
                   [[k, v, m["calibration_impostors"]] for k, v in m["calibrated_thresholds"].items()])
    sp = m["speed"]
    speed = md_table(["detect + align + embed", "n", "median ms", "p95 ms"],
                     [["640 px image", sp["embed_640px"]["n"], sp["embed_640px"]["median_ms"], sp["embed_640px"]["p95_ms"]],
                      ["4000 x 3000 photo", sp["embed_4000x3000"]["n"], sp["embed_4000x3000"]["median_ms"], sp["embed_4000x3000"]["p95_ms"]],
                      ["match() of two 640 px images", sp["match_two_640px"]["n"], sp["match_two_640px"]["median_ms"], sp["match_two_640px"]["p95_ms"]]])
    det = f"Face found in {m['detection_rate'] * 100:.1f} % of {m['images']} photos; embed errors: {m['embed_errors'] or 'none'}."
    # the pairs nearest the threshold from either side: where the next error would come from
    worst_rows = []
    for label, err in (("listed pairs", m["listed_pairs_errors"][fmr]), ("all combinations", m["all_combinations_errors"][fmr])):
        for kind, key in (("impostor (highest)", "worst_impostors"), ("genuine (lowest)", "worst_genuines")):
            for w in err[key][:3]:
                worst_rows.append([label, kind, f'{w["a"]} ~ {w["b"]}', w["similarity"]])
    worst = md_table(["set", "worst pairs", "images", "cosine"], worst_rows)
    return "\n\n".join([det, acc, cal, worst, speed])


def write_thresholds(cal: dict[str, float], manifest: Path = MANIFEST) -> None:
    """Rewrite only the [models.sface.thresholds] table's values."""
    text = manifest.read_text(encoding="utf-8")
    head = "[models.sface.thresholds]\n"
    start = text.index(head) + len(head)
    end = text.find("\n[", start)
    end = len(text) if end < 0 else end + 1
    body = (
        "# cosine similarity at which the false-match rate on the calibration impostors is at most FMR:\n"
        "# written by `python -m benchmarks.face_match --write-thresholds` from every cross-person pair of\n"
        "# the 61 faces/ photos (see benchmarks/results/face_match.md); 1e-4 needs more impostors than we\n"
        "# have, so it is the threshold above the highest observed impostor.\n"
        + "".join(f'"{k}" = {v}\n' for k, v in cal.items())
        + "\n"
    )
    manifest.write_text(text[:start] + body + text[end:], encoding="utf-8")


def write_pack_thresholds(cal: dict[str, float], pack_dir: Path, model_id: str) -> Path:
    """The calibration of an insightface pack, beside its files, bound to the recognition file."""
    import json

    from face_match.engines import INSIGHTFACE_THRESHOLDS_FILE, InsightFaceEmbedder

    emb = InsightFaceEmbedder(pack_dir)
    assert model_id.endswith(emb.model_id), (model_id, emb.model_id)  # the file measured is the file bound
    out = pack_dir / INSIGHTFACE_THRESHOLDS_FILE
    out.write_text(json.dumps({"model": emb.path.name, "sha256": emb.sha256, "thresholds": cal,
                               "calibrated_by": "python -m benchmarks.face_match --insightface-dir"}, indent=2) + "\n",
                   encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    write = "--write-thresholds" in args
    args = [a for a in args if a != "--write-thresholds"]
    pack: Path | None = None
    if "--insightface-dir" in args:
        i = args.index("--insightface-dir")
        if i + 1 >= len(args):
            sys.stderr.write("--insightface-dir needs a directory\n")
            return 2
        pack = Path(args[i + 1])
        del args[i : i + 2]
    holder: dict[str, Any] = {}

    def _run(quick: bool) -> dict[str, Any]:
        holder["r"] = run(quick, insightface_dir=pack)
        return holder["r"]

    rc = run_main("face_match_insightface" if pack else "face_match", _run, args)
    if write and not holder["r"]["quick"]:
        cal = holder["r"]["metrics"]["calibrated_thresholds"]
        if pack is None:
            write_thresholds(cal)
        else:
            sys.stderr.write(f"wrote {write_pack_thresholds(cal, pack, holder['r']['metrics']['model_id'])}\n")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
