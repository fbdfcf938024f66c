"""Liveness speed: load + analyse + decide per shared clip, plus a 10 s 1080p transcode made at run
time. `python -m benchmarks.liveness [--repeats N]`. Writes benchmarks/results/liveness.{json,md}.

The checker is built and warmed up once, outside the timed loop. Timings on a shared CPU are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from api.settings import get_settings
from liveness import Action, LivenessChecker, load_capture

RESULTS = Path(__file__).resolve().parent / "results"


def make_1080p(src: Path, dst: Path, seconds: float = 10.0) -> Path:
    """Upscale a shared clip to 1920x1080 (letterboxed), looping it to `seconds`, as H.264-ish mp4v."""
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    vw = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, (1920, 1080))
    n = int(seconds * fps)
    for i in range(n):
        f = frames[i % len(frames)]
        h, w = f.shape[:2]
        s = 1080 / h
        big = cv2.resize(f, (round(w * s), 1080), interpolation=cv2.INTER_LINEAR)
        canvas = np.zeros((1080, 1920, 3), np.uint8)
        x0 = (1920 - big.shape[1]) // 2
        canvas[:, x0 : x0 + big.shape[1]] = big
        vw.write(canvas)
    vw.release()
    return dst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    data = get_settings().testdata / "liveness"
    checker = LivenessChecker()
    checker.warm_up()
    rows = []
    with tempfile.TemporaryDirectory(prefix="idv-bench-") as tmp:
        clips = sorted(data.glob("*.mp4"))
        clips.append(make_1080p(data / "liveportrait_d18.mp4", Path(tmp) / "d18_1080p_10s.mp4"))
        for path in clips:
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                frames = load_capture(path)
                r = checker.check(frames, [Action.OPEN_MOUTH, Action.BLINK])
                times.append(time.perf_counter() - t0)
            rows.append({
                "clip": path.name, "source": f"{frames.width}x{frames.height}@{frames.source_fps:.0f}",
                "duration_s": round(frames.duration_s, 2), "frames_analysed": r.frames_analysed,
                "median_s": round(statistics.median(times), 3),
                "p95_s": round(float(np.percentile(times, 95)), 3),
                "analysed_fps": round(r.frames_analysed / statistics.median(times), 1),
                "realtime_x": round(frames.duration_s / statistics.median(times), 2),
            })
    all_times = [r["median_s"] for r in rows]
    out = {
        "benchmark": "liveness", "model_ids": checker.model_ids, "repeats": args.repeats,
        "config": {"sample_fps": checker.config.sample_fps, "analysis_size": checker.config.analysis_size},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "note": "CPU shared with other work while measured: timings are noisy",
        "clips": rows,
        "median_of_medians_s": round(statistics.median(all_times), 3),
        "p95_of_medians_s": round(float(np.percentile(all_times, 95)), 3),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "liveness.json").write_text(json.dumps(out, indent=1), encoding="utf-8")
    lines = ["# Liveness speed", "", f"Models: {', '.join(checker.model_ids.values())}; sample {checker.config.sample_fps} fps, "
             f"analysis {checker.config.analysis_size} px; {args.repeats} repeats; load avg {os.getloadavg()[0]:.1f} "
             "(shared CPU, noisy).", "",
             "| clip | source | duration s | frames analysed | median s | p95 s | analysed fps | x realtime |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['clip']} | {r['source']} | {r['duration_s']} | {r['frames_analysed']} | {r['median_s']} | "
                     f"{r['p95_s']} | {r['analysed_fps']} | {r['realtime_x']} |")
    lines += ["", f"Median over clips {out['median_of_medians_s']} s, p95 {out['p95_of_medians_s']} s."]
    (RESULTS / "liveness.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
