"""Safe decoding of untrusted image bytes (models.images)."""

import io
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from models import InputError, Reason
from models.images import decode_image


def _png(arr: np.ndarray) -> bytes:
    b = io.BytesIO()
    Image.fromarray(arr).save(b, format="PNG")
    return b.getvalue()


def test_16_bit_image_is_decoded_without_a_float_copy():
    """A 16-bit grey PNG compresses to a few KB; decoding must cost bytes, not float64s, per pixel."""
    data = _png(np.full((3000, 3000), 40000, np.uint16))
    tracemalloc.start()
    try:
        img = decode_image(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert img.shape == (3000, 3000, 3) and img.dtype == np.uint8 and int(img[0, 0, 0]) == 40000 >> 8
    assert peak < 9 * 3000 * 3000  # uint16 source + 8-bit result (~5 bytes/px); float64 alone was 8


@pytest.mark.parametrize(
    "data, code",
    [(b"", Reason.INPUT_EMPTY), (b"GIF89a" + b"\0" * 40, Reason.INPUT_WRONG_TYPE),
     (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, Reason.INPUT_UNREADABLE)],
    ids=["empty", "gif", "truncated-png"],
)
def test_bad_bytes_get_a_reason(data, code):
    with pytest.raises(InputError) as e:
        decode_image(data)
    assert e.value.code is code


def test_pixel_bomb_is_refused_before_decoding():
    img = Image.new("L", (20000, 20000))
    b = io.BytesIO()
    img.save(b, format="PNG", optimize=False, compress_level=9)
    with pytest.raises(InputError) as e:
        decode_image(b.getvalue(), max_bytes=10**9)
    assert e.value.code is Reason.INPUT_TOO_MANY_PIXELS


def test_device_paths_are_wrong_type_not_missing():
    """/dev/zero exists but is no image or video: the reason says so (it used to say 'not found')."""
    from liveness import load_capture
    from models.images import read_image_file

    for load in (read_image_file, load_capture):
        with pytest.raises(InputError) as e:
            load("/dev/zero")
        assert e.value.code == Reason.INPUT_WRONG_TYPE and "regular file" in e.value.detail


def test_a_regular_file_that_cannot_be_read_is_unreadable():
    from models.images import read_image_file

    with pytest.raises(InputError) as e:
        read_image_file("/proc/self/mem")  # a regular file whose read() fails with EIO
    assert e.value.code == Reason.INPUT_UNREADABLE
