"""`python -m benchmarks [name ...] [--quick] [--out DIR]`: run the benchmarks, write results, README.

Each benchmark runs in its own child process (`python -m benchmarks --child NAME`): a crash, a hang
(per-benchmark timeout) or a missing module is reported and the runner carries on; peak memory is
per benchmark; and timings are not disturbed by what an earlier benchmark left in memory.

A child calls the module's `run(quick) -> dict` when it has one (and writes the result with
common.write_results), else its `main(argv)` with `--quick`/`--out` (the module writes its own files),
else a `main()` that parses sys.argv itself (full runs only; its files are copied to --out).

A full run into the default folder regenerates the README section; a `--quick` run writes to a
temporary folder unless --out is given, so smoke runs never overwrite the committed results.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import summary
from .common import REPO, RESULTS_DIR, RESULTS_ENV, make_result, md_table, now_utc, to_jsonable, write_results

# run order: the accuracy/speed of each stage, then the side-by-side, then the whole pipeline
BENCHMARKS = ("liveness", "ocr", "face_match", "baselines", "end_to_end", "batch", "load")
TIMEOUT_FULL_S = 600.0
TIMEOUT_QUICK_S = 240.0


def _child(name: str, quick: bool, out: Path) -> int:
    """Run one benchmark in this (child) process."""
    os.environ[RESULTS_ENV] = str(out)
    if importlib.util.find_spec(f"benchmarks.{name}") is None:
        sys.stderr.write(f"benchmark {name!r}: module benchmarks/{name}.py does not exist\n")
        return 3
    mod = importlib.import_module(f"benchmarks.{name}")
    t = time.perf_counter()
    if _takes_quick(getattr(mod, "run", None)):
        result = mod.run(quick=quick)
        if isinstance(result, dict):
            if "markdown" not in result or "machine" not in result:
                # a bare metrics dict: wrap it so the file still says where and when it was measured
                result = make_result(
                    name, quick=quick, metrics=result, markdown=str(result.get("markdown", "")) or _fallback_md(result)
                )
            if result.get("elapsed_s") is None:
                result["elapsed_s"] = round(time.perf_counter() - t, 1)
            write_results(name, result, out)
        return 0
    main_fn = getattr(mod, "main", None)
    if callable(main_fn) and inspect.signature(main_fn).parameters:
        argv = (["--quick"] if quick else []) + ["--out", str(out)]
        try:
            rc = main_fn(argv)
        except SystemExit as e:  # argparse without --out: retry with the env var only
            if e.code != 2:
                raise
            rc = main_fn(["--quick"] if quick else [])
        return int(rc or 0)
    if callable(main_fn):  # main() parsing sys.argv itself, writing to benchmarks/results/
        if quick:
            sys.stderr.write(f"benchmark {name!r}: main() takes no argv, so it has no --quick mode; skipped\n")
            return 4
        sys.argv = [f"benchmarks.{name}"]
        rc = main_fn()
        for ext in (".json", ".md"):
            src = RESULTS_DIR / f"{name}{ext}"
            if src.is_file() and out.resolve() != RESULTS_DIR.resolve():
                shutil.copyfile(src, out / src.name)
        return int(rc or 0)
    sys.stderr.write(f"benchmark {name!r}: module has neither run(quick) nor main(argv)\n")
    return 3


def _takes_quick(fn: Any) -> bool:
    """run(quick=...) callable with only that argument: a `quick` parameter, every other one defaulted."""
    if not callable(fn):
        return False
    params = inspect.signature(fn).parameters
    return "quick" in params and all(
        p.default is not inspect.Parameter.empty for n, p in params.items() if n != "quick"
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    )


def _fallback_md(metrics: dict[str, Any]) -> str:
    flat = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float, str)) or v is None]
    return md_table(["metric", "value"], flat) if flat else ""


def run_one(name: str, *, quick: bool, out: Path, timeout_s: float) -> dict[str, Any]:
    """Run one benchmark in a child process; returns its status row (never raises)."""
    js = out / f"{name}.json"
    before = js.stat().st_mtime if js.exists() else None
    cmd = [sys.executable, "-m", "benchmarks", "--child", name, "--out", str(out)] + (["--quick"] if quick else [])
    t = time.perf_counter()
    env = dict(os.environ, **{RESULTS_ENV: str(out)})
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
        rc, err = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as e:
        rc, err = None, (e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or ""))
    elapsed = round(time.perf_counter() - t, 1)
    fresh = js.exists() and (before is None or js.stat().st_mtime > before)
    if rc is None:
        status, detail = "timeout", f"no result within {timeout_s:.0f} s"
    elif rc == 3:
        status, detail = "missing", (err.strip().splitlines() or ["not available"])[-1]
    elif rc == 4:
        status, detail = "skipped", (err.strip().splitlines() or ["no quick mode"])[-1]
    elif rc != 0:
        status, detail = "failed", (err.strip().splitlines() or [f"exit code {rc}"])[-1][:300]
    elif not fresh:
        status, detail = "failed", f"finished but wrote no {js.name}"
    else:
        status, detail = "ok", ""
    return {"benchmark": name, "status": status, "detail": detail, "elapsed_s": elapsed, "stderr_tail": err[-2000:]}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description="run the idverify benchmarks")
    p.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    p.add_argument("--quick", action="store_true", help="smoke mode: a handful of inputs each")
    p.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results/)")
    p.add_argument("--timeout", type=float, default=None, help="per-benchmark timeout in seconds")
    p.add_argument("--no-readme", action="store_true", help="do not regenerate the README section")
    p.add_argument("--child", metavar="NAME", help=argparse.SUPPRESS)
    args = p.parse_args(list(argv) if argv is not None else None)

    if args.child:
        return _child(args.child, args.quick, args.out or RESULTS_DIR)

    names = list(args.names) or list(BENCHMARKS)
    out = args.out or (Path(tempfile.mkdtemp(prefix="idverify-bench-quick-")) if args.quick else RESULTS_DIR)
    out.mkdir(parents=True, exist_ok=True)
    timeout = args.timeout or (TIMEOUT_QUICK_S if args.quick else TIMEOUT_FULL_S)
    rows = []
    t0 = time.perf_counter()
    for name in names:
        sys.stderr.write(f"[benchmarks] {name} ...\n")
        row = run_one(name, quick=args.quick, out=out, timeout_s=timeout)
        sys.stderr.write(f"[benchmarks] {name}: {row['status']} in {row['elapsed_s']} s {row['detail']}\n")
        if row["status"] != "ok" and row["stderr_tail"]:
            sys.stderr.write(row["stderr_tail"][-800:] + "\n")
        rows.append(row)
    run_doc = {
        "date": now_utc(),
        "quick": args.quick,
        "elapsed_s": round(time.perf_counter() - t0, 1),
        "benchmarks": [{k: v for k, v in r.items() if k != "stderr_tail"} for r in rows],
    }
    (out / "summary.json").write_text(json.dumps(to_jsonable(run_doc), indent=2) + "\n", encoding="utf-8")
    failures = {r["benchmark"]: f"{r['status']}: {r['detail']}" for r in rows if r["status"] not in ("ok", "skipped")}
    if not args.no_readme and not args.quick and out.resolve() == RESULTS_DIR.resolve():
        summary.update_readme(summary.render_section(out, failures))
    sys.stderr.write(f"[benchmarks] done in {run_doc['elapsed_s']} s; results in {out}\n")
    return 0 if not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
