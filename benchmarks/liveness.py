"""Liveness speed: load + analyse + decide per shared clip, plus two transcodes made at run time
(a 5 s 480p clip and a 10 s 1080p clip, the issue's two speed targets).
`python -m benchmarks.liveness [--quick] [--out DIR]`; writes liveness.{json,md}.

The checker is built and warmed up once, outside the timed loop.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from benchmarks.common import latency_stats, make_result, md_table, require_testdata, run_main
from liveness import Action, LivenessChecker, load_capture

TARGETS_S = {"d18_480p_5s.mp4": 0.8, "d18_1080p_10s.mp4": 1.5}
QUICK_CLIPS = ("dinoman_blink_example.mp4", "spoof_still_liveportrait_d18_frame0.mp4")


def transcode(src: Path, dst: Path, *, height: int, seconds: float) -> Path:
    """Upscale/downscale a shared clip to `height` (16:9 letterbox), looped to `seconds`, mp4v."""
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    width = round(height * 16 / 9) // 2 * 2
    vw = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for i in range(int(seconds * fps)):
        f = frames[i % len(frames)]
        s = height / f.shape[0]
        big = cv2.resize(f, (round(f.shape[1] * s), height), interpolation=cv2.INTER_LINEAR)
        canvas = np.zeros((height, width, 3), np.uint8)
        x0 = (width - big.shape[1]) // 2
        canvas[:, x0 : x0 + big.shape[1]] = big
        vw.write(canvas)
    vw.release()
    return dst


def run(quick: bool) -> dict[str, Any]:
    data = require_testdata("liveness") / "liveness"
    checker = LivenessChecker()
    checker.warm_up()
    repeats = 1 if quick else 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="idv-bench-") as tmp:
        clips = [data / c for c in QUICK_CLIPS] if quick else sorted(data.glob("*.mp4"))
        if not quick:
            clips.append(transcode(data / "liveportrait_d18.mp4", Path(tmp) / "d18_480p_5s.mp4", height=480, seconds=5))
            clips.append(transcode(data / "liveportrait_d18.mp4", Path(tmp) / "d18_1080p_10s.mp4", height=1080, seconds=10))
        for path in clips:
            times_ms = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                frames = load_capture(path)
                r = checker.check(frames, [Action.OPEN_MOUTH, Action.BLINK])
                times_ms.append((time.perf_counter() - t0) * 1000)
            st = latency_stats(times_ms)
            med_s = st["median_ms"] / 1000
            rows.append({
                "clip": path.name,
                "source": f"{frames.width}x{frames.height}@{frames.source_fps:.0f}",
                "duration_s": round(frames.duration_s, 2),
                "frames_analysed": r.frames_analysed,
                "median_s": round(med_s, 3),
                "p95_s": round(st["p95_ms"] / 1000, 3),
                "analysed_fps": round(r.frames_analysed / med_s, 1),
                "x_realtime": round(frames.duration_s / med_s, 2),
                "target_s": TARGETS_S.get(path.name),
                "meets_target": (med_s < TARGETS_S[path.name]) if path.name in TARGETS_S else None,
            })
    medians = [r["median_s"] * 1000 for r in rows]
    overall = latency_stats(medians)
    table = md_table(
        ["clip", "source", "duration s", "frames analysed", "median s", "p95 s", "analysed fps", "× realtime", "target s"],
        [[r["clip"], r["source"], r["duration_s"], r["frames_analysed"], r["median_s"], r["p95_s"],
          r["analysed_fps"], r["x_realtime"],
          "" if r["target_s"] is None else f"{r['target_s']} ({'met' if r['meets_target'] else 'missed'})"]
         for r in rows],
    )
    cfg = checker.config
    markdown = (
        f"Liveness check (decode + Face Mesh + decision) per clip, sampled at {cfg.sample_fps} fps, "
        f"analysed at {cfg.analysis_size} px, {repeats} repeat(s).\n\n{table}\n"
    )
    return make_result(
        "liveness",
        quick=quick,
        metrics={"clips": rows, "median_over_clips_s": round(overall["median_ms"] / 1000, 3),
                 "p95_over_clips_s": round(overall["p95_ms"] / 1000, 3),
                 "config": {"sample_fps": cfg.sample_fps, "analysis_size": cfg.analysis_size}},
        markdown=markdown,
        models=["face_mesh", "face_mesh_detector"],
        notes=[f"load average when measured: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"],
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("liveness", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
