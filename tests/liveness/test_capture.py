"""Bad and odd inputs: always an InputError with a reason code, never a crash or a hang."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from liveness import load_capture, load_capture_bytes
from models.errors import InputError
from models.reasons import Reason


def _write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert vw.isOpened()
    for f in frames:
        vw.write(f)
    vw.release()
    return path


def _code(fn, *a, **kw) -> Reason:
    with pytest.raises(InputError) as e:
        fn(*a, **kw)
    return e.value.code


def test_video_is_sampled_and_downscaled(live_dir):
    seq = load_capture(live_dir / "liveportrait_d9.mp4")
    assert (seq.width, seq.height) == (512, 480) and abs(seq.source_fps - 30) < 0.01
    assert abs(seq.duration_s - 19.6) < 0.1
    assert 280 <= len(seq) <= 300  # ~15 fps of 19.6 s
    assert max(seq.frames[0].shape[:2]) == 480 and seq.frames[0].dtype == np.uint8
    assert seq.original(0).shape[:2] == (480, 512)
    assert all(b > a for a, b in zip(seq.timestamps_s, seq.timestamps_s[1:]))


def test_frame_folder_and_zip_agree(live_dir):
    folder = live_dir / "frames" / "liveportrait_d18_5fps"
    a = load_capture(folder, frames_fps=5)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in sorted(folder.iterdir(), reverse=True):  # order comes from the names, not the zip
            z.write(p, p.name)
    b = load_capture_bytes(buf.getvalue(), frames_fps=5)
    assert a.kind == b.kind == "frames" and len(a) == len(b) and a.timestamps_s == b.timestamps_s
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames))


def test_video_bytes(live_dir):
    seq = load_capture_bytes((live_dir / "dinoman_blink_example.mp4").read_bytes())
    assert (seq.width, seq.height) == (96, 128) and len(seq) >= 40


def test_bad_inputs(tmp_path, live_dir):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert _code(load_capture, empty) is Reason.INPUT_EMPTY
    assert _code(load_capture_bytes, b"") is Reason.INPUT_EMPTY

    text = tmp_path / "notes.mp4"
    text.write_bytes(b"this is not a video at all\n" * 100)
    assert _code(load_capture, text) is Reason.INPUT_WRONG_TYPE
    jpeg = tmp_path / "photo.mp4"
    jpeg.write_bytes(cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))[1].tobytes())
    assert _code(load_capture, jpeg) is Reason.INPUT_WRONG_TYPE

    real = (live_dir / "liveportrait_d18.mp4").read_bytes()
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(real[:64] + bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)))
    assert _code(load_capture, corrupt) in {Reason.LIVENESS_VIDEO_UNREADABLE, Reason.LIVENESS_TOO_FEW_FRAMES}
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(real[: len(real) // 3])  # moov atom at the end is lost
    assert _code(load_capture, truncated) in {Reason.LIVENESS_VIDEO_UNREADABLE, Reason.LIVENESS_TOO_FEW_FRAMES}

    one = _write_video(tmp_path / "one.mp4", [np.full((240, 320, 3), 128, np.uint8)])
    assert _code(load_capture, one) is Reason.LIVENESS_TOO_FEW_FRAMES

    huge = _write_video(tmp_path / "huge.mp4", [np.zeros((4400, 4400, 3), np.uint8)] * 2, fps=2)
    assert _code(load_capture, huge) is Reason.INPUT_TOO_MANY_PIXELS

    assert _code(load_capture, live_dir / "liveportrait_d9.mp4", max_seconds=5) is Reason.LIVENESS_TOO_LONG
    assert _code(load_capture, live_dir / "liveportrait_d9.mp4", max_bytes=1000) is Reason.INPUT_TOO_LARGE
    assert _code(load_capture, tmp_path / "missing.mp4") is Reason.INPUT_MISSING
    assert _code(load_capture_bytes, b"PK\x03\x04garbage") is Reason.INPUT_UNREADABLE
    (tmp_path / "nothing").mkdir()
    assert _code(load_capture, tmp_path / "nothing") is Reason.INPUT_EMPTY


def test_a_tiny_zip_of_huge_blank_frames_is_refused_fast():
    """300 blank 4K PNGs zip to ~140 KB but would take a minute to decode: refused up front."""
    import io as _io
    import time as _time
    import zipfile as _zipfile

    import cv2 as _cv2

    ok, png = _cv2.imencode(".png", np.full((2304, 4096, 3), 128, np.uint8))
    buf = _io.BytesIO()
    with _zipfile.ZipFile(buf, "w", _zipfile.ZIP_DEFLATED) as zf:
        for i in range(300):
            zf.writestr(f"{i:04d}.png", png.tobytes())
    t = _time.perf_counter()
    with pytest.raises(InputError) as e:
        load_capture_bytes(buf.getvalue())
    assert e.value.code is Reason.INPUT_TOO_MANY_PIXELS
    assert _time.perf_counter() - t < 10


@pytest.mark.parametrize("compression, fill", [(zipfile.ZIP_DEFLATED, b"\xff"), (zipfile.ZIP_LZMA, b"\x00")])
def test_a_zip_with_damaged_compressed_data_is_unreadable_input(live_dir, compression, fill):
    """zlib.error / LZMAError (not a BadZipFile) from a frame whose compressed bytes were overwritten."""
    folder = live_dir / "frames" / "liveportrait_d18_5fps"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for p in sorted(folder.iterdir())[:10]:
            z.write(p, p.name)
    data = bytearray(buf.getvalue())
    data[150:250] = fill * 100  # inside the first member's compressed stream
    with pytest.raises(InputError) as e:
        load_capture_bytes(bytes(data))
    assert e.value.code == Reason.INPUT_UNREADABLE


def test_unexpected_errors_are_described_without_their_message():
    import zlib

    from models.errors import describe_unexpected

    try:
        zlib.decompress(b"\xff" * 20 + "张三 110105194912310021".encode())
    except zlib.error as exc:
        text = describe_unexpected(exc)
    assert text.startswith("zlib.error at ") and "test_capture.py" in text
    assert "张三" not in text and "1101" not in text


def test_a_huge_frame_in_a_zip_is_refused_without_inflating_it():
    """A 200 MB frame of zeros zips to ~200 KB; it used to be inflated whole and then refused."""
    import tracemalloc

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("000.jpg", b"\0" * (200 << 20))
    data = buf.getvalue()
    assert len(data) < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as e:
            load_capture_bytes(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert e.value.code is Reason.INPUT_TOO_LARGE
    assert peak < 40 << 20  # well under the frame's 200 MB
