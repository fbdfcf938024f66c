"""`idverify batch`: run the verification pipeline (or only OCR, or only face matching) over many inputs.

Input is a folder (one subfolder per applicant) or a CSV/JSONL manifest. Output, in `--out`:
  results.jsonl  one JSON line per applicant, appended (flush + fsync) as each one finishes
  errors.jsonl   one JSON line per input that could not be processed, with its reason code
  results.csv    the results flattened for spreadsheets (rebuilt at the end of every run)
  report.html    counts, score distributions and the review/rejected cases with thumbnails
  batch.json     the run's settings (mode, PII, policy), checked when a run is resumed
  thumbs/        small JPEG thumbnails of the cases the report lists

Resumable: an applicant is keyed by its id, input paths and the sha256 of every input file; keys that
already have a line in results.jsonl or errors.jsonl are skipped. Only whole lines are ever kept: a
line cut short by a kill is discarded on the next run and that applicant is done again.

Parallel: a process pool ("forkserver": onnxruntime and mediapipe do not survive fork after threads),
each worker builds its engines once in the pool initializer.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import multiprocessing
import os
import re
import signal
import sys
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Iterable, Protocol

from models import IdvError, InputError, Reason
from models.files import read_text_file

log = logging.getLogger(__name__)

MODES = ("full", "ocr", "match")
RESULTS, ERRORS, RESULTS_CSV, REPORT, META, THUMBS = (
    "results.jsonl",
    "errors.jsonl",
    "results.csv",
    "report.html",
    "batch.json",
    "thumbs",
)
EXIT_OK, EXIT_INPUT, EXIT_INTERRUPTED = 0, 2, 130
META_VERSION = 1
MAX_WORKER_CRASHES = 2
MODE_MODELS = {
    "full": ("yunet", "sface", "ocr_det", "ocr_cls", "ocr_rec", "face_mesh", "face_mesh_detector"),
    "ocr": ("ocr_det", "ocr_cls", "ocr_rec"),
    "match": ("yunet", "sface"),
}  # an applicant in flight during this many worker deaths is recorded as an error

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif")
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".m4v")
# folder mode: file stems (case-insensitive) recognised in an applicant's subfolder, by role
ROLE_STEMS: dict[str, tuple[str, ...]] = {
    "id_front": ("front", "id_front", "card_front", "idcard_front"),
    "id_back": ("back", "id_back", "card_back", "idcard_back"),
    "video": ("video", "capture", "liveness"),
    "selfie_with_card": ("selfie_with_card", "selfie"),
}
FRAMES_DIRS = ("frames",)
# manifest columns (and their accepted aliases) for --mode full
MANIFEST_FILE_COLUMNS: dict[str, tuple[str, ...]] = {
    "id_front": ("id_front", "front"),
    "id_back": ("id_back", "back"),
    "video": ("video",),
    "frames": ("frames",),
    "selfie_with_card": ("selfie_with_card", "selfie"),
}
OCR_IMAGE_COLUMNS = ("image", "path", "file", "front", "id_front")
OPTION_KEYS = ("challenge", "mirrored", "manual", "declared_name", "declared_id_number")

FOLDER_HELP = f"""\
INPUT is a folder or a manifest file.

--mode full (default), a folder: one subfolder per applicant (the subfolder name is its id), or one
applicant's files directly in INPUT. Files are recognised by name, case-insensitive, any extension of
{', '.join(IMAGE_SUFFIXES)} for images and {', '.join(VIDEO_SUFFIXES)} for videos:
  ID card front   {', '.join(ROLE_STEMS['id_front'])}
  ID card back    {', '.join(ROLE_STEMS['id_back'])}
  capture video   {', '.join(ROLE_STEMS['video'])}      (or a subfolder frames/ of ordered JPEG/PNG frames)
  selfie w/ card  {', '.join(ROLE_STEMS['selfie_with_card'])}
  challenge.txt   the challenged actions in order, e.g. open_mouth,blink
  meta.json       optional: {{"challenge", "mirrored", "manual", "declared_name", "declared_id_number"}}
A subfolder with a selfie and no capture is treated as a manual submission (always review).

--mode full, a manifest: .csv (header row) or .jsonl, one applicant per row, columns id,
front (or id_front), back, video, frames, selfie_with_card, challenge, mirrored, manual,
declared_name, declared_id_number. Relative paths are relative to the manifest's folder.

--mode ocr: a folder (every image in it and its subfolders, id = relative path) or a manifest with
one image per row (column image, path, file or front; optional back).

--mode match: a CSV img_a,img_b[,same][,id] (relative paths from the CSV's folder).

Outputs in --out: results.jsonl, errors.jsonl, results.csv, report.html. Re-running with the same
--out skips what is done. Exit status: 0 when the run completed (whatever the decisions), 2 on a
usage error or when no input could be read, 3 when models are missing or altered, 130 on Ctrl-C.
"""


class BatchUsageError(InputError):
    """The command line or the input layout is wrong (not one applicant's data)."""


# --- the work items ------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchItem:
    """One applicant (full), one image (ocr) or one pair (match). `files` maps role -> path."""

    id: str
    files: dict[str, Path]
    options: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # where the item came from (folder or manifest line), for error messages
    key: str = ""

    def inputs(self) -> dict[str, str]:
        return {role: str(p) for role, p in self.files.items()}


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    try:
        if path.is_dir():
            for p in sorted(path.iterdir()):
                if p.is_file():
                    h.update(p.name.encode() + b"\0")
                    h.update(_file_digest(p).encode())
            return h.hexdigest()
        if not path.is_file():
            # a device or a pipe (/dev/zero) would be hashed forever; the worker reports it
            return "not-a-regular-file"
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return "unreadable"
    return h.hexdigest()


def item_key(item: BatchItem) -> str:
    """Stable identity of the work: id, input paths, file contents and options."""
    h = hashlib.sha256()
    h.update(item.id.encode() + b"\0")
    for role in sorted(item.files):
        h.update(f"{role}={item.files[role]}\0{_file_digest(item.files[role])}\0".encode())
    h.update(json.dumps(item.options, sort_keys=True, ensure_ascii=False, default=str).encode())
    return h.hexdigest()[:32]


def with_keys(items: list[BatchItem], threads: int = 4) -> list[BatchItem]:
    """Hash every item's files (threads: hashlib releases the GIL, so large videos hash in parallel)."""
    with ThreadPoolExecutor(max_workers=threads) as ex:
        keys = list(ex.map(item_key, items))
    return [BatchItem(i.id, i.files, i.options, i.source, k) for i, k in zip(items, keys)]


_TRUE, _FALSE = ("1", "true", "yes", "y"), ("0", "false", "no", "n", "")


def _as_bool(v: Any) -> bool | None:
    """A yes/no option from CSV text or JSON; None when it is neither (e.g. "NaN", -1)."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    t = str(v).strip().lower() if isinstance(v, str) else None
    return True if t in _TRUE else False if t in _FALSE else None


def _truthy(v: Any) -> bool:
    return _as_bool(v) is True


def _find_role(files: list[Path], stems: tuple[str, ...], suffixes: tuple[str, ...]) -> Path | None:
    for stem in stems:
        for p in files:
            if p.stem.lower() == stem and p.suffix.lower() in suffixes:
                return p
    return None


def _applicant_from_folder(d: Path, item_id: str) -> BatchItem:
    entries = sorted(d.iterdir())
    # devices and pipes are kept: the worker then says input.wrong_type for them, not "missing"
    files = [p for p in entries if not p.is_dir()]
    found: dict[str, Path] = {}
    for role in ("id_front", "id_back", "selfie_with_card"):
        p = _find_role(files, ROLE_STEMS[role], IMAGE_SUFFIXES)
        if p is not None:
            found[role] = p
    video = _find_role(files, ROLE_STEMS["video"], VIDEO_SUFFIXES)
    frames = next((p for p in entries if p.is_dir() and p.name.lower() in FRAMES_DIRS), None)
    if video is not None:
        found["video"] = video
    elif frames is not None:
        found["frames"] = frames
    options: dict[str, Any] = {}
    meta = d / "meta.json"
    if meta.exists():
        try:
            raw = json.loads(read_text_file(meta, what="meta.json", max_bytes=1024 * 1024))
        except (InputError, ValueError):
            raw = None
        if not isinstance(raw, dict):
            options["_invalid"] = "meta.json is not a JSON object"
        else:
            options.update({k: raw[k] for k in OPTION_KEYS if k in raw and raw[k] not in (None, "")})
    challenge = d / "challenge.txt"
    if "challenge" not in options and challenge.exists():
        try:
            options["challenge"] = read_text_file(challenge, what="challenge.txt", max_bytes=4096).strip()
        except InputError as e:
            options["_invalid"] = e.detail
    if "manual" not in options and "selfie_with_card" in found and "video" not in found and "frames" not in found:
        options["manual"] = True
    return BatchItem(item_id, found, options, source=str(d))


def _manifest_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) for a .csv (header row) or .jsonl manifest; usage error when unreadable."""
    suffix = path.suffix.lower()
    try:
        text = read_text_file(path, what="manifest", encoding="utf-8-sig")
    except InputError as e:  # /dev/zero, a FIFO, a folder, too big, not UTF-8
        raise BatchUsageError(e.code, e.detail) from None
    rows: list[tuple[int, dict[str, Any]]] = []
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        try:
            if not reader.fieldnames:
                raise BatchUsageError(Reason.INPUT_EMPTY, f"manifest {path.name} has no header row")
            for n, row in enumerate(reader, start=2):
                rows.append((n, {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if k}))
        except csv.Error as e:  # e.g. a field over csv's 128 KiB limit: no real path is that long
            raise BatchUsageError(Reason.INPUT_INVALID,
                                  f"manifest {path.name} line {reader.line_num + 1}: {e}") from None
    elif suffix in (".jsonl", ".ndjson"):
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            # a bad line is one unreadable applicant, not a reason to refuse the whole manifest
            rows.append((n, row if isinstance(row, dict) else {"_invalid": f"line {n} is not a JSON object"}))
    else:
        raise BatchUsageError(Reason.INPUT_WRONG_TYPE, f"manifest {path.name}: expected a .csv or .jsonl file")
    return rows


def _unique(item_id: str, seen: set[str], n: int) -> str:
    uid = item_id if item_id not in seen else f"{item_id}#{n}"
    seen.add(uid)
    return uid


def _resolve(base: Path, value: Any) -> Path | None:
    if value in (None, ""):
        return None
    p = Path(str(value)).expanduser()
    return p if p.is_absolute() else base / p


def discover(input_path: Path, mode: str) -> list[BatchItem]:
    """The work items of INPUT for `mode` (without keys). Raises BatchUsageError for a wrong layout."""
    if mode not in MODES:
        raise BatchUsageError(Reason.INPUT_INVALID, f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if not input_path.exists():
        raise BatchUsageError(Reason.INPUT_MISSING, f"input not found: {input_path}")
    if mode == "match":
        if input_path.is_dir() or input_path.suffix.lower() != ".csv":
            raise BatchUsageError(Reason.INPUT_WRONG_TYPE, "--mode match takes a CSV of pairs: img_a,img_b[,same][,id]")
        return _discover_match(input_path)
    if input_path.is_dir():
        return _discover_folder_ocr(input_path) if mode == "ocr" else _discover_folder_full(input_path)
    rows = _manifest_rows(input_path)
    base = input_path.parent
    items: list[BatchItem] = []
    seen: set[str] = set()
    for n, row in rows:
        source = f"{input_path.name}:{n}"
        options: dict[str, Any] = {"_invalid": row["_invalid"]} if "_invalid" in row else {}
        files: dict[str, Path] = {}
        if mode == "ocr":
            col = next((c for c in OCR_IMAGE_COLUMNS if row.get(c)), None)
            if col is not None:
                files["image"] = _resolve(base, row[col])  # type: ignore[assignment]
            if row.get("back") or row.get("id_back"):
                files["id_back"] = _resolve(base, row.get("back") or row.get("id_back"))  # type: ignore[assignment]
            default_id = str(row.get(col)) if col else f"line-{n}"
        else:
            for role, cols in MANIFEST_FILE_COLUMNS.items():
                value = next((row[c] for c in cols if row.get(c)), None)
                if value is not None:
                    files[role] = _resolve(base, value)  # type: ignore[assignment]
            for k in OPTION_KEYS:
                if row.get(k) not in (None, ""):
                    options[k] = row[k] if k in ("mirrored", "manual") else str(row[k])
            if "manual" not in options and "selfie_with_card" in files and not ({"video", "frames"} & files.keys()):
                options["manual"] = True
            default_id = f"line-{n}"
        item_id = _unique(str(row.get("id") or default_id), seen, n)
        items.append(BatchItem(item_id, files, options, source=source))
    return items


def _discover_folder_full(root: Path) -> list[BatchItem]:
    subdirs = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    own = [p for p in root.iterdir() if p.is_file() and p.stem.lower() in ROLE_STEMS["id_front"]]
    if own and not [d for d in subdirs if d.name.lower() not in FRAMES_DIRS]:
        return [_applicant_from_folder(root, root.name)]  # INPUT is a single applicant's folder
    return [_applicant_from_folder(d, d.name) for d in subdirs]


def _discover_folder_ocr(root: Path) -> list[BatchItem]:
    paths = sorted(
        p for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not any(s.startswith(".") for s in p.relative_to(root).parts)
    )
    return [BatchItem(p.relative_to(root).as_posix(), {"image": p}, source=str(p)) for p in paths]


def _discover_match(path: Path) -> list[BatchItem]:
    rows = _manifest_rows(path)
    base = path.parent
    items: list[BatchItem] = []
    seen: set[str] = set()
    for n, row in rows:
        files = {r: _resolve(base, row.get(r)) for r in ("img_a", "img_b") if row.get(r)}
        options: dict[str, Any] = {}
        if row.get("same") not in (None, ""):
            options["same"] = _truthy(row["same"])
        item_id = _unique(str(row.get("id") or f"{row.get('img_a', '')}|{row.get('img_b', '')}"), seen, n)
        items.append(BatchItem(item_id, files, options, source=f"{path.name}:{n}"))  # type: ignore[arg-type]
    return items


# --- the output files ------------------------------------------------------------------------


def read_jsonl(path: Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """Every whole, valid line of a JSONL file. With repair, a trailing partial line (a kill during
    a write) is cut off the file so the next append starts on a fresh line."""
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if repair and end < len(data):
        log.warning("discarding a partial last line in %s (%d bytes)", path.name, len(data) - end)
        with path.open("r+b") as f:
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
    out = []
    for line in data[:end].splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            log.warning("skipping an unparsable line in %s", path.name)
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


class JsonlAppender:
    """Appends whole lines, each with one write() and fsync, so a crash leaves only whole lines
    (or one partial last line that read_jsonl(repair=True) removes)."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def append(self, record: dict[str, Any]) -> None:
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        while data:
            n = os.write(self._fd, data)
            data = data[n:]
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def latest_by_id(results: list[dict[str, Any]], errors: list[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    """The current outcome per id: the last result line wins (an input changed since is redone);
    an id with a result is not also listed as an error."""
    res: dict[str, dict] = {}
    for r in results:
        res[r.get("id", "")] = r
    err: dict[str, dict] = {}
    for e in errors:
        if e.get("id", "") not in res:
            err[e.get("id", "")] = e
    return list(res.values()), list(err.values())


# --- CSV -------------------------------------------------------------------------------------

_CSV_FIRST = ("id", "decision", "reasons", "priority", "passed", "same", "similarity", "card_found", "side")


def _flatten(d: dict[str, Any], prefix: str = "", depth: int = 0, out: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {} if out is None else out
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            if depth < 3:
                _flatten(v, name + ".", depth + 1, out)
        elif isinstance(v, list):
            if all(not isinstance(x, (dict, list)) for x in v):
                out[name] = ";".join(str(x) for x in v)
        elif v is not None:
            out[name] = v
    return out


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _safe_cell(v: Any) -> Any:
    """Text as a spreadsheet shows it, never runs it: a cell starting with = + - @ (or a tab or CR,
    which some programs skip first) is a formula in Excel/LibreOffice, so it gets the usual leading
    apostrophe (OWASP's CSV-injection advice); control characters (terminal escapes) are dropped.
    Numbers stay numbers, so a negative similarity is still a number."""
    if not isinstance(v, str):
        return v
    v = _CONTROL.sub("", v)
    return "'" + v if v[:1] in ("=", "+", "-", "@", "\t", "\r") else v


def write_results_csv(path: Path, results: list[dict[str, Any]]) -> None:
    rows = [{k: _safe_cell(v) for k, v in _flatten({k: v for k, v in r.items() if k not in ("key", "mode")}).items()}
            for r in results]
    cols: list[str] = [c for c in _CSV_FIRST if any(c in r for r in rows)]
    for r in rows:
        cols.extend(c for c in r if c not in cols)
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    # a BOM so spreadsheet programs open the Chinese text as UTF-8
    _atomic_write(path, "\ufeff" + buf.getvalue())


# --- the worker side -------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}
THUMB_HEIGHT_PX = 96
THUMB_CARD_WIDTH_PX = 128  # the card's text is illegible at this width: PII stays masked


def _init_worker(mode: str, policy: str | None, show_pii: bool, thumbs_dir: str, threads: int = 2) -> None:
    """Build this worker's engines once. Ctrl-C is the main process's business: it stops the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import cv2

    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would oversubscribe
    from .settings import get_settings

    settings = get_settings()
    if policy is not None:
        settings = settings.model_copy(update={"policy_file": Path(policy)})
    _WORKER.clear()
    _WORKER.update(mode=mode, settings=settings, show_pii=show_pii, thumbs=Path(thumbs_dir))
    _WORKER["engines"] = build_mode_engines(mode, settings, threads=threads)


def build_mode_engines(mode: str, settings: Any, threads: int = 2) -> Any:
    """Only the engines a mode needs (OCR-only back-fills never load face or liveness models).

    threads: onnxruntime threads for the OCR sessions and Face Mesh threads per capture. With one
    worker per core it must be 1: two workers x 2 spinning threads on 2 cores made 2 workers slower
    than 1 (1.6 vs 2.3 cards/s)."""

    from models import default_registry

    registry = default_registry()
    if mode in ("full", "ocr"):
        from ocr import IdCardReader, OcrConfig
    if mode == "full":
        from .pipeline import build_engines

        return build_engines(settings, registry=registry, reader=IdCardReader(OcrConfig(threads=threads), registry),
                             mesh_threads=threads)
    if mode == "ocr":
        return IdCardReader(OcrConfig(threads=threads), registry=registry)
    from face_match import FaceMatcher

    from .pipeline import match_config

    return FaceMatcher(match_config(settings), registry=registry)


def _thumb(image: Any, *, card: bool = False, show_pii: bool = False) -> bytes:
    import cv2

    h, w = image.shape[:2]
    if card:
        scale = (THUMB_CARD_WIDTH_PX * (2 if show_pii else 1)) / w
    else:
        scale = THUMB_HEIGHT_PX / h
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return buf.tobytes() if ok else b""


def _write_thumbs(key: str, images: dict[str, Any], show_pii: bool) -> list[str]:
    d: Path = _WORKER["thumbs"]
    written = []
    for role, img in images.items():
        if img is None:
            continue
        data = _thumb(img, card=role in ("id_front", "id_back", "image", "selfie_with_card"), show_pii=show_pii)
        if not data:
            continue
        tmp = d / f".{key}_{role}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, d / f"{key}_{role}.jpg")
        written.append(role)
    return written


def check_structure(item: BatchItem, mode: str) -> None:
    """What can be known without decoding anything: a missing file role or option. Run in the main
    process, so such items are recorded at once and never wait for (or cost) a model load."""
    if "_invalid" in item.options:
        raise InputError(Reason.INPUT_INVALID, str(item.options["_invalid"]))
    f, o = item.files, item.options
    for k in ("mirrored", "manual"):
        if k in o and _as_bool(o[k]) is None:
            # the API refuses these with 422; a batch must not quietly read them as "no"
            raise InputError(Reason.INPUT_INVALID, f"{k} must be true or false")
    if mode == "full":
        if "id_front" not in f:
            raise InputError(Reason.INPUT_MISSING, "no ID card front found for this applicant")
        if not _truthy(o.get("manual", False)):
            if "video" not in f and "frames" not in f:
                raise InputError(Reason.INPUT_MISSING, "no capture (video or frames/) found for this applicant")
            if not o.get("challenge"):
                raise InputError(
                    Reason.LIVENESS_CHALLENGE_INVALID, "no challenge given (challenge.txt, meta.json or manifest column)"
                )
    elif mode == "ocr" and "image" not in f:
        raise InputError(Reason.INPUT_MISSING, "no image path in this row")
    elif mode == "match":
        missing = [r for r in ("img_a", "img_b") if r not in f]
        if missing:
            raise InputError(Reason.INPUT_MISSING, f"no path for {', '.join(missing)} in this row")


def process_item(engines: Any, mode: str, item: BatchItem, settings: Any, *, show_pii: bool, today: date | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """One item -> (record, images for thumbnails). Raises IdvError when the item cannot be processed."""
    check_structure(item, mode)
    base: dict[str, Any] = {"id": item.id, "key": item.key, "mode": mode, "inputs": item.inputs()}
    if mode == "full":
        return _process_full(engines, item, settings, base, show_pii=show_pii, today=today)
    if mode == "ocr":
        return _process_ocr(engines, item, settings, base, show_pii=show_pii, today=today)
    return _process_match(engines, item, settings, base)


def _process_full(engines, item, settings, base, *, show_pii, today):
    from .cli import verification_input_from_files
    from .pipeline import run_verification

    f, o = item.files, item.options
    inp = verification_input_from_files(
        settings,
        id_front=f["id_front"],
        video=f.get("video"),
        frames=f.get("frames"),
        challenge=o.get("challenge"),
        mirrored=_truthy(o.get("mirrored", False)),
        id_back=f.get("id_back"),
        selfie_with_card=f.get("selfie_with_card"),
        declared_name=o.get("declared_name"),
        declared_id_number=o.get("declared_id_number"),
        manual=_truthy(o.get("manual", False)),
    )
    report = run_verification(engines, inp, today=today)
    record = {**base, **report.to_dict(mask_pii=not show_pii)}
    images: dict[str, Any] = {}
    if record["decision"] != "approved":
        ev = report.evidence
        images = {r: ev.get(r) for r in ("best_frame", "portrait", "id_front", "selfie_with_card")}
    return record, images


def _process_ocr(reader, item, settings, base, *, show_pii, today):
    from models.images import read_image_file
    from ocr import Side, validate_card

    from .pipeline import mask_fields

    def load(p: Path, what: str):
        return read_image_file(p, max_pixels=settings.max_image_pixels, max_bytes=settings.max_image_bytes, what=what)

    t0 = time.perf_counter()
    image = load(item.files["image"], "ID card image")
    back_image = load(item.files["id_back"], "ID card back") if "id_back" in item.files else None
    timings: dict[str, float] = {}
    t = time.perf_counter()
    first = reader.read(image, expected_side=Side.FRONT) if back_image is not None else reader.read(image)
    timings["ocr"] = (time.perf_counter() - t) * 1000
    second = None
    if back_image is not None:
        t = time.perf_counter()
        second = reader.read(back_image, expected_side=Side.BACK)
        timings["ocr_back"] = (time.perf_counter() - t) * 1000
    front, back = (first, second) if second is not None or first.side != Side.BACK else (None, first)
    validation = validate_card(front, back, today=today or date.today())
    fields: dict[str, str] = {}
    stages: dict[str, Any] = {}
    reasons: set[str] = set(str(r) for r in validation.reasons)
    for name, res in (("ocr_front", front), ("ocr_back", back)):
        if res is not None:
            stages[name] = res.to_dict(mask_pii=not show_pii)
            fields.update({k: v.value for k, v in res.fields.items()})
            reasons.update(str(r) for r in res.reasons)
    stages["validation"] = validation.to_dict()
    timings["total"] = (time.perf_counter() - t0) * 1000
    record = {
        **base,
        "card_found": first.card_found,
        "side": str(first.side) if first.side is not None else None,
        "passed": bool(first.card_found and validation.passed),
        "reasons": sorted(reasons),
        "fields": fields if show_pii else mask_fields(fields),
        "stages": stages,
        "timings_ms": {k: round(v, 1) for k, v in timings.items()},
    }
    images = {} if record["passed"] else {"image": image}
    return record, images


def _process_match(matcher, item, settings, base):
    from models.images import read_image_file

    t0 = time.perf_counter()
    a, b = (
        read_image_file(item.files[r], max_pixels=settings.max_image_pixels, max_bytes=settings.max_image_bytes, what=r)
        for r in ("img_a", "img_b")
    )
    result = matcher.match(a, b)
    d = result.to_dict()
    same = item.options.get("same")
    record = {
        **base,
        "same": same,
        "passed": d.get("passed"),
        "similarity": d.get("similarity", d.get("score")),
        "reasons": [str(r) for r in d.get("reasons", [])],
        "correct": None if same is None else bool(d.get("passed")) == bool(same),
        "stages": {"face_match": d},
        "timings_ms": {"total": round((time.perf_counter() - t0) * 1000, 1)},
    }
    images = {"img_a": a, "img_b": b} if record["correct"] is False or (same is None and not record["passed"]) else {}
    return record, images


def _worker_run(item: BatchItem) -> tuple[str, dict[str, Any]]:
    """In a worker: ("result", record) or ("error", record). Never raises for one item's problem."""
    mode = _WORKER["mode"]
    try:
        record, images = process_item(
            _WORKER["engines"], mode, item, _WORKER["settings"], show_pii=_WORKER["show_pii"]
        )
        if images:
            record["thumbnails"] = _write_thumbs(item.key, images, _WORKER["show_pii"])
        return "result", record
    except IdvError as e:
        log.info("batch item %s: %s", item.key, e.code)
        return "error", _error_record(item, mode, e.code, e.detail)
    except Exception as e:  # one bad input must not stop a run of thousands
        log.exception("batch item %s: unexpected %s", item.key, type(e).__name__)
        return "error", _error_record(item, mode, Reason.INTERNAL_ERROR, f"unexpected {type(e).__name__} while processing")


# --- progress --------------------------------------------------------------------------------


class Progress(Protocol):
    def start(self, total: int, skipped: int) -> None: ...
    def update(self, done: int, errors: int) -> None: ...
    def close(self) -> None: ...


def _fmt_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class PlainProgress:
    """Periodic one-line progress for logs and pipes (no terminal control characters)."""

    def __init__(self, stream: Any = None, every_s: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self._t0 = self._last = time.monotonic()
        self.total = self.done = self.errors = 0

    def _line(self) -> str:
        el = time.monotonic() - self._t0
        rate = self.done / el if el > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return f"batch: {self.done}/{self.total} ({pct:.0f}%), {self.errors} errors, {rate:.2f}/s, ETA {_fmt_eta(eta)}"

    def start(self, total: int, skipped: int) -> None:
        self._t0 = self._last = time.monotonic()
        self.total = total
        self.stream.write(f"batch: {total} to do, {skipped} already done\n")
        self.stream.flush()

    def update(self, done: int, errors: int) -> None:
        self.done, self.errors = done, errors
        if time.monotonic() - self._last >= self.every_s:
            self._emit()

    def _emit(self) -> None:
        self._last = time.monotonic()
        self._printed = self._line()
        self.stream.write(self._printed + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._line() != getattr(self, "_printed", None):
            self._emit()


class RichProgress:
    """A live bar with count, rate and ETA, for terminals."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as _P

        self._p = _P(
            TextColumn("batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}/s  {task.fields[errors]} errors"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task = None
        self._t0 = time.monotonic()

    def start(self, total: int, skipped: int) -> None:
        self._p.console.print(f"{total} to do, {skipped} already done")
        self._p.start()
        self._t0 = time.monotonic()
        self._task = self._p.add_task("batch", total=total, rate="0.00", errors=0)

    def update(self, done: int, errors: int) -> None:
        el = time.monotonic() - self._t0
        self._p.update(self._task, completed=done, rate=f"{done / el if el > 0 else 0:.2f}", errors=errors)

    def close(self) -> None:
        self._p.stop()


class NoProgress:
    def start(self, total: int, skipped: int) -> None: ...
    def update(self, done: int, errors: int) -> None: ...
    def close(self) -> None: ...


def make_progress(kind: str = "auto") -> Progress:
    if kind == "off":
        return NoProgress()
    if kind == "bar" or (kind == "auto" and sys.stderr.isatty()):
        return RichProgress()
    return PlainProgress()


# --- the run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchOptions:
    input: Path
    out: Path
    mode: str = "full"
    workers: int = 1
    policy: Path | None = None
    show_pii: bool = False
    progress: str = "auto"  # auto | bar | plain | off
    report: bool = True


@dataclass(frozen=True)
class BatchSummary:
    total: int  # items in INPUT
    skipped: int  # already done by an earlier run
    processed: int  # done in this run (results + errors)
    results: int  # lines in results (all runs, latest per id)
    errors: int  # lines in errors (all runs, latest per id)
    interrupted: bool
    elapsed_s: float

    @property
    def rate_per_s(self) -> float:
        return self.processed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "skipped": self.skipped,
            "processed": self.processed,
            "results": self.results,
            "errors": self.errors,
            "interrupted": self.interrupted,
            "elapsed_s": round(self.elapsed_s, 2),
            "rate_per_s": round(self.rate_per_s, 3),
        }


def _check_meta(out: Path, opts: BatchOptions) -> None:
    meta = {
        "version": META_VERSION,
        "mode": opts.mode,
        "show_pii": opts.show_pii,
        "policy": str(opts.policy.resolve()) if opts.policy else None,
    }
    path = out / META
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            old = None
        if not isinstance(old, dict):
            raise BatchUsageError(Reason.INPUT_INVALID, f"{path} is not a batch settings file; use a new --out")
        for k in ("mode", "show_pii", "policy"):
            if old.get(k) != meta[k]:
                raise BatchUsageError(
                    Reason.INPUT_INVALID,
                    f"--out {out} holds a run with {k}={old.get(k)!r}; this run has {k}={meta[k]!r}. "
                    "Use a new --out (results of different settings are not mixed)",
                )
        return
    _atomic_write(path, json.dumps(meta, indent=2) + "\n")


def _make_pool(opts: BatchOptions) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=opts.workers,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_init_worker,
        initargs=(
            opts.mode, str(opts.policy.resolve()) if opts.policy else None, opts.show_pii, str(opts.out / THUMBS),
            max(1, (os.cpu_count() or 1) // opts.workers),
        ),
    )


def _error_record(item: BatchItem, mode: str, code: Reason, detail: str) -> dict[str, Any]:
    return {"id": item.id, "key": item.key, "mode": mode, "inputs": item.inputs(), "error": {"code": str(code), "detail": detail}}


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel queued work and end the workers now; their in-flight items are simply redone next run."""
    procs = list(getattr(pool, "_processes", {}).values())  # no public handle on the workers
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)


def _preflight(opts: BatchOptions) -> None:
    """Fail in the main process (exit 3 / 2) before spawning workers whose initializer would fail."""
    from models import default_registry

    registry = default_registry()
    for name in MODE_MODELS[opts.mode]:
        registry.path(name)  # sha256 + shape check; raises ModelError (exit 3)
    if opts.mode == "full":
        from review_queue.policy import load_policy

        load_policy(opts.policy)  # raises IdvError(review.policy_invalid) before any work


def run_batch(opts: BatchOptions, progress: Progress | None = None) -> BatchSummary:
    """Process every item of opts.input not already in opts.out; write the outputs. Ctrl-C stops
    cleanly (summary.interrupted) with only whole lines written."""
    t0 = time.monotonic()
    if opts.workers < 1:
        raise BatchUsageError(Reason.INPUT_INVALID, "--workers must be at least 1")
    if opts.out.exists() and not opts.out.is_dir():
        raise BatchUsageError(Reason.INPUT_INVALID, f"--out {opts.out} exists and is not a folder")
    items = discover(opts.input, opts.mode)
    if opts.policy is not None and not opts.policy.is_file():
        raise BatchUsageError(Reason.INPUT_MISSING, f"policy file not found: {opts.policy}")
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / THUMBS).mkdir(exist_ok=True)
    _check_meta(opts.out, opts)
    done_keys = {r.get("key") for r in read_jsonl(opts.out / RESULTS, repair=True)}
    done_keys |= {r.get("key") for r in read_jsonl(opts.out / ERRORS, repair=True)}
    items = with_keys(items)
    todo = deque(i for i in items if i.key not in done_keys)
    skipped = len(items) - len(todo)
    progress = progress or make_progress(opts.progress)
    processed = n_errors = 0
    interrupted = False
    results_out, errors_out = JsonlAppender(opts.out / RESULTS), JsonlAppender(opts.out / ERRORS)
    pool: ProcessPoolExecutor | None = None
    try:
        progress.start(len(todo), skipped)
        for item in list(todo):
            try:
                check_structure(item, opts.mode)
            except IdvError as e:
                todo.remove(item)
                errors_out.append(_error_record(item, opts.mode, e.code, e.detail))
                processed += 1
                n_errors += 1
        progress.update(processed, n_errors)
        if todo:
            _preflight(opts)
            pool = _make_pool(opts)
            crashes: dict[str, int] = {}
            inflight: dict[Future, BatchItem] = {}
            while todo or inflight:
                # a bounded window of submitted work: memory stays flat and Ctrl-C loses little
                while todo and len(inflight) < 2 * opts.workers:
                    item = todo.popleft()
                    inflight[pool.submit(_worker_run, item)] = item
                finished, _ = wait(list(inflight), timeout=1.0, return_when=FIRST_COMPLETED)
                suspects: list[BatchItem] = []
                for fut in finished:
                    item = inflight.pop(fut)
                    try:
                        kind, record = fut.result()
                    except BrokenProcessPool:
                        suspects.append(item)
                        continue
                    except Exception as e:  # e.g. an item that cannot be pickled
                        kind, record = "error", _error_record(item, opts.mode, Reason.INTERNAL_ERROR, f"unexpected {type(e).__name__}")
                    (results_out if kind == "result" else errors_out).append(record)
                    processed += 1
                    n_errors += kind == "error"
                if suspects:
                    # a worker died (segfault, out of memory): every in-flight item is suspect and is
                    # retried; one in flight during MAX_WORKER_CRASHES deaths is recorded as the cause
                    suspects.extend(inflight.values())
                    inflight.clear()
                    log.warning("a batch worker died with %d item(s) in flight; restarting the pool", len(suspects))
                    for item in reversed(suspects):
                        crashes[item.key] = crashes.get(item.key, 0) + 1
                        if crashes[item.key] >= MAX_WORKER_CRASHES:
                            errors_out.append(_error_record(item, opts.mode, Reason.INTERNAL_ERROR, "a worker process died on this input"))
                            processed += 1
                            n_errors += 1
                        else:
                            todo.appendleft(item)
                    _stop_pool(pool)
                    pool = _make_pool(opts)
                progress.update(processed, n_errors)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if pool is not None:
            _stop_pool(pool)
        progress.close()
        results_out.close()
        errors_out.close()
    results, errors = latest_by_id(read_jsonl(opts.out / RESULTS), read_jsonl(opts.out / ERRORS))
    write_results_csv(opts.out / RESULTS_CSV, results)
    summary = BatchSummary(
        total=len(items), skipped=skipped, processed=processed, results=len(results), errors=len(errors),
        interrupted=interrupted, elapsed_s=time.monotonic() - t0,
    )
    if opts.report:
        from .batch_report import write_report

        write_report(opts.out, results, errors, mode=opts.mode, show_pii=opts.show_pii, summary=summary)
    return summary


# --- the command -----------------------------------------------------------------------------


def add_batch_parser(sub: Any) -> argparse.ArgumentParser:
    from .settings import cpu_count

    p = sub.add_parser(
        "batch",
        help="verify a folder or manifest of captures offline (resumable, parallel, with an HTML report)",
        description="Run the pipeline over many applicants; resumable, parallel, with a report.",
        epilog=FOLDER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", type=Path, help="a folder (one subfolder per applicant) or a .csv/.jsonl manifest")
    p.add_argument("--out", type=Path, required=True, help="output folder (re-use it to resume)")
    p.add_argument("--mode", choices=MODES, default="full", help="full pipeline (default), OCR only, or face pairs")
    p.add_argument("--workers", type=int, default=cpu_count(), help="worker processes (default: cores)")
    p.add_argument("--policy", type=Path, help="decision policy TOML to re-score with (default: packaged policy)")
    p.add_argument("--show-pii", action="store_true", help="write names, ID numbers and addresses unmasked")
    p.add_argument(
        "--progress", choices=("auto", "bar", "plain", "off"), default="auto",
        help="progress display (auto: a bar on a terminal, periodic lines otherwise)",
    )
    return p


def run_batch_command(args: argparse.Namespace) -> int:
    opts = BatchOptions(
        input=args.input,
        out=args.out,
        mode=args.mode,
        workers=args.workers,
        policy=args.policy,
        show_pii=args.show_pii,
        progress=args.progress,
    )
    try:
        summary = run_batch(opts)
    except BatchUsageError as e:
        print(f"idverify batch: {e.code}: {e.detail}", file=sys.stderr)
        return EXIT_INPUT
    line = (
        f"batch: {summary.total} inputs, {summary.skipped} already done, {summary.processed} processed now "
        f"({summary.rate_per_s:.2f}/s); {summary.results} results, {summary.errors} errors in {opts.out}"
    )
    print(line)
    if summary.interrupted:
        print("batch: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    if summary.total == 0:
        print("idverify batch: input.empty: no inputs found (see `idverify batch --help`)", file=sys.stderr)
        return EXIT_INPUT
    if summary.results == 0:
        print("idverify batch: no input could be processed; see errors.jsonl", file=sys.stderr)
        return EXIT_INPUT
    return EXIT_OK


__all__ = [
    "BatchItem",
    "BatchOptions",
    "BatchSummary",
    "BatchUsageError",
    "add_batch_parser",
    "discover",
    "item_key",
    "read_jsonl",
    "run_batch",
    "run_batch_command",
]
