"""uvicorn's HTTP/1.1 protocol with the API's error shape for requests that never reach the app.

A request h11 cannot parse (a TLS hello on the plain port, a header line without a colon, a header
block over the size limit) is answered by uvicorn itself, before FastAPI sees it, as `400` with
the plain-text body "Invalid HTTP request received.". A lending app's client that parses every
error as `{"type", "detail", "verification_id"}` then fails on its own error handling. This
subclass sends the same 400 in that shape; the parser's message is not echoed (it can quote bytes
of the request).
"""

from __future__ import annotations

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from models.reasons import Reason

from .errors import error_body

_BODY = json.dumps(error_body(Reason.INPUT_INVALID, "malformed HTTP request")).encode()


class JsonErrorH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:  # noqa: ARG002 - msg deliberately not echoed
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(_BODY)).encode()),
            (b"connection", b"close"),
        ]
        self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")))
        self.transport.write(self.conn.send(h11.Data(data=_BODY)))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.transport.close()


__all__ = ["JsonErrorH11Protocol"]
