"""ID card OCR accuracy and speed on fixed-seed rendered cards (clean and phone photos) + the specimen.

    python -m benchmarks.ocr [--n 100] [--quick] [--baseline] [--out DIR]

`--n` persons, each rendered front (portrait from shared faces/) and back = 2n cards, each read clean
and as a phone photo. Every 20th person has a CJK Extension A character in the name (the recogniser
cannot emit it: it must be flagged, and it counts as a miss for the name field), every 25th has a
wrong check digit printed (the reader must read it as printed and validation must flag it).
Speed: per side, engine built once outside the loop, one warm-up; also 12-MP phone photos.
`--baseline` adds rapidocr's default PP-OCRv6 pipeline + a label-regex parser (benchmarks.baselines).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np

from .common import (NOISE_NOTE, fmt_pct, latency_stats, make_result, md_table, rate, require_testdata,
                     write_results)

NAME = "ocr"
SEED = 4242
TODAY = date(2026, 6, 1)
FRONT = ("name", "sex", "ethnicity", "birth_date", "address", "id_number")
BACK = ("authority", "valid_from", "valid_until")
# a wrong number carrying one of these is caught (goes to review), not silent
FLAGS = frozenset({
    "idcard.checksum_invalid", "idcard.number_format_invalid", "idcard.region_unknown",
    "idcard.birth_date_invalid", "idcard.birth_date_mismatch", "idcard.sex_mismatch",
    "idcard.low_confidence", "idcard.field_missing", "idcard.character_corrected",
    "card.not_found", "card.too_small", "card.not_id_card", "card.wrong_side",
})


def _cards(n: int):
    from models.images import read_image_file
    from ocr import ground_truth, random_person, render_back, render_front

    root = require_testdata("faces")
    faces = sorted((root / "faces").glob("img*.jpg"), key=lambda p: p.name)
    rng = np.random.default_rng(SEED)
    for k in range(n):
        person = random_person(rng, rare_name=(k % 20 == 19), valid_number=(k % 25 != 24))
        portrait = read_image_file(faces[k % len(faces)])
        yield k, person, ground_truth(person), render_front(person, portrait), render_back(person)


def run(n: int, quick: bool, baseline: bool) -> dict[str, Any]:
    from models.images import read_image_file
    from ocr import IdCardReader, Side, phone_photo, validate_card

    t_start = time.perf_counter()
    reader = IdCardReader()
    photo_rng = np.random.default_rng(SEED + 1)
    per_field: dict[str, dict[str, dict[str, int]]] = {c: {f: {"exact": 0, "total": 0} for f in FRONT + BACK}
                                                       for c in ("clean", "phone")}
    ids = {c: {"exact": 0, "total": 0, "silent_wrong": 0, "flagged_wrong": 0, "corrected": 0,
               "corrected_right": 0} for c in ("clean", "phone")}
    side_ok = {c: {"ok": 0, "total": 0} for c in ("clean", "phone")}
    rare = {c: {"cards": 0, "flagged": 0, "confident_wrong_name": 0} for c in ("clean", "phone")}
    bad_digit = {c: {"cards": 0, "flagged": 0} for c in ("clean", "phone")}
    lat: dict[str, dict[str, list[float]]] = {s: {k: [] for k in ("total", "locate", "det", "cls", "rec")}
                                              for s in ("front", "back")}
    misses: list[str] = []
    warmed = False
    for k, person, gt, front_img, back_img in _cards(n):
        imgs = {"clean": (front_img, back_img),
                "phone": (phone_photo(front_img, photo_rng), phone_photo(back_img, photo_rng))}
        for cond, (fi, bi) in imgs.items():
            if not warmed:
                reader.read(fi)
                warmed = True
            fr = reader.read(fi, expected_side=Side.FRONT)
            br = reader.read(bi, expected_side=Side.BACK)
            for side, res in (("front", fr), ("back", br)):
                lat[side]["total"].append(res.elapsed_ms)
                for part in ("locate", "det", "cls", "rec"):
                    lat[side][part].append(res.timings_ms.get(part, 0.0))
            side_ok[cond]["total"] += 2
            side_ok[cond]["ok"] += int(fr.side == Side.FRONT) + int(br.side == Side.BACK)
            val = validate_card(fr, br, today=TODAY)
            codes = {str(c) for c in (*fr.reasons, *br.reasons, *val.reasons)}
            wrong = []
            for f in FRONT + BACK:
                res = fr if f in FRONT else br
                got = res.fields.get(f)
                ok = got is not None and got.value == gt[f]
                per_field[cond][f]["total"] += 1
                per_field[cond][f]["exact"] += int(ok)
                if not ok:
                    wrong.append(f)
            num = fr.fields.get("id_number")
            ids[cond]["total"] += 1
            if num is not None and num.corrected_from is not None:
                ids[cond]["corrected"] += 1
                ids[cond]["corrected_right"] += int(num.value == gt["id_number"])
            if num is not None and num.value == gt["id_number"]:
                ids[cond]["exact"] += 1
            elif num is not None and num.value:
                if codes & FLAGS:
                    ids[cond]["flagged_wrong"] += 1
                else:
                    ids[cond]["silent_wrong"] += 1
            if k % 20 == 19:
                rare[cond]["cards"] += 1
                rare[cond]["flagged"] += int("idcard.rare_character" in codes or "idcard.low_confidence" in codes)
                name = fr.fields.get("name")
                rare[cond]["confident_wrong_name"] += int(
                    name is not None and name.value != gt["name"] and name.confidence >= reader.config.low_confidence)
            if k % 25 == 24:
                bad_digit[cond]["cards"] += 1
                bad_digit[cond]["flagged"] += int("idcard.checksum_invalid" in codes)
            if wrong:
                misses.append(f"{k}/{cond}: {','.join(wrong)}")  # field names only, never values
    # 12-MP photos (4000 x 3000), front and back
    big: list[float] = []
    big_cpu: list[float] = []
    big_ok = 0
    n_big = 2 if quick else 6
    big_rng = np.random.default_rng(SEED + 2)
    for k, person, gt, front_img, back_img in _cards(n_big):
        for img, want in ((front_img, "id_number"), (back_img, "authority")):
            photo = phone_photo(img, big_rng, strength="light", size=(4000, 3000))
            reader.read(photo) if not big else None
            t, c = time.perf_counter(), time.process_time()
            res = reader.read(photo)
            big.append((time.perf_counter() - t) * 1000)
            big_cpu.append((time.process_time() - c) * 1000)  # CPU of all threads: less load-sensitive
            big_ok += int(res.fields.get(want) is not None and res.fields[want].value == gt[want])
    # the real specimen, both files
    root = require_testdata("idcards")
    specimen = {}
    for name in ("chineseocr_idcard-demo_upside_down.jpeg", "chineseocr_idcard-demo_rotated180_upright.png"):
        res = reader.read(read_image_file(root / "idcards" / name))
        v = validate_card(res, None, today=TODAY)
        specimen[name] = {"side": str(res.side), "reasons": sorted({str(r) for r in v.reasons}),
                          "elapsed_ms": round(res.elapsed_ms, 1)}

    def field_rates(cond: str) -> dict[str, Any]:
        pf = per_field[cond]
        tot = sum(v["total"] for v in pf.values())
        ex = sum(v["exact"] for v in pf.values())
        return {"per_field": {f: rate(v["exact"], v["total"]) for f, v in pf.items()}, "fields_exact": rate(ex, tot),
                "fields_total": tot}

    metrics: dict[str, Any] = {
        "persons": n, "cards": 2 * n, "seed": SEED,
        "clean": field_rates("clean") | {"id": ids["clean"], "side_ok": side_ok["clean"]},
        "phone": field_rates("phone") | {"id": ids["phone"], "side_ok": side_ok["phone"]},
        "rare_names": rare, "printed_wrong_check_digit": bad_digit,
        "latency_ms": {s: {k: latency_stats(v) for k, v in d.items()} for s, d in lat.items()},
        "latency_12mp_ms": latency_stats(big) | {"fields_right": f"{big_ok}/{len(big)}",
                                                  "cpu_median_ms": round(float(np.median(big_cpu)), 1)},
        "specimen": specimen,
        "misses": misses,
    }
    for cond in ("clean", "phone"):
        i = ids[cond]
        metrics[cond]["id_number_exact"] = rate(i["exact"], i["total"])
    if baseline:
        from .baselines import ocr_side_by_side

        metrics["baseline"] = ocr_side_by_side(require_testdata(), quick)
    return make_result(NAME, quick=quick, metrics=metrics, markdown=markdown(metrics),
                       data={"rendered_persons": n, "seed": SEED, "specimen": "shared/data/idcards"},
                       models=["ocr_det", "ocr_cls", "ocr_rec"], elapsed_s=time.perf_counter() - t_start,
                       notes=[NOISE_NOTE, "Rare-name cards count as name misses (the recogniser cannot emit "
                              "Extension A); what matters is that they are flagged.",
                              "Every 25th person prints a wrong check digit: read as printed = exact."])


def markdown(m: dict[str, Any]) -> str:
    rows = []
    for f in FRONT + BACK:
        rows.append([f, fmt_pct(m["clean"]["per_field"][f]), fmt_pct(m["phone"]["per_field"][f])])
    rows.append(["**all fields**", fmt_pct(m["clean"]["fields_exact"]), fmt_pct(m["phone"]["fields_exact"])])
    rows.append(["ID number exact", fmt_pct(m["clean"]["id_number_exact"]), fmt_pct(m["phone"]["id_number_exact"])])
    rows.append(["silent wrong ID numbers", m["clean"]["id"]["silent_wrong"], m["phone"]["id"]["silent_wrong"]])
    rows.append(["wrong ID numbers flagged", m["clean"]["id"]["flagged_wrong"], m["phone"]["id"]["flagged_wrong"]])
    rows.append(["check-digit corrections (right/made)",
                 f"{m['clean']['id']['corrected_right']}/{m['clean']['id']['corrected']}",
                 f"{m['phone']['id']['corrected_right']}/{m['phone']['id']['corrected']}"])
    rows.append(["side detected", f"{m['clean']['side_ok']['ok']}/{m['clean']['side_ok']['total']}",
                 f"{m['phone']['side_ok']['ok']}/{m['phone']['side_ok']['total']}"])
    r = m["rare_names"]
    rows.append(["rare-name cards flagged (confident wrong names)",
                 f"{r['clean']['flagged']}/{r['clean']['cards']} ({r['clean']['confident_wrong_name']})",
                 f"{r['phone']['flagged']}/{r['phone']['cards']} ({r['phone']['confident_wrong_name']})"])
    b = m["printed_wrong_check_digit"]
    rows.append(["printed wrong check digit flagged", f"{b['clean']['flagged']}/{b['clean']['cards']}",
                 f"{b['phone']['flagged']}/{b['phone']['cards']}"])
    acc = md_table(["field", f"clean ({m['cards']} cards)", f"phone photo ({m['cards']} cards)"], rows)
    lrows = []
    for side in ("front", "back"):
        L = m["latency_ms"][side]
        lrows.append([side, L["total"]["median_ms"], L["total"]["p95_ms"], L["locate"]["median_ms"],
                      L["det"]["median_ms"], L["cls"]["median_ms"], L["rec"]["median_ms"]])
    b12 = m["latency_12mp_ms"]
    lrows.append([f"12-MP photo (either side; CPU median {b12.get('cpu_median_ms')} ms)", b12["median_ms"],
                  b12["p95_ms"], None, None, None, None])
    lat = md_table(["per side", "median ms", "p95 ms", "locate", "det", "cls", "rec (medians)"], lrows)
    spec = md_table(["specimen file", "side", "validation reasons"],
                    [[k, v["side"], ", ".join(v["reasons"])] for k, v in m["specimen"].items()])
    out = acc + "\n\n" + lat + "\n\n" + spec
    if "baseline" in m:
        from .baselines import ocr_markdown

        out += "\n\nBaseline (rapidocr default PP-OCRv6 + label regex), same renders:\n\n" + ocr_markdown(m["baseline"])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="benchmark: ID card OCR")
    p.add_argument("--n", type=int, default=100, help="persons (2 cards each, read clean and as a photo)")
    p.add_argument("--quick", action="store_true", help="smoke mode: 4 persons")
    p.add_argument("--baseline", action="store_true", help="also run rapidocr's default pipeline + regex")
    p.add_argument("--out", default=None)
    a = p.parse_args(list(argv) if argv is not None else None)
    result = run(4 if a.quick else a.n, a.quick, a.baseline)
    js, _ = write_results(NAME, result, a.out)
    sys.stderr.write(f"{NAME}: wrote {js}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
