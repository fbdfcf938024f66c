"""The README's "Performance and accuracy" section, regenerated from the result files.

Only the text between `<!-- benchmarks:begin -->` and `<!-- benchmarks:end -->` is replaced; the rest
of README.md is never touched. `python -m benchmarks.summary` rebuilds it from benchmarks/results/
without re-running anything.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import NOISE_NOTE, REPO, RESULTS_DIR

BEGIN = "<!-- benchmarks:begin -->"
END = "<!-- benchmarks:end -->"
README = REPO / "README.md"

# display order and headings; unknown result files follow in name order
TITLES: dict[str, str] = {
    "end_to_end": "End to end: decisions, latency, throughput, memory",
    "liveness": "Liveness",
    "ocr": "ID card OCR",
    "face_match": "Face match",
    "baselines": "Side by side with the alternatives",
    "batch": "Batch (CLI over a folder)",
    "load": "HTTP API under load",
}
SKIP = {"summary"}


def load_results(results_dir: Path = RESULTS_DIR) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for js in sorted(results_dir.glob("*.json")):
        if js.stem in SKIP:
            continue
        try:
            doc = json.loads(js.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(doc, dict):
            out[js.stem] = doc
    return out


def _ordered(names: Sequence[str]) -> list[str]:
    known = [n for n in TITLES if n in names]
    return known + sorted(n for n in names if n not in TITLES)


def _demote_headings(md: str) -> str:
    """A result's own '# Title' lines become bold text: the README section keeps its heading levels."""
    return re.sub(r"(?m)^#{1,6}\s+(.+?)\s*$", r"**\1**\n", md)


def _body(name: str, doc: dict[str, Any], results_dir: Path) -> str:
    md = results_dir / f"{name}.md"
    if md.is_file():
        return _demote_headings(md.read_text(encoding="utf-8").strip())
    return _demote_headings(str(doc.get("markdown") or "_(no markdown table in the result)_").strip())


def render_section(results_dir: Path = RESULTS_DIR, failures: dict[str, str] | None = None) -> str:
    """Markdown for the README section: provenance, then one sub-section per benchmark."""
    results = load_results(results_dir)
    lines: list[str] = []
    if not results and not failures:
        return "Not measured yet: run `.venv/bin/python -m benchmarks`."
    # machine and models from every result that records them (some modules record less than others)
    m = next((d["machine"] for d in results.values() if isinstance(d.get("machine"), dict) and d["machine"].get("cpu_model")), {})
    models: dict[str, Any] = {}
    for d in results.values():
        if isinstance(d.get("models"), dict):
            models.update({k: v for k, v in d["models"].items() if isinstance(v, dict) and v.get("model_id")})
    dates = sorted(str(d.get("date", ""))[:10] for d in results.values() if d.get("date"))
    span = dates[0] if dates and dates[0] == dates[-1] else (f"{dates[0]} to {dates[-1]}" if dates else "?")
    lines.append(
        f"Produced by `.venv/bin/python -m benchmarks` (do not edit by hand) on {span}: "
        f"{m.get('cpu_model', '?')}, {m.get('usable_cores', '?')} cores, {m.get('memory_gib', '?')} GiB, "
        f"Python {m.get('python', '?')}. Full JSON (machine, package versions, model ids and sha256, data, "
        f"per-item figures) in `benchmarks/results/`. {NOISE_NOTE}"
    )
    if models:
        lines.append("")
        lines.append("Models: " + ", ".join(f"`{v.get('model_id')}`" for v in models.values()) + ".")
    for name in _ordered(list(results)):
        doc = results[name]
        lines += ["", f"### {TITLES.get(name, name)}", ""]
        if doc.get("quick"):
            lines.append("_This result is from a quick smoke run, not the full benchmark._\n")
        lines.append(_body(name, doc, results_dir))
    if failures:
        lines += ["", "### Not measured in the last run", ""]
        lines += [f"- `{n}`: {why}" for n, why in sorted(failures.items())]
    return "\n".join(lines).strip()


def replace_between_markers(text: str, section: str) -> str:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"README has no {BEGIN} ... {END} markers in order; not touching it")
    return text[: start + len(BEGIN)] + "\n" + section.strip() + "\n" + text[end:]


def update_readme(section: str, readme: Path = README) -> bool:
    """Replace the marked section; returns True when the file changed."""
    old = readme.read_text(encoding="utf-8")
    new = replace_between_markers(old, section)
    if new != old:
        readme.write_text(new, encoding="utf-8")
    return new != old


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="regenerate the README benchmark section from saved results")
    p.add_argument("--results", type=Path, default=RESULTS_DIR)
    p.add_argument("--readme", type=Path, default=README)
    args = p.parse_args(list(argv) if argv is not None else None)
    changed = update_readme(render_section(args.results), args.readme)
    sys.stderr.write(f"README section {'updated' if changed else 'unchanged'}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
