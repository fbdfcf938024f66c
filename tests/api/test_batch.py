"""`idverify batch` on a tiny real batch: shared/data clips and faces, rendered cards, broken files.

Each applicant must appear exactly once in results or errors; a second run does no work; a run
interrupted midway and resumed ends with the same results as one uninterrupted run; report.html
renders in headless Chromium (screenshot in tests/artifacts).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from api.batch import (
    ERRORS,
    META,
    RESULTS,
    RESULTS_CSV,
    REPORT,
    BatchOptions,
    BatchUsageError,
    discover,
    read_jsonl,
    run_batch,
    write_results_csv,
)
from api.cli import main

REPO = Path(__file__).resolve().parents[2]
D18, DINO = "liveness/liveportrait_d18.mp4", "liveness/dinoman_blink_example.mp4"
EXPECTED_ERRORS = {"d_corrupt_front": "input.unreadable", "e_bad_video": "input.wrong_type", "f_empty": "input.missing"}
EXPECTED_RESULTS = {"a_same_person", "b_other_person", "c_missing_back"}


def idverify_cmd() -> list[str]:
    exe = REPO / ".venv" / "bin" / "idverify"
    # the console script exists once the project is installed editable (scripts/setup)
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "api.cli"]


def _write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


@pytest.fixture(scope="module")
def batch_input(testdata, tmp_path_factory) -> Path:
    """Six applicant folders: three the pipeline can decide, three broken ones. The cards are the
    demo's (api.demo): a fictitious person whose portrait is the clip's own face, and another person."""
    from api.demo import build_demo_cards
    from face_match import FaceMatcher

    root = tmp_path_factory.mktemp("batch_in")
    cards = build_demo_cards(testdata, tmp_path_factory.mktemp("cards"), FaceMatcher())

    def applicant(name: str, video: str | None, challenge: str | None, card: str, *, back: bool = True) -> Path:
        d = root / name
        d.mkdir()
        front_png, back_png = cards[card]
        shutil.copy(front_png, d / "front.png")
        if back:
            shutil.copy(back_png, d / "back.png")
        if video:
            os.symlink(testdata / video, d / "video.mp4")
        if challenge:
            (d / "challenge.txt").write_text(challenge + "\n")
        return d

    applicant("a_same_person", D18, "open_mouth,blink", "same_person")
    applicant("b_other_person", DINO, "blink", "other_person")
    applicant("c_missing_back", DINO, "blink", "same_person", back=False)
    d = applicant("d_corrupt_front", DINO, "blink", "same_person")
    (d / "front.png").write_bytes((d / "front.png").read_bytes()[:300])  # a truncated PNG
    d = applicant("e_bad_video", None, "blink", "same_person")
    (d / "video.mp4").write_bytes(b"\x00\x01 this is not a video " * 64)
    (root / "f_empty").mkdir()
    (root / "f_empty" / "challenge.txt").write_text("blink")
    return root


def _ids(records: list[dict]) -> list[str]:
    return [r["id"] for r in records]


def _stable(record: dict) -> dict:
    """A record without timings (they differ run to run)."""
    if isinstance(record, dict):
        return {k: _stable(v) for k, v in record.items() if not (k.endswith("_ms") or k == "timings_ms")}
    if isinstance(record, list):
        return [_stable(v) for v in record]
    return record


def _by_id(out: Path) -> dict[str, dict]:
    return {r["id"]: _stable(r) for r in read_jsonl(out / RESULTS) + read_jsonl(out / ERRORS)}


@pytest.fixture(scope="module")
def full_run(batch_input, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch_out") / "run"
    summary = run_batch(BatchOptions(input=batch_input, out=out, mode="full", workers=2, progress="plain"))
    return out, summary


def test_every_applicant_appears_exactly_once(full_run):
    out, summary = full_run
    results, errors = read_jsonl(out / RESULTS), read_jsonl(out / ERRORS)
    assert sorted(_ids(results)) == sorted(EXPECTED_RESULTS)
    assert {e["id"]: e["error"]["code"] for e in errors} == EXPECTED_ERRORS
    assert summary.total == 6 and summary.processed == 6 and not summary.interrupted
    by_id = {r["id"]: r for r in results}
    for r in results:
        assert r["decision"] in ("approved", "rejected", "review")
        assert r["inputs"]["id_front"].endswith("front.png")
        assert "*" in r["fields"].get("id_number", "*")  # PII masked by default
    # the same JSON `idverify verify` prints, plus the identifiers
    assert {"decision", "reasons", "stages", "fields", "timings_ms", "id", "key"} <= by_id["a_same_person"].keys()
    assert by_id["a_same_person"]["decision"] == "approved", by_id["a_same_person"]["reasons"]
    assert by_id["b_other_person"]["decision"] != "approved"
    assert by_id["c_missing_back"]["decision"] != "approved"  # no back side: never approved
    assert "ocr_back" not in by_id["c_missing_back"]["stages"]
    # a person can load the CSV: one row per result, with the decision column
    with (out / RESULTS_CSV).open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["id"] for r in rows) == sorted(EXPECTED_RESULTS)
    assert {r["id"]: r["decision"] for r in rows} == {k: v["decision"] for k, v in by_id.items()}
    assert (out / REPORT).stat().st_size > 1000


def test_second_run_does_no_work(batch_input, full_run):
    out, _ = full_run
    before = (out / RESULTS).read_bytes(), (out / ERRORS).read_bytes()
    t = time.monotonic()
    summary = run_batch(BatchOptions(input=batch_input, out=out, mode="full", workers=2, progress="off"))
    assert summary.processed == 0 and summary.skipped == 6
    assert ((out / RESULTS).read_bytes(), (out / ERRORS).read_bytes()) == before
    assert time.monotonic() - t < 15  # no models loaded: hashing and the report only


def test_interrupted_run_resumes_to_the_same_results(batch_input, full_run, tmp_path):
    ref_out, _ = full_run
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [*idverify_cmd(), "batch", str(batch_input), "--out", str(out), "--workers", "1", "--progress", "plain"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        # a test run started in the background (`cmd &` without job control) inherits SIGINT
        # ignored, and Python then never raises KeyboardInterrupt: give the child a terminal's default
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / RESULTS).exists() and (out / RESULTS).read_bytes().count(b"\n") >= 1:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C on a terminal signals the whole process group
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err.decode()[-2000:]
    partial = _by_id(out)
    assert 1 <= len(partial) < 6
    assert all(line.endswith(b"\n") for line in (out / RESULTS).read_bytes().splitlines(keepends=True))
    assert (out / RESULTS_CSV).exists() and (out / REPORT).exists()  # consistent output after Ctrl-C
    # a kill during a write leaves a cut line: it must be discarded, not parsed nor kept
    with (out / RESULTS).open("ab") as f:
        f.write(b'{"id":"a_same_person","key":"cut-off-mid')
    summary = run_batch(BatchOptions(input=batch_input, out=out, mode="full", workers=1, progress="off"))
    assert summary.skipped == len(partial) and summary.processed == 6 - len(partial)
    assert _by_id(out) == _by_id(ref_out)
    all_ids = _ids(read_jsonl(out / RESULTS)) + _ids(read_jsonl(out / ERRORS))
    assert sorted(all_ids) == sorted(EXPECTED_RESULTS | EXPECTED_ERRORS.keys())


def test_report_renders_in_chromium(full_run, artifacts_dir):
    from playwright.sync_api import sync_playwright

    out, _ = full_run
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto((out / REPORT).as_uri())
            assert "batch report" in page.title()
            outcomes = page.locator("#outcomes").inner_text()
            assert "approved" in outcomes and ("review" in outcomes or "rejected" in outcomes)
            assert page.locator("#reasons").inner_text().count(".") >= 1
            assert page.locator(".chart svg").count() >= 1
            case_rows = page.locator("#cases tr")
            assert case_rows.count() >= 3  # header + b_other_person + c_missing_back
            # thumbnails are embedded images that decoded
            widths = page.locator("#cases img").evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
            assert widths and all(w > 0 for w in widths)
            errors_text = page.locator("#error-list").inner_text()
            assert all(code in errors_text for code in EXPECTED_ERRORS.values())
            page.screenshot(path=str(artifacts_dir / "batch_report.png"), full_page=True)
        finally:
            browser.close()
    html = (out / REPORT).read_text(encoding="utf-8")
    results = read_jsonl(out / RESULTS)
    # masked report: no unmasked ID number appears anywhere in it
    assert all(("*" in r["fields"].get("id_number", "*")) for r in results)
    assert "Personal data (names, ID numbers, addresses) is masked" in html


def test_ocr_mode_from_a_manifest(testdata, tmp_path):
    from models.images import read_image_file
    from ocr.synthetic import ground_truth, random_person, render_back, render_front

    rng = np.random.default_rng(11)
    portrait = read_image_file(testdata / "faces/img1.jpg")
    person = random_person(rng)
    _write(tmp_path / "in" / "card1.png", render_front(person, portrait))
    _write(tmp_path / "in" / "card1_back.png", render_back(person))
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    rows = [
        {"id": "c1", "image": "card1.png", "back": "card1_back.png"},
        {"id": "broken", "image": "broken.png"},
        {"id": "missing", "image": "no_such_file.jpg"},
    ]
    manifest = tmp_path / "in" / "cards.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    out = tmp_path / "out"
    code = main(["batch", str(manifest), "--out", str(out), "--mode", "ocr", "--workers", "1", "--show-pii", "--progress", "off"])
    assert code == 0
    results, errors = read_jsonl(out / RESULTS), read_jsonl(out / ERRORS)
    assert _ids(results) == ["c1"]
    assert {e["id"]: e["error"]["code"] for e in errors} == {
        "broken": "input.unreadable", "missing": "input.missing", "line-4": "input.invalid",
    }
    r = results[0]
    truth = ground_truth(person)
    assert r["fields"]["id_number"] == truth["id_number"]  # --show-pii: unmasked
    assert {"ocr_front", "ocr_back", "validation"} <= r["stages"].keys()
    assert json.loads((out / META).read_text())["show_pii"] is True
    # resuming with other PII settings would mix masked and unmasked lines: refused
    assert main(["batch", str(manifest), "--out", str(out), "--mode", "ocr", "--progress", "off"]) == 2


def test_match_mode_scores_pairs(testdata, tmp_path):
    faces = testdata / "faces"
    pairs = tmp_path / "pairs.csv"
    with (faces / "pairs.csv").open() as f:
        rows = list(csv.DictReader(f))
    same = next(r for r in rows if r["same"] in ("1", "True", "true"))
    diff = next(r for r in rows if r["same"] not in ("1", "True", "true"))
    pairs.write_text(
        "img_a,img_b,same\n"
        f"{faces / same['img_a']},{faces / same['img_b']},1\n"
        f"{faces / diff['img_a']},{faces / diff['img_b']},0\n"
        f"{faces / 'img1.jpg'},{faces / 'no_such.jpg'},1\n"
    )
    out = tmp_path / "out"
    code = main(["batch", str(pairs), "--out", str(out), "--mode", "match", "--workers", "1", "--progress", "off"])
    assert code == 0
    results, errors = read_jsonl(out / RESULTS), read_jsonl(out / ERRORS)
    assert len(results) == 2 and len(errors) == 1 and errors[0]["error"]["code"] == "input.missing"
    for r in results:
        assert 0.0 <= r["stages"]["face_match"]["score"] <= 1.0
        assert r["correct"] in (True, False)
    assert sum(r["correct"] for r in results) >= 1


def test_folder_layout_is_recognised(batch_input):
    items = {i.id: i for i in discover(batch_input, "full")}
    assert set(items) == EXPECTED_RESULTS | EXPECTED_ERRORS.keys()
    a = items["a_same_person"]
    assert set(a.files) == {"id_front", "id_back", "video"} and a.options["challenge"] == "open_mouth,blink"
    assert "id_back" not in items["c_missing_back"].files
    assert items["f_empty"].files == {}


def test_usage_errors_exit_non_zero(tmp_path, capsys):
    assert main(["batch", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "input.missing" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["batch", str(tmp_path / "empty"), "--out", str(tmp_path / "o2"), "--progress", "off"]) == 2
    (tmp_path / "list.txt").write_text("x")
    assert main(["batch", str(tmp_path / "list.txt"), "--out", str(tmp_path / "o3")]) == 2
    with pytest.raises(BatchUsageError):
        discover(tmp_path / "empty", "match")
    with pytest.raises(SystemExit):
        main(["batch", str(tmp_path), "--out", str(tmp_path / "o4"), "--mode", "nonsense"])


def test_all_inputs_unreadable_exits_non_zero(tmp_path):
    d = tmp_path / "in" / "only"
    d.mkdir(parents=True)
    (d / "front.jpg").write_bytes(b"not an image at all")
    # no capture: every applicant fails before any model runs
    assert main(["batch", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--workers", "1", "--progress", "off"]) == 2
    assert [e["error"]["code"] for e in read_jsonl(tmp_path / "out" / ERRORS)] == ["input.missing"]


def test_devices_and_non_boolean_flags_are_per_applicant_errors(tmp_path):
    """A device path (/dev/zero hashes forever) and mirrored="NaN" are refused per applicant, fast,
    without loading a model for them."""
    inp = tmp_path / "in"
    inp.mkdir()
    rows = [
        {"id": "dev_video", "front": "/dev/zero", "back": "/dev/zero", "video": "/dev/zero", "challenge": "blink"},
        {"id": "nan_flag", "front": "f.png", "video": "v.mp4", "challenge": "blink", "mirrored": "NaN"},
        {"id": "minus_one", "front": "f.png", "video": "v.mp4", "challenge": "blink", "manual": -1},
    ]
    manifest = inp / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    t = time.monotonic()
    code = main(["batch", str(manifest), "--out", str(out), "--workers", "1", "--progress", "off"])
    assert time.monotonic() - t < 120
    assert code != 0  # no input could be read
    errors = {e["id"]: e["error"] for e in read_jsonl(out / ERRORS)}
    assert errors["dev_video"]["code"] == "input.wrong_type" and "regular file" in errors["dev_video"]["detail"]
    assert errors["nan_flag"]["code"] == "input.invalid" and "mirrored" in errors["nan_flag"]["detail"]
    assert errors["minus_one"]["code"] == "input.invalid" and "manual" in errors["minus_one"]["detail"]


def test_manifests_that_are_not_small_regular_text_are_refused_at_once(tmp_path, capsys):
    """/dev/zero as a manifest used to be read until the kernel killed the process (20 GB); a FIFO
    blocked forever; a CSV field over 128 KiB was a traceback."""
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    long_field = tmp_path / "long.csv"
    long_field.write_text("id,front\n" + "x" * 300_000 + ",front.png\n")
    not_utf8 = tmp_path / "latin1.csv"
    not_utf8.write_bytes("id,front\nzhang\xe9,f.png\n".encode("latin-1"))
    cases = [("/dev/zero", "input.wrong_type"), (str(fifo), "input.wrong_type"),
             (str(long_field), "input.invalid"), (str(not_utf8), "input.unreadable")]
    for n, (path, code) in enumerate(cases):
        t = time.monotonic()
        assert main(["batch", path, "--out", str(tmp_path / f"o{n}"), "--progress", "off"]) == 2
        assert time.monotonic() - t < 10
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f": {code}: " in err, (path, err)
    main(["batch", str(long_field), "--out", str(tmp_path / "o9"), "--progress", "off"])
    assert "line 2" in capsys.readouterr().err


def test_results_csv_never_carries_formulas_or_terminal_escapes(tmp_path):
    path = tmp_path / "results.csv"
    write_results_csv(path, [
        {"id": "=1+1", "decision": "approved", "similarity": -0.25},
        {"id": "+cmd|calc", "decision": "review"},
        {"id": "@SUM(A1)", "decision": "rejected"},
        {"id": "ctrl\x1b[31m\x07x", "decision": "rejected"},
        {"id": "张三-01", "decision": "approved"},
    ])
    text = path.read_text(encoding="utf-8-sig")
    assert "\x1b" not in text and "\x07" not in text
    rows = list(csv.DictReader(text.splitlines()))
    assert [r["id"] for r in rows] == ["'=1+1", "'+cmd|calc", "'@SUM(A1)", "ctrl[31mx", "张三-01"]
    assert rows[0]["similarity"] == "-0.25"  # numbers stay numbers
