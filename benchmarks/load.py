"""Load on loopback: real verifications sent to the API served by uvicorn with 2 worker processes
(exactly what `idverify serve --workers 2` runs), at concurrency 1, 4 and 16.

Each request is a full verification: the real clip liveness/liveportrait_d18.mp4 (7.2 s) with a
challenge matching its actions, and both sides of a rendered card. Reports throughput, p50/p95/p99
latency, errors and the server processes' peak resident memory. The CPU may be shared with other
work while this runs: timings are noisy; the machine facts are in the result.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import REPO, latency_stats, make_result, md_table, require_testdata, run_main

CLIP = "liveness/liveportrait_d18.mp4"
ACTIONS = "open_mouth,blink"
WORKERS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (Linux /proc)."""
    total = 0.0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
            for t in Path(f"/proc/{p}/task").iterdir():
                stack.extend(int(c) for c in (t / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def _add_challenges(db_url: str, n: int) -> list[str]:
    from api.db import ChallengeRecord, make_engine, make_session_factory, unit_of_work, utcnow

    factory = make_session_factory(make_engine(db_url))
    ids = [secrets.token_urlsafe(16) for _ in range(n)]
    now = utcnow()
    with unit_of_work(factory) as s:
        for cid in ids:
            s.add(ChallengeRecord(id=cid, client_id="dev", nonce=secrets.token_urlsafe(24), actions=ACTIONS,
                                  issued_at=now, expires_at=now + timedelta(hours=2)))
    return ids


def run(quick: bool = False) -> dict[str, Any]:
    from api.auth import DEV_API_KEY

    root = require_testdata(CLIP)
    clip = root / CLIP
    levels = {1: 3, 4: 8, 16: 16} if quick else {1: 4, 4: 12, 16: 32}
    work = Path(tempfile.mkdtemp(prefix="idv-load-"))
    db_url = f"sqlite:///{work / 'idverify.sqlite3'}"
    port = _free_port()
    env = {**os.environ, "IDV_DATA_DIR": str(work), "IDV_RATE_LIMIT_PER_MINUTE": "0", "IDV_MODE": "development",
           "PYTHONPATH": str(REPO)}
    t_start = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(WORKERS), "--log-level", "warning"],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        else:
            raise RuntimeError("the server did not become ready")
        startup_s = time.perf_counter() - t_start
        time.sleep(3)  # the second worker may still be loading models after the first answers

        # inputs: the real clip and a rendered card (fictitious person)
        from api.demo import build_demo_cards
        from face_match import FaceMatcher, MatchConfig

        cards = build_demo_cards(root, work / "cards", FaceMatcher(MatchConfig()))
        front, back = (p.read_bytes() for p in cards["same_person"])
        video = clip.read_bytes()
        headers = {"Authorization": f"Bearer {DEV_API_KEY}"}
        challenges = _add_challenges(db_url, sum(levels.values()) + 2)

        def one(client: httpx.Client, challenge_id: str) -> tuple[float, int, str | None]:
            t = time.perf_counter()
            r = client.post(f"{base}/v1/verifications", headers=headers, data={"challenge_id": challenge_id},
                            files={"capture": ("c.mp4", video, "video/mp4"), "id_front": ("f.png", front, "image/png"),
                                   "id_back": ("b.png", back, "image/png")}, timeout=600)
            ms = (time.perf_counter() - t) * 1000
            if r.status_code == 200:
                return ms, r.status_code, r.json().get("decision")
            return ms, r.status_code, f"{r.status_code} {r.json().get('type', '?')}"

        with httpx.Client() as c:  # warm-up: one request per worker
            for _ in range(WORKERS):
                _, code, what = one(c, challenges.pop())
                # a server that refuses the realistic request measures nothing: stop instead of
                # reporting the speed of error responses
                if code != 200:
                    raise RuntimeError(f"warm-up verification failed: {what}")

        rows, metrics = [], {}
        for conc, n in levels.items():
            ids = [challenges.pop() for _ in range(n)]
            peak = [0.0]
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    peak[0] = max(peak[0], _rss_mb(server.pid))
                    time.sleep(0.2)

            th = threading.Thread(target=sample, daemon=True)
            th.start()
            t0 = time.perf_counter()
            with httpx.Client(limits=httpx.Limits(max_connections=conc)) as c, ThreadPoolExecutor(conc) as pool:
                results = list(pool.map(lambda cid: one(c, cid), ids))
            wall = time.perf_counter() - t0
            stop.set()
            th.join()
            lat = [ms for ms, code, _ in results if code == 200]
            errors = sum(1 for _, code, _ in results if code != 200)
            decisions: dict[str, int] = {}  # outcomes, and error responses by status and reason code
            for _, _, d in results:
                if d:
                    decisions[d] = decisions.get(d, 0) + 1
            st = latency_stats(lat) if lat else {}
            p99 = sorted(lat)[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))] if lat else None
            m = {"requests": n, "errors": errors, "throughput_rps": n / wall, "p50_ms": st.get("median_ms"),
                 "p95_ms": st.get("p95_ms"), "p99_ms": p99, "server_peak_rss_mb": peak[0], "decisions": decisions}
            metrics[f"c{conc}"] = m
            rows.append([conc, n, errors, f"{m['throughput_rps']:.2f}", _f(m["p50_ms"]), _f(m["p95_ms"]), _f(p99),
                         f"{peak[0]:.0f}"])
        metrics["startup_s"] = startup_s
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    md = md_table(["concurrency", "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms", "server RSS MB"], rows)
    return make_result(
        "load", quick=quick, metrics=metrics, markdown=md,
        data={"clip": CLIP, "challenge": ACTIONS, "cards": "ocr.synthetic (rendered)", "workers": WORKERS},
        notes=["uvicorn api.app:create_app --factory --workers 2 on 127.0.0.1; SQLite in a temp data dir",
               "CPU shared with other work while measured: noisy"],
    )


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def main(argv: list[str] | None = None) -> int:
    return run_main("load", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
