"""One error base class: every failure the product reports carries a reason code and an HTTP status.

"Could not evaluate" raises an IdvError; "evaluated and failed" is a result with passed=False.
The API renders IdvError with one handler; the CLI prints its one-line message.
"""

from __future__ import annotations

import traceback

from .reasons import Reason


class IdvError(Exception):
    """A failure with a stable reason code. `detail` must never contain applicant data."""

    status_code: int = 422

    def __init__(self, code: Reason, detail: str, *, status_code: int | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = Reason(code)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code


class InputError(IdvError):
    """The caller's input cannot be used (missing, corrupt, wrong type, too large)."""

    status_code = 422


class ModelError(IdvError):
    """A model file is missing or altered: an operator problem, never the caller's."""

    status_code = 503


def one_line(e: Exception, env_prefix: str = "") -> str:
    """A pydantic ValidationError as one line: where and what, never the offending value (pydantic's
    own text spans lines, quotes the input and links to its website). With env_prefix, a field is
    named as the environment variable that sets it (port -> IDV_PORT)."""
    errors = getattr(e, "errors", None)
    if not callable(errors):
        return type(e).__name__
    parts = []
    for err in errors():
        where = ".".join(str(x) for x in err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if where and env_prefix:
            where = env_prefix + where.upper()
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)[:500]


def describe_unexpected(exc: BaseException) -> str:
    """What a log line may say about an unexpected exception: its qualified type and where it was
    raised (innermost project or library frame), never its message, which can quote input values
    (a zlib.error says only 'error'; "zlib.error at liveness/capture.py:241 in read" says where)."""
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ in ("builtins", "__main__") else f"{kind.__module__}.{kind.__qualname__}"
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return name
    f = frames[-1]
    parts = f.filename.replace("\\", "/").split("/")
    where = "/".join(parts[-2:])
    return f"{name} at {where}:{f.lineno} in {f.name}"
