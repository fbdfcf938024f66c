"""Decoding untrusted image bytes into BGR uint8 arrays, safely.

Shared by every package that takes a photo (OCR, face matching, the API): content-sniffed (never by
file name), pixel count bounded before the full decode (decompression bombs), EXIF orientation
honoured, HEIC/HEIF via pillow-heif, grey / RGBA / 16-bit normalised to 8-bit BGR.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .errors import InputError
from .files import read_file_bytes
from .reasons import Reason

DEFAULT_MAX_PIXELS = 50_000_000  # a 48-MP phone photo fits; a 20k x 20k bomb does not
DEFAULT_MAX_BYTES = 30 * 1024 * 1024
# No photo of a card or a face is this long on one side (a 200-MP sensor is 16320 px wide), and
# JPEG cannot store more than 65500: a 70000 x 20 strip is small in pixels but unusable and
# would fail later, when the evidence is encoded for storage.
MAX_SIDE = 20_000

_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"RIFF", 0, "webp?"),
    (b"BM", 0, "bmp"),
    (b"II*\x00", 0, "tiff"),
    (b"MM\x00*", 0, "tiff"),
)
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif")


def sniff_image_type(data: bytes) -> str | None:
    """The image format from its first bytes, or None when it is not an image we accept."""
    for sig, off, kind in _SIGNATURES:
        if data[off : off + len(sig)] == sig:
            if kind == "webp?":
                return "webp" if data[8:12] == b"WEBP" else None
            return kind
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "heif"
    return None


def _register_heif() -> None:
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:  # pragma: no cover - pinned in requirements.lock
        pass


def decode_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    what: str = "image",
) -> np.ndarray:
    """Decode untrusted bytes to a BGR uint8 image, or raise InputError with a reason code."""
    from PIL import Image, ImageOps

    if not data:
        raise InputError(Reason.INPUT_EMPTY, f"{what} is empty (0 bytes)")
    if len(data) > max_bytes:
        raise InputError(Reason.INPUT_TOO_LARGE, f"{what} is {len(data)} bytes; limit {max_bytes}")
    kind = sniff_image_type(data)
    if kind is None:
        raise InputError(Reason.INPUT_WRONG_TYPE, f"{what} is not a JPEG, PNG, WebP, HEIC, BMP or TIFF image")
    if kind == "heif":
        _register_heif()
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise InputError(
                    Reason.INPUT_TOO_MANY_PIXELS, f"{what} is {w}x{h} pixels; limit {max_pixels} pixels"
                )
            if max(w, h) > MAX_SIDE:
                raise InputError(
                    Reason.INPUT_TOO_MANY_PIXELS, f"{what} is {w}x{h} pixels; at most {MAX_SIDE} pixels a side"
                )
            if w < 16 or h < 16:
                raise InputError(Reason.INPUT_TOO_SMALL, f"{what} is {w}x{h} pixels; too small to use")
            im.load()
            im = ImageOps.exif_transpose(im)
            arr = _to_bgr8(im)
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError(Reason.INPUT_TOO_MANY_PIXELS, f"{what} exceeds the pixel limit") from None
    except Exception:
        raise InputError(Reason.INPUT_UNREADABLE, f"{what} could not be decoded (corrupt or truncated)") from None
    return arr


def _to_bgr8(im) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        import cv2

        a = np.asarray(im)
        if a.dtype != np.uint16:  # mode "I" is int32: negative or >16-bit values are clipped
            a = np.clip(a, 0, 65535).astype(np.uint16)
        hi = int(a.max()) if a.size else 0
        # scale in place-friendly integer steps: a float64 copy of a 49-MP image costs 400 MB
        a8 = (a >> 8).astype(np.uint8) if hi > 255 else a.astype(np.uint8)
        return cv2.cvtColor(a8, cv2.COLOR_GRAY2BGR)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        # flatten transparency onto white, as a printed/photographed document would look
        from PIL import Image

        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, rgba)
    rgb = np.asarray(im.convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1])


def read_image_file(path: str | Path, **kw) -> np.ndarray:
    """decode_image for a file on disk: a folder, device, pipe, missing or oversized file each has
    its reason (models.files.read_file_bytes) before anything is decoded."""
    data = read_file_bytes(path, what=kw.get("what", "image"), max_bytes=kw.get("max_bytes", DEFAULT_MAX_BYTES))
    return decode_image(data, **kw)
