"""Batch throughput: `idverify batch --mode ocr` over N rendered card photos, with 1 and 2 workers.

    python -m benchmarks.batch [--n 500] [--quick] [--out DIR]

Cards: fictitious people (ocr.synthetic, fixed seed), portraits from shared/data faces/, both sides
rendered and photographed (phone_photo, light/medium distortions), JPEG files in a temp folder; the
fronts and backs alternate so both reading paths are exercised. Each worker count runs the real batch
command path (run_batch: process pool, engines built once per worker in its initializer, JSONL written
with fsync per card, CSV and report at the end) into a fresh output folder.

Reported per worker count: wall-clock cards/s for the whole run (pool start and model loading
included), steady-state cards/s (from the first finished card to the last, so model loading is
excluded: that is the warm-up), per-card worker latency median/p95, and the share of ID numbers
read exactly (a sanity check that speed was not bought with misreads).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from api.batch import RESULTS, BatchOptions, read_jsonl, run_batch
from benchmarks.common import NOISE_NOTE, latency_stats, make_result, md_table, require_testdata, write_results

SEED = 20260
DEFAULT_N = 100  # the all-benchmarks run must stay under 15 min; issue 7's 500-card run: --n 500
QUICK_N = 16
WORKER_COUNTS = (1, 2)


def render_cards(root: Path, n: int, testdata: Path) -> dict[str, dict[str, str]]:
    """n card photos in root; returns {file name: ground truth of the card's side}."""
    from models.images import read_image_file
    from ocr.synthetic import ground_truth, phone_photo, random_person, render_back, render_front

    rng = np.random.default_rng(SEED)
    faces = sorted((testdata / "faces").glob("img*.jpg"))[:12]
    portraits = [read_image_file(p) for p in faces]
    truth: dict[str, dict[str, str]] = {}
    for i in range(n):
        person = random_person(rng)
        side = "front" if i % 2 == 0 else "back"
        card = render_front(person, portraits[i % len(portraits)]) if side == "front" else render_back(person)
        photo = phone_photo(card, rng, strength="light" if i % 3 else "medium")
        name = f"card{i:04d}_{side}.jpg"
        cv2.imwrite(str(root / name), photo, [cv2.IMWRITE_JPEG_QUALITY, 90])
        truth[name] = {"side": side, **ground_truth(person)}
    return truth


class _Timeline:
    """A Progress sink that records when each card finished (the batch loop polls every <= 1 s)."""

    def __init__(self) -> None:
        self.points: list[tuple[float, int]] = []

    def start(self, total: int, skipped: int) -> None:
        self.points = [(time.perf_counter(), 0)]

    def update(self, done: int, errors: int) -> None:
        if done != self.points[-1][1]:
            self.points.append((time.perf_counter(), done))

    def close(self) -> None: ...


def run_once(cards: Path, out: Path, workers: int, truth: dict[str, dict[str, str]]) -> dict[str, Any]:
    timeline = _Timeline()
    t0 = time.perf_counter()
    summary = run_batch(
        BatchOptions(input=cards, out=out, mode="ocr", workers=workers, show_pii=True, progress="off"),
        progress=timeline,
    )
    wall = time.perf_counter() - t0
    records = read_jsonl(out / RESULTS)
    pts = timeline.points[1:]
    steady = None
    if len(pts) >= 2 and pts[-1][0] > pts[0][0]:
        steady = (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])
    fronts = [r for r in records if truth[r["id"]]["side"] == "front"]
    id_ok = sum(r.get("fields", {}).get("id_number") == truth[r["id"]]["id_number"] for r in fronts)
    return {
        "workers": workers,
        "cards": summary.total,
        "results": summary.results,
        "errors": summary.errors,
        "wall_s": round(wall, 2),
        "cards_per_s_wall": round(summary.total / wall, 3),
        "cards_per_s_steady": round(steady, 3) if steady else None,
        "first_card_s": round(pts[0][0] - t0, 2) if pts else None,
        "per_card_ms": latency_stats([r["timings_ms"]["total"] for r in records if "timings_ms" in r]),
        "front_id_number_exact": round(id_ok / len(fronts), 4) if fronts else None,
    }


def _markdown(runs: list[dict[str, Any]], scaling: float | None) -> str:
    rows = [
        (r["workers"], r["cards"], r["errors"], r["cards_per_s_steady"], r["cards_per_s_wall"], r["first_card_s"],
         r["per_card_ms"].get("median_ms"), r["per_card_ms"].get("p95_ms"), r["front_id_number_exact"])
        for r in runs
    ]
    return md_table(
        ("workers", "cards", "errors", "cards/s steady", "cards/s wall", "first card s", "per-card median ms",
         "per-card p95 ms", "front ID numbers exact"),
        rows,
    ) + (
        f"\n\nScaling 1 -> 2 workers (steady state): {scaling if scaling is not None else '–'}x; "
        "target >= 3.5 cards/s with 2 workers."
    )


def run(quick: bool = False, n: int | None = None) -> dict[str, Any]:
    testdata = require_testdata("faces/img1.jpg")
    n = n or (QUICK_N if quick else DEFAULT_N)
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="idv-bench-batch-") as tmp:
        cards = Path(tmp) / "cards"
        cards.mkdir()
        t = time.perf_counter()
        truth = render_cards(cards, n, testdata)
        render_s = time.perf_counter() - t
        runs = [run_once(cards, Path(tmp) / f"out_w{w}", w, truth) for w in WORKER_COUNTS]
    by_w = {r["workers"]: r for r in runs}
    scaling = None
    if by_w[1]["cards_per_s_steady"] and by_w[2]["cards_per_s_steady"]:
        scaling = round(by_w[2]["cards_per_s_steady"] / by_w[1]["cards_per_s_steady"], 3)
    markdown = _markdown(runs, scaling)
    return make_result(
        "batch",
        quick=quick,
        metrics={"runs": runs, "scaling_2_over_1": scaling, "target_cards_per_s_2_workers": 3.5},
        markdown=markdown,
        data={"cards": n, "seed": SEED, "render_s": round(render_s, 1), "portraits": "shared/data faces/img*.jpg (first 12)"},
        models=("ocr_det", "ocr_cls", "ocr_rec"),
        elapsed_s=time.perf_counter() - t_all,
        notes=(
            NOISE_NOTE,
            "Steady state excludes pool start-up and model loading (once per worker); wall includes them.",
            "Per-card latency is the worker's own time for decode + OCR + validation of one photo.",
        ),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="benchmark: batch OCR throughput with 1 and 2 workers")
    p.add_argument("--n", type=int, default=None, help=f"number of card photos (default {DEFAULT_N}; --quick {QUICK_N})")
    p.add_argument("--quick", action="store_true", help=f"smoke mode: {QUICK_N} cards")
    p.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results)")
    args = p.parse_args(argv)
    result = run(args.quick, n=args.n)
    js, md = write_results("batch", result, args.out)
    sys.stderr.write(f"batch: wrote {js} and {md}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
