"""End to end: decisions over synthetic applicants against their intended outcome, plus speed.

Applicants are built from the shared real clips and cards rendered with ocr.synthetic (fictitious
people, fixed seeds), the way api/demo.py builds its two examples:
- genuine: a live clip + a card whose portrait is a face crop from another moment of the same clip
  (intended: approved);
- impostor: the same clip + a card whose portrait is someone from faces/ (intended: rejected);
- poor capture: the genuine applicant with the clip darkened to near black, or with the card photo
  shrunk to a thumbnail (intended: review — a person, or a retake, decides);
- spoof: the two spoof clips (a still frame; a photo waved at the camera) with a card of the same
  face (intended: rejected).
Speed: per-stage and end-to-end latency of one genuine applicant through api.pipeline (engines built
once, outside the timed loop, one warm-up run), throughput with 1 and 2 worker processes, peak RSS.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from api.demo import face_crop, frame_at

from .common import latency_stats, make_result, md_table, peak_rss_mb, rate, require_testdata, run_main

NAME = "end_to_end"
SEED = 2026_0803
TODAY = date(2026, 6, 1)  # cards are rendered valid on this day; fixed so runs agree
OTHER_PEOPLE = ("faces/img3.jpg", "faces/img17.jpg", "faces/img30.jpg", "faces/img41.jpg", "faces/img50.jpg", "faces/img57.jpg")

# (clip, challenge, portrait moment in s): challenges are actions the clip really contains, in order
GENUINE = (
    ("liveportrait_d18.mp4", "open_mouth,blink", 6.9),  # the lead's demo applicant
    ("liveportrait_d3.mp4", "open_mouth", 2.8),
    ("liveportrait_d9.mp4", "blink", 11.0),
    ("liveportrait_d10.mp4", "open_mouth", 8.0),
    ("liveportrait_d12.mp4", "open_mouth", 6.5),
    ("liveportrait_d14.mp4", "blink", 12.0),
)
SPOOFS = (
    ("spoof_still_liveportrait_d18_frame0.mp4", "blink", 1.0),
    ("spoof_photo_jitter_liveportrait_d19_frame0.mp4", "blink", 0.0),
)
INTENDED = {"genuine": "approved", "impostor": "rejected", "poor_capture": "review", "spoof": "rejected"}


def portrait_from(matcher, image: np.ndarray) -> np.ndarray:
    return face_crop(matcher, image)


def darken(capture, factor: float = 0.08):
    """The whole capture filmed in the dark: every frame scaled to a few percent of its brightness."""

    def d(img):
        return None if img is None else np.clip(img.astype(np.float32) * factor, 0, 255).astype(np.uint8)

    return dataclasses.replace(
        capture, frames=tuple(d(f) for f in capture.frames), originals=tuple(d(o) for o in capture.originals)
    )


def thumbnail(card: np.ndarray, width: int = 200) -> np.ndarray:
    h = round(card.shape[0] * width / card.shape[1])
    return cv2.resize(card, (width, h), interpolation=cv2.INTER_AREA)


def build_applicants(root: Path, matcher, quick: bool) -> list[dict[str, Any]]:
    """Every applicant: kind, label, clip path, challenge, card images, and a capture transform."""
    from models.images import read_image_file
    from ocr.synthetic import random_person, render_back, render_front

    rng = np.random.default_rng(SEED)
    genuine = GENUINE[:1] if quick else GENUINE
    spoofs = SPOOFS[:1] if quick else SPOOFS
    apps: list[dict[str, Any]] = []

    def card(portrait: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        person = random_person(rng)
        return render_front(person, portrait), render_back(person)

    for i, (clip, challenge, moment) in enumerate(genuine):
        path = root / "liveness" / clip
        same = portrait_from(matcher, frame_at(path, moment))
        front, back = card(same)
        base = {"clip": clip, "challenge": challenge}
        apps.append(base | {"kind": "genuine", "label": clip, "front": front, "back": back})
        other = portrait_from(matcher, read_image_file(root / OTHER_PEOPLE[i % len(OTHER_PEOPLE)]))
        f2, b2 = card(other)
        apps.append(base | {"kind": "impostor", "label": f"{clip} + {OTHER_PEOPLE[i % len(OTHER_PEOPLE)]}", "front": f2, "back": b2})
        if not quick:
            if i % 2 == 0:
                apps.append(base | {"kind": "poor_capture", "label": f"{clip} darkened", "front": front, "back": back, "dark": True})
            else:
                apps.append(base | {"kind": "poor_capture", "label": f"{clip} card thumbnail", "front": thumbnail(front), "back": thumbnail(back)})
    for clip, challenge, moment in spoofs:
        path = root / "liveness" / clip
        front, back = card(portrait_from(matcher, frame_at(path, moment)))
        apps.append({"kind": "spoof", "label": clip, "clip": clip, "challenge": challenge, "front": front, "back": back})
    return apps


def verify(engines, root: Path, app: dict[str, Any], capture=None):
    from api.pipeline import VerificationInput, run_verification
    from liveness import load_capture, parse_actions

    if capture is None:
        capture = load_capture(root / "liveness" / app["clip"])
    if app.get("dark"):
        capture = darken(capture)
    inp = VerificationInput(capture=capture, actions=parse_actions(app["challenge"]), id_front=app["front"], id_back=app["back"])
    return run_verification(engines, inp, today=TODAY)


# --- throughput workers (module level: picklable) --------------------------------------------

_W: dict[str, Any] = {}


def _worker_init(root: str, app: dict[str, Any]) -> None:
    from api.pipeline import build_engines
    from api.settings import get_settings

    _W["engines"] = build_engines(get_settings())
    _W["root"] = Path(root)
    verify(_W["engines"], _W["root"], app)  # warm-up, outside the timed window


def _worker_run(app: dict[str, Any]) -> tuple[str, float]:
    return verify(_W["engines"], _W["root"], app).decision.outcome.value, peak_rss_mb()


def throughput(root: Path, app: dict[str, Any], workers: int, n: int) -> dict[str, Any]:
    """Applicants per second with `workers` processes, each with its own engines (decode included)."""
    # spawn, not fork: a forked copy of a process that already runs onnxruntime/mediapipe threads can
    # deadlock or die; each worker builds its own engines, as a real worker process would
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init, initargs=(str(root), app)) as pool:
        # make sure every worker has finished its initializer (engines + warm-up) before timing
        list(pool.map(_ready_wait, range(workers * 2)))
        t = time.perf_counter()
        done = list(pool.map(_worker_run, [app] * n))
        wall = time.perf_counter() - t
    return {"workers": workers, "applicants": n, "wall_s": round(wall, 2), "per_s": round(n / wall, 3),
            "outcomes": dict(Counter(o for o, _ in done)), "worker_peak_rss_mb": max(r for _, r in done)}


def _ready_wait(_: int) -> bool:
    time.sleep(0.2)  # spreads the probes over the workers so each one is initialised
    return True


# --- the benchmark ---------------------------------------------------------------------------


def run(quick: bool = False) -> dict[str, Any]:
    from api.pipeline import build_engines
    from api.settings import get_settings
    from liveness import load_capture

    root = require_testdata("liveness/labels.json", "faces/pairs.csv")
    t0 = time.perf_counter()
    t = time.perf_counter()
    engines = build_engines(get_settings())
    build_s = time.perf_counter() - t
    apps = build_applicants(root, engines.matcher, quick)

    # --- decisions
    rows = []
    for app in apps:
        try:
            rep = verify(engines, root, app)
            outcome, reasons = rep.decision.outcome.value, [str(r) for r in rep.decision.reasons]
        except Exception as e:  # noqa: BLE001 - an exception is an outcome to report, not to hide
            outcome, reasons = "error", [getattr(e, "code", type(e).__name__)]
            reasons = [str(r) for r in reasons]
        rows.append({"kind": app["kind"], "label": app["label"], "challenge": app["challenge"],
                     "intended": INTENDED[app["kind"]], "outcome": outcome, "correct": outcome == INTENDED[app["kind"]],
                     "reasons": reasons})
    by_kind = {}
    for kind in INTENDED:
        rs = [r for r in rows if r["kind"] == kind]
        if rs:
            c = Counter(r["outcome"] for r in rs)
            by_kind[kind] = {"n": len(rs), "intended": INTENDED[kind], "correct": sum(r["correct"] for r in rs),
                             "approved": c["approved"], "review": c["review"], "rejected": c["rejected"], "error": c["error"]}
    wrongly_approved = sum(1 for r in rows if r["kind"] != "genuine" and r["outcome"] == "approved")

    # --- latency of one genuine applicant (the demo's)
    demo = apps[0]
    path = root / "liveness" / demo["clip"]
    repeat = 1 if quick else 6
    decode_ms: list[float] = []
    stage: dict[str, list[float]] = {}
    verify(engines, root, demo)  # warm-up
    for _ in range(repeat):
        t = time.perf_counter()
        cap = load_capture(path)
        decode_ms.append((time.perf_counter() - t) * 1000)
        rep = verify(engines, root, demo, capture=cap)
        for k, v in rep.timings_ms.items():
            stage.setdefault(k, []).append(v)
    latency = {"decode_video": latency_stats(decode_ms)} | {k: latency_stats(v) for k, v in stage.items()}
    e2e = [d + tot for d, tot in zip(decode_ms, stage.get("total", []))]
    latency["end_to_end_with_decode"] = latency_stats(e2e)
    rss_main = peak_rss_mb()

    # --- throughput with 1 and 2 worker processes
    n = 1 if quick else 6
    tput = [throughput(root, demo, w, n) for w in ((1,) if quick else (1, 2))]

    metrics = {
        "applicants": len(rows),
        "correct": sum(r["correct"] for r in rows),
        "accuracy": rate(sum(r["correct"] for r in rows), len(rows)),
        "wrongly_approved": wrongly_approved,
        "by_kind": by_kind,
        "decisions": rows,
        "engine_build_s": round(build_s, 2),
        "latency_ms": latency,
        "throughput": tput,
        "peak_rss_mb": {"main_process": rss_main, "worker_processes_max": max(t["worker_peak_rss_mb"] for t in tput)},
    }
    return make_result(
        NAME, quick=quick, metrics=metrics, markdown=markdown(metrics),
        data={"clips": sorted({a["clip"] for a in apps}), "portraits_other": list(OTHER_PEOPLE),
              "cards": f"ocr.synthetic, seed {SEED}", "today": TODAY.isoformat()},
        models=None, elapsed_s=time.perf_counter() - t0,
    )


def markdown(m: dict[str, Any]) -> str:
    dec = md_table(
        ["applicants", "intended", "n", "as intended", "approved", "review", "rejected", "error"],
        [[k, v["intended"], v["n"], v["correct"], v["approved"], v["review"], v["rejected"], v["error"]] for k, v in m["by_kind"].items()],
    )
    lat_rows = [[k, v["n"], v["median_ms"], v["p95_ms"]] for k, v in m["latency_ms"].items()]
    lat = md_table(["stage (one genuine applicant)", "runs", "median ms", "p95 ms"], lat_rows)
    tp = md_table(["worker processes", "applicants", "wall s", "applicants / s"],
                  [[t["workers"], t["applicants"], t["wall_s"], t["per_s"]] for t in m["throughput"]])
    rss = m["peak_rss_mb"]
    wrong = [f"`{r['label']}` ({r['kind']}): {r['outcome']} — {', '.join(r['reasons']) or 'no reasons'}" for r in m["decisions"] if not r["correct"]]
    return (
        f"**Decisions**: {m['correct']} of {m['applicants']} synthetic applicants got their intended outcome; "
        f"{m['wrongly_approved']} non-genuine applicants approved.\n\n{dec}\n\n"
        + ("Not as intended:\n" + "\n".join(f"- {w}" for w in wrong) + "\n\n" if wrong else "")
        + f"**Latency** (engines built once in {m['engine_build_s']} s, outside the timed loop; one warm-up run):\n\n{lat}\n\n"
        + f"**Throughput** (each worker process builds its own engines and warms up before timing; video decode included):\n\n{tp}\n\n"
        + f"Peak RSS: {rss['main_process']} MiB (benchmark process, engines loaded), {rss['worker_processes_max']} MiB (largest worker)."
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(NAME, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
