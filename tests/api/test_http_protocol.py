"""Requests uvicorn's parser rejects before the app sees them still get the API's JSON error shape,
on a real uvicorn server over a real socket."""

from __future__ import annotations

import json
import socket

import pytest

from api.http_protocol import JsonErrorH11Protocol
from tests.servers import serve_in_thread


async def _ok_app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def server():
    with serve_in_thread(_ok_app, http=JsonErrorH11Protocol, lifespan="off") as port:
        yield port


def _exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(raw)
        data = b""
        while chunk := c.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body


TLS_CLIENT_HELLO = bytes.fromhex("16030100a5010000a10303") + b"\x00" * 32 + b"\x00\x00\x02\x13\x01\x01\x00"


@pytest.mark.parametrize("raw", [
    TLS_CLIENT_HELLO,                                                   # https:// sent to the plain port
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nthis line has no colon\r\n\r\n",  # broken header
    # a header block still unfinished past h11's 16 KiB limit
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 30_000,
    b"\x00\xff\xfe garbage \r\n\r\n",
], ids=["tls-hello", "header-without-colon", "huge-header", "binary"])
def test_unparseable_request_gets_the_json_error_shape(server, raw):
    status, headers, body = _exchange(server, raw)
    assert status == 400 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"type": "input.invalid", "detail": "malformed HTTP request", "verification_id": None}


def test_a_well_formed_request_is_untouched(server):
    status, _, body = _exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200 and body == b"ok"
