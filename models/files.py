"""Reading the small text files an operator points the product at (policy, holiday calendar, batch
manifests, challenge files): bounded, regular files only, UTF-8.

`Path.read_text` on `/dev/zero` reads until memory runs out, and on a FIFO it blocks until a writer
appears: both were found by pointing `--policy` and `batch` at them. Every such file goes through
`read_text_file`, which checks what the path is before opening it and never reads past the cap.
"""

from __future__ import annotations

import stat
from pathlib import Path

from .errors import InputError
from .reasons import Reason

DEFAULT_MAX_TEXT_BYTES = 64 * 1024 * 1024  # a manifest of ~500k applicants; policies are a few KB


def read_file_bytes(path: str | Path, *, what: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most max_bytes; InputError with input.missing / wrong_type /
    too_large / unreadable. Shared by every file the product reads on an operator's say-so."""
    p = Path(path)
    try:
        st = p.stat()  # stat, unlike open, does not block on a FIFO
    except FileNotFoundError:
        raise InputError(Reason.INPUT_MISSING, f"{what} not found: {p.name}") from None
    except OSError as e:
        raise InputError(Reason.INPUT_UNREADABLE, f"{what} cannot be read: {p.name} ({type(e).__name__})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(Reason.INPUT_WRONG_TYPE, f"{what} is a folder, not a file: {p.name}")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(Reason.INPUT_WRONG_TYPE, f"{what} is not a regular file (a device, pipe or socket): {p.name}")
    if st.st_size > max_bytes:
        raise InputError(Reason.INPUT_TOO_LARGE, f"{what} is {st.st_size} bytes; limit {max_bytes}")
    try:
        with p.open("rb") as f:
            data = f.read(max_bytes + 1)  # a regular file may still grow (or lie, as /proc files do)
    except OSError as e:  # e.g. /proc/self/mem: a regular file that cannot be read
        raise InputError(Reason.INPUT_UNREADABLE, f"{what} cannot be read: {p.name} ({type(e).__name__})") from None
    if len(data) > max_bytes:
        raise InputError(Reason.INPUT_TOO_LARGE, f"{what} is over {max_bytes} bytes")
    return data


def read_text_file(path: str | Path, *, what: str, max_bytes: int = DEFAULT_MAX_TEXT_BYTES,
                   encoding: str = "utf-8") -> str:
    """The file's text (read_file_bytes's checks, then the encoding: input.unreadable if it is not)."""
    data = read_file_bytes(path, what=what, max_bytes=max_bytes)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise InputError(Reason.INPUT_UNREADABLE, f"{what} is not {encoding.upper()} text: {Path(path).name}") from None


__all__ = ["DEFAULT_MAX_TEXT_BYTES", "read_file_bytes", "read_text_file"]
