"""Loading a liveness capture: a video file/bytes or an ordered sequence of still frames.

Untrusted input: the container is sniffed from its first bytes (never from the file name), size,
duration, frame count and resolution are bounded before and while decoding, and every failure is an
InputError with a reason code. Frames are sampled to ~`sample_fps` (cv2.VideoCapture.grab() skips
the colour conversion of frames we do not analyse) and downscaled to the analysis size; a bounded
number of full-resolution originals is kept so the best frame for face matching keeps its detail.
"""

from __future__ import annotations

import io
import math
import re
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.errors import InputError
from models.images import DEFAULT_MAX_BYTES as IMAGE_MAX_BYTES
from models.images import decode_image, read_image_file
from models.reasons import Reason

DEFAULT_MAX_SECONDS = 30.0
DEFAULT_MAX_FRAMES = 2000
DEFAULT_MAX_BYTES = 60 * 2**20
DEFAULT_MAX_PIXELS = 4096 * 2304  # DCI/UHD 4K fits; an 8K or a crafted 20k x 20k header does not
MAX_VIDEO_SIDE = 4096  # 4K either way up; a 65536 x 64 stream fits the pixel budget but no camera makes it
DEFAULT_SAMPLE_FPS = 15.0
DEFAULT_ANALYSIS_SIZE = 480
DEFAULT_FRAMES_FPS = 10.0  # a frame folder/zip carries no timing; the caller should say
ORIGINALS_BUDGET_BYTES = 192 * 2**20
MIN_FRAMES = 3
DECODE_BUDGET_S = 60.0  # wall-clock guard against pathological streams
# Frame uploads are decoded image by image (a 4K PNG costs ~0.1 s): bound the decoded pixels of the
# frames we sample, so a tiny zip of 300 blank 4K PNGs cannot hold a worker for a minute. A 30 s
# 720p capture sampled at 15 fps is ~415 MP.
MAX_FRAMES_TOTAL_PIXELS = 450_000_000
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


@dataclass(frozen=True)
class FrameSequence:
    """Sampled frames of one capture. `frames` are BGR uint8 at the analysis size; `width`,
    `height`, `source_fps` and `duration_s` describe the source. `originals[i]` is frame i at the
    source resolution when it was kept (None otherwise)."""

    frames: tuple[np.ndarray, ...]
    timestamps_s: tuple[float, ...]
    source_fps: float
    duration_s: float
    width: int
    height: int
    originals: tuple[np.ndarray | None, ...] = field(default=(), repr=False)
    kind: str = "video"  # "video" or "frames"

    def __len__(self) -> int:
        return len(self.frames)

    def has_original(self, i: int) -> bool:
        """Whether frame i is available at the source resolution."""
        if i < len(self.originals) and self.originals[i] is not None:
            return True
        return max(self.frames[i].shape[:2]) >= max(self.width, self.height)

    def original(self, i: int) -> np.ndarray:
        if i < len(self.originals) and self.originals[i] is not None:
            return self.originals[i]  # type: ignore[return-value]
        return self.frames[i]


def sniff_video_type(head: bytes) -> str | None:
    """'mp4' (ISO BMFF: MP4/MOV/3GP), 'webm' (Matroska/EBML) or None."""
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    return None


def _downscale(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    scale = size / max(h, w)
    if scale >= 1.0:
        return img
    size_out = (max(1, round(w * scale)), max(1, round(h * scale)))
    if scale >= 0.5:
        # mild reductions (e.g. 512 -> 480): bilinear is indistinguishable to the mesh and cheap
        return cv2.resize(img, size_out, interpolation=cv2.INTER_LINEAR)
    # strong ones (1080p -> 480): bilinear to twice the target, then an exact 2x INTER_AREA. Within
    # one grey level of a direct INTER_AREA but 0.4 ms a frame instead of 1.4-2 ms
    mid = cv2.resize(img, (size_out[0] * 2, size_out[1] * 2), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(mid, size_out, interpolation=cv2.INTER_AREA)


class _Collector:
    """Accumulates sampled frames, keeping originals while the memory budget allows."""

    def __init__(self, analysis_size: int) -> None:
        self.size = analysis_size
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self.originals: list[np.ndarray | None] = []
        self._orig_bytes = 0
        self._keep_every = 1

    def add(self, img: np.ndarray, t: float) -> None:
        small = _downscale(img, self.size)
        self.frames.append(small)
        self.times.append(t)
        if small is img:
            self.originals.append(None)  # already full resolution
            return
        if self._orig_bytes + img.nbytes > ORIGINALS_BUDGET_BYTES:
            # over budget: thin the kept originals out evenly rather than keep only the start
            self._keep_every *= 2
            for j in range(len(self.originals)):
                if self.originals[j] is not None and j % self._keep_every:
                    self._orig_bytes -= self.originals[j].nbytes  # type: ignore[union-attr]
                    self.originals[j] = None
        if (len(self.frames) - 1) % self._keep_every == 0 and self._orig_bytes + img.nbytes <= ORIGINALS_BUDGET_BYTES:
            self.originals.append(img)
            self._orig_bytes += img.nbytes
        else:
            self.originals.append(None)


def _check_frame_count(n: int) -> None:
    if n < MIN_FRAMES:
        raise InputError(
            Reason.LIVENESS_TOO_FEW_FRAMES,
            f"the capture has {n} usable frame(s); at least {MIN_FRAMES} are needed",
        )


def load_capture(
    path: Path | str,
    *,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    sample_fps: float = DEFAULT_SAMPLE_FPS,
    analysis_size: int = DEFAULT_ANALYSIS_SIZE,
    frames_fps: float = DEFAULT_FRAMES_FPS,
) -> FrameSequence:
    """A video file (MP4/MOV/WebM, sniffed by content) or a folder of ordered JPEG/PNG frames.

    Frames in a folder are ordered by natural sort of their names and timed at `frames_fps`.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(
            (p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES),
            key=lambda p: _natural_key(p.name),
        )
        if not files:
            raise InputError(Reason.INPUT_EMPTY, "the frame folder holds no JPEG/PNG frames")
        if len(files) > max_frames:
            raise InputError(Reason.LIVENESS_TOO_LONG, f"{len(files)} frames exceed the limit of {max_frames}")
        total = sum(p.stat().st_size for p in files)
        if total > max_bytes:
            raise InputError(Reason.INPUT_TOO_LARGE, f"frames total {total} bytes, limit {max_bytes}")
        return _from_images(
            [lambda p=p: read_image_file(p, max_pixels=max_pixels) for p in files],
            max_seconds=max_seconds, sample_fps=sample_fps, analysis_size=analysis_size,
            frames_fps=frames_fps,
        )
    if path.exists() and not path.is_file():
        raise InputError(Reason.INPUT_WRONG_TYPE, "the capture is not a regular file (a device, pipe or socket)")
    if not path.is_file():
        raise InputError(Reason.INPUT_MISSING, "the capture file does not exist")
    size = path.stat().st_size
    if size == 0:
        raise InputError(Reason.INPUT_EMPTY, "the capture file is empty (0 bytes)")
    if size > max_bytes:
        raise InputError(Reason.INPUT_TOO_LARGE, f"the capture is {size} bytes, limit {max_bytes}")
    try:
        with path.open("rb") as f:
            head = f.read(64)
    except OSError:
        raise InputError(Reason.INPUT_UNREADABLE, "the capture file cannot be read") from None
    if sniff_video_type(head) is None:
        raise InputError(
            Reason.INPUT_WRONG_TYPE, "the file is not an MP4/MOV/WebM video (checked by content, not name)"
        )
    return _decode_video(
        path, max_seconds=max_seconds, max_frames=max_frames, max_pixels=max_pixels,
        sample_fps=sample_fps, analysis_size=analysis_size,
    )


def load_capture_bytes(data: bytes, **limits) -> FrameSequence:
    """Video bytes, or a zip of ordered JPEG/PNG frames (the API's frame-sequence upload)."""
    max_bytes = limits.get("max_bytes", DEFAULT_MAX_BYTES)
    max_frames = limits.get("max_frames", DEFAULT_MAX_FRAMES)
    max_pixels = limits.get("max_pixels", DEFAULT_MAX_PIXELS)
    if not data:
        raise InputError(Reason.INPUT_EMPTY, "the capture is empty (0 bytes)")
    if len(data) > max_bytes:
        raise InputError(Reason.INPUT_TOO_LARGE, f"the capture is {len(data)} bytes, limit {max_bytes}")
    if data[:4] == b"PK\x03\x04":
        return _from_zip(data, **limits)
    kind = sniff_video_type(data[:64])
    if kind is None:
        raise InputError(
            Reason.INPUT_WRONG_TYPE, "the upload is neither an MP4/MOV/WebM video nor a zip of frames"
        )
    with tempfile.TemporaryDirectory(prefix="idv-live-") as d:
        p = Path(d) / f"capture.{kind}"  # FFmpeg needs a file; the suffix only helps its probe
        p.write_bytes(data)
        return load_capture(p, **limits)


def _from_zip(data: bytes, **limits) -> FrameSequence:
    max_bytes = limits.get("max_bytes", DEFAULT_MAX_BYTES)
    max_frames = limits.get("max_frames", DEFAULT_MAX_FRAMES)
    max_pixels = limits.get("max_pixels", DEFAULT_MAX_PIXELS)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = [
            i for i in zf.infolist()
            if not i.is_dir() and Path(i.filename).suffix.lower() in _IMAGE_SUFFIXES
            and not Path(i.filename).name.startswith(".")
        ]
    except (zipfile.BadZipFile, OSError, ValueError):
        raise InputError(Reason.INPUT_UNREADABLE, "the zip of frames could not be read") from None
    if not infos:
        raise InputError(Reason.INPUT_EMPTY, "the zip holds no JPEG/PNG frames")
    if len(infos) > max_frames:
        raise InputError(Reason.LIVENESS_TOO_LONG, f"{len(infos)} frames exceed the limit of {max_frames}")
    # declared sizes bound a zip bomb before anything is inflated; read() re-checks the CRC
    if sum(i.file_size for i in infos) > 4 * max_bytes:
        raise InputError(Reason.INPUT_TOO_LARGE, "the frames inflate beyond the size limit")
    infos.sort(key=lambda i: _natural_key(i.filename))

    # one frame is one phone photo at most: inflating a 200 MB frame of zeros (a 200 KB upload) only
    # to refuse it afterwards cost the server 200 MB per request
    max_frame = min(max_bytes, IMAGE_MAX_BYTES)

    def reader(info: zipfile.ZipInfo):
        def read() -> np.ndarray:
            if info.file_size > max_frame:
                raise InputError(Reason.INPUT_TOO_LARGE, f"a frame is {info.file_size} bytes; limit {max_frame}")
            try:
                with zf.open(info) as f:
                    raw = f.read(max_frame + 1)  # the declared size may lie: never inflate past the cap
            except Exception:  # BadZipFile, zlib/bz2/lzma errors, EOFError...: every codec has its own
                raise InputError(Reason.INPUT_UNREADABLE, "a frame in the zip is corrupt") from None
            if len(raw) > max_frame:
                raise InputError(Reason.INPUT_TOO_LARGE, f"a frame inflates beyond {max_frame} bytes")
            return decode_image(raw, max_pixels=max_pixels, what="frame")
        return read

    return _from_images(
        [reader(i) for i in infos],
        max_seconds=limits.get("max_seconds", DEFAULT_MAX_SECONDS),
        sample_fps=limits.get("sample_fps", DEFAULT_SAMPLE_FPS),
        analysis_size=limits.get("analysis_size", DEFAULT_ANALYSIS_SIZE),
        frames_fps=limits.get("frames_fps", DEFAULT_FRAMES_FPS),
    )


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _from_images(readers, *, max_seconds, sample_fps, analysis_size, frames_fps) -> FrameSequence:
    if not (0 < frames_fps <= 240):
        raise InputError(Reason.INPUT_INVALID, "frames_fps must be in (0, 240]")
    n = len(readers)
    duration = n / frames_fps
    if duration > max_seconds:
        raise InputError(Reason.LIVENESS_TOO_LONG, f"{duration:.1f} s of frames exceed {max_seconds:.0f} s")
    col = _Collector(analysis_size)
    step = 1.0 / sample_fps
    next_t = 0.0
    shape = None
    started = time.monotonic()
    for i, read in enumerate(readers):
        t = i / frames_fps
        if t + 1e-6 < next_t:
            continue
        while next_t <= t + 1e-6:
            next_t += step
        img = read()
        if shape is None:
            shape = img.shape[:2]
            sampled = min(n, int(duration * sample_fps) + 1)
            if sampled * shape[0] * shape[1] > MAX_FRAMES_TOTAL_PIXELS:
                raise InputError(
                    Reason.INPUT_TOO_MANY_PIXELS,
                    f"{sampled} frames of {shape[1]}x{shape[0]} exceed the {MAX_FRAMES_TOTAL_PIXELS // 1_000_000} "
                    "megapixel budget of a frame sequence; send smaller frames or a video",
                )
        elif img.shape[:2] != shape:
            raise InputError(Reason.INPUT_INVALID, "frames of one capture must share one size")
        if time.monotonic() - started > DECODE_BUDGET_S:
            raise InputError(Reason.LIVENESS_VIDEO_UNREADABLE, f"decoding the frames took over {DECODE_BUDGET_S:.0f} s")
        col.add(img, t)
    _check_frame_count(len(col.frames))
    assert shape is not None
    return FrameSequence(
        frames=tuple(col.frames), timestamps_s=tuple(col.times), source_fps=float(frames_fps),
        duration_s=duration, width=int(shape[1]), height=int(shape[0]),
        originals=tuple(col.originals), kind="frames",
    )


def _decode_video(path: Path, *, max_seconds, max_frames, max_pixels, sample_fps, analysis_size) -> FrameSequence:
    import cv2

    cap = cv2.VideoCapture(
        str(path), cv2.CAP_FFMPEG,
        [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 10_000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 10_000],
    )
    try:
        if not cap.isOpened():
            raise InputError(Reason.LIVENESS_VIDEO_UNREADABLE, "the video could not be opened (corrupt or unsupported codec)")
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if w * h > max_pixels or max(w, h) > MAX_VIDEO_SIDE:
            raise InputError(
                Reason.INPUT_TOO_MANY_PIXELS,
                f"the video is {w}x{h}; at most {max_pixels} pixels a frame and {MAX_VIDEO_SIDE} a side",
            )
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        fps_known = math.isfinite(fps) and 1.0 <= fps <= 240.0
        declared = float(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)
        if fps_known and declared > 0 and declared / fps > max_seconds + 0.5:
            raise InputError(Reason.LIVENESS_TOO_LONG, f"the video lasts {declared / fps:.1f} s; limit {max_seconds:.0f} s")

        col = _Collector(analysis_size)
        step = 1.0 / sample_fps
        next_t = 0.0
        n = 0
        last_t = 0.0
        started = time.monotonic()
        while True:
            if not cap.grab():
                break
            n += 1
            if n > max_frames:
                raise InputError(Reason.LIVENESS_TOO_LONG, f"the video has more than {max_frames} frames")
            if fps_known:
                t = (n - 1) / fps
            else:
                t = float(cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0) / 1000.0
            if t > max_seconds:
                raise InputError(Reason.LIVENESS_TOO_LONG, f"the video lasts more than {max_seconds:.0f} s")
            if time.monotonic() - started > DECODE_BUDGET_S:
                raise InputError(Reason.LIVENESS_VIDEO_UNREADABLE, "decoding the video took too long")
            last_t = t
            if t + 1e-6 < next_t:
                continue
            while next_t <= t + 1e-6:
                next_t += step
            ok, img = cap.retrieve()
            if not ok or img is None or img.ndim != 3 or img.shape[2] != 3:
                continue
            if img.shape[0] * img.shape[1] > max_pixels:
                raise InputError(Reason.INPUT_TOO_MANY_PIXELS, "a decoded frame exceeds the pixel limit")
            col.add(img, t)
    except cv2.error:
        raise InputError(Reason.LIVENESS_VIDEO_UNREADABLE, "the video stream is corrupt") from None
    finally:
        cap.release()
    if n == 0:
        raise InputError(Reason.LIVENESS_VIDEO_UNREADABLE, "no frame could be decoded from the video")
    _check_frame_count(len(col.frames))
    src_fps = fps if fps_known else (n - 1) / last_t if last_t > 0 else 0.0
    oh, ow = (col.originals[0] if col.originals[0] is not None else col.frames[0]).shape[:2]
    duration = n / fps if fps_known else last_t
    return FrameSequence(
        frames=tuple(col.frames), timestamps_s=tuple(col.times), source_fps=float(src_fps),
        duration_s=float(duration), width=int(ow), height=int(oh),
        originals=tuple(col.originals), kind="video",
    )
