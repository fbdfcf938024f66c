"""report.html for a batch run: counts by decision and reason, score distributions, and the cases a
person should look at (review/rejected; failed reads; wrong pair calls) with small inline thumbnails.

Self-contained (no network, no scripts): charts are inline SVG, thumbnails base64 JPEGs. The records
arrive already masked unless the run used --show-pii; card thumbnails are too small to read text.
"""

from __future__ import annotations

import base64
import math
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from models.reasons import describe

TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_CASE_ROWS = 500  # keeps the page light on a run of thousands; the CSV has every row
# the scores a reader compares across runs: stage verdict scores and the key OCR fields' confidence
# (every per-field confidence would be a wall of near-identical charts; the CSV has them all)
SCORE_KEYS = ("score", "similarity")
SCORE_PATHS = ("stages.ocr_front.fields.id_number.confidence", "stages.ocr_front.fields.name.confidence")
THUMB_ORDER = ("best_frame", "portrait", "selfie_with_card", "id_front", "image", "img_a", "img_b")


def _numeric_leaves(d: Any, prefix: str = "") -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    if isinstance(d, dict):
        for k, v in d.items():
            name = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict):
                out.extend(_numeric_leaves(v, name))
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                if (k in SCORE_KEYS and "quality" not in name) or name in SCORE_PATHS:
                    out.append((name, float(v)))
    return out


def score_series(results: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Every score-like number in the records' stages (plus total time), by its dotted path."""
    series: dict[str, list[float]] = {}
    for r in results:
        for name, v in _numeric_leaves(r.get("stages", {}), "stages"):
            series.setdefault(name, []).append(v)
        if isinstance(r.get("similarity"), (int, float)) and "stages.face_match.similarity" not in series:
            series.setdefault("similarity", []).append(float(r["similarity"]))
        total = r.get("timings_ms", {}).get("total")
        if isinstance(total, (int, float)):
            series.setdefault("timings_ms.total", []).append(float(total))
    return {k: v for k, v in sorted(series.items()) if v}


def histogram_svg(values: list[float], *, bins: int = 20, width: int = 360, height: int = 120) -> str:
    lo, hi = min(values), max(values)
    if 0.0 <= lo and hi <= 1.0 and hi > 0.05:
        lo, hi = 0.0, 1.0  # scores: a fixed 0-1 axis makes runs comparable
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / (hi - lo) * bins))] += 1
    top = max(counts) or 1
    bw = width / bins
    plot_h = height - 18
    bars = "".join(
        f'<rect x="{i * bw + 1:.1f}" y="{plot_h - c / top * plot_h:.1f}" width="{bw - 2:.1f}" '
        f'height="{c / top * plot_h:.1f}" fill="#4a78b5"><title>{lo + i * (hi - lo) / bins:.3g}–'
        f'{lo + (i + 1) * (hi - lo) / bins:.3g}: {c}</title></rect>'
        for i, c in enumerate(counts)
    )
    axis = (
        f'<text x="0" y="{height - 4}" font-size="10">{lo:.3g}</text>'
        f'<text x="{width}" y="{height - 4}" font-size="10" text-anchor="end">{hi:.3g}</text>'
        f'<text x="{width / 2}" y="{height - 4}" font-size="10" text-anchor="middle">max bin {top}</text>'
    )
    return f'<svg width="{width}" height="{height}" role="img" xmlns="http://www.w3.org/2000/svg">{bars}{axis}</svg>'


def _outcome(r: dict[str, Any], mode: str) -> str:
    if mode == "full":
        return str(r.get("decision", "unknown"))
    if mode == "match":
        if r.get("correct") is False:
            return "wrong"
        return "match" if r.get("passed") else "no match"
    return "passed" if r.get("passed") else ("no card" if not r.get("card_found") else "flagged")


def _is_case(r: dict[str, Any], mode: str) -> bool:
    if mode == "full":
        return r.get("decision") in ("review", "rejected")
    if mode == "match":
        return r.get("correct") is False or (r.get("correct") is None and not r.get("passed"))
    return not r.get("passed")


def _reasons(r: dict[str, Any]) -> list[str]:
    return [str(x) for x in r.get("reasons", [])]


def _thumbs(out: Path, r: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    roles = r.get("thumbnails") or []
    for role in sorted(roles, key=lambda x: THUMB_ORDER.index(x) if x in THUMB_ORDER else 99):
        p = out / "thumbs" / f"{r.get('key')}_{role}.jpg"
        if p.is_file():
            found.append((role, "data:image/jpeg;base64," + base64.b64encode(p.read_bytes()).decode()))
    return found


def _case_fields(r: dict[str, Any]) -> str:
    f = r.get("fields") or {}
    return " · ".join(str(f[k]) for k in ("name", "id_number") if f.get(k))


def build_context(out: Path, results: list[dict], errors: list[dict], *, mode: str, show_pii: bool, summary: Any) -> dict[str, Any]:
    outcomes = Counter(_outcome(r, mode) for r in results)
    reasons = Counter(x for r in results for x in _reasons(r))
    error_codes = Counter(str(e.get("error", {}).get("code", "?")) for e in errors)
    cases_all = [r for r in results if _is_case(r, mode)]
    # the most urgent first: highest priority, then rejected before review
    cases_all.sort(key=lambda r: (-(r.get("priority") or 0), r.get("decision") != "rejected", str(r.get("id"))))
    cases = [
        {
            "id": r.get("id"),
            "outcome": _outcome(r, mode),
            "reasons": [(x, describe(x)) for x in _reasons(r)],
            "fields": _case_fields(r),
            "similarity": r.get("similarity") if r.get("similarity") is not None else
            (r.get("stages", {}).get("face_match") or {}).get("similarity"),
            "thumbs": _thumbs(out, r),
        }
        for r in cases_all[:MAX_CASE_ROWS]
    ]
    total = max(1, len(results))
    return {
        "mode": mode,
        "show_pii": show_pii,
        "generated": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "summary": summary.to_dict() if summary is not None else {},
        "n_results": len(results),
        "n_errors": len(errors),
        "outcomes": [(k, v, 100.0 * v / total) for k, v in outcomes.most_common()],
        "reasons": [(k, describe(k), v) for k, v in reasons.most_common()],
        "error_codes": [(k, describe(k), v) for k, v in error_codes.most_common()],
        "charts": [(k, len(v), histogram_svg(v)) for k, v in score_series(results).items()],
        "cases": cases,
        "cases_total": len(cases_all),
        "max_case_rows": MAX_CASE_ROWS,
        "errors": [
            {"id": e.get("id"), "code": e.get("error", {}).get("code"), "detail": e.get("error", {}).get("detail")}
            for e in errors[:MAX_CASE_ROWS]
        ],
    }


def render_report(out: Path, results: list[dict], errors: list[dict], *, mode: str, show_pii: bool, summary: Any = None) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    return env.get_template("batch_report.html").render(
        **build_context(out, results, errors, mode=mode, show_pii=show_pii, summary=summary)
    )


def write_report(out: Path, results: list[dict], errors: list[dict], *, mode: str, show_pii: bool, summary: Any = None) -> Path:
    from .batch import REPORT, _atomic_write

    path = out / REPORT
    _atomic_write(path, render_report(out, results, errors, mode=mode, show_pii=show_pii, summary=summary))
    return path
