"""Evidence images (and, sealed, a case's read fields) encrypted at rest: AES-256-GCM, one file per object, key passed in.

File layout: b"IDV1" + 12-byte random nonce + ciphertext||tag. The object id is bound as associated
data, so a file renamed onto another id fails to decrypt (tampering is detected, never served).
Object ids are random hex generated here; anything else is refused (no path traversal).
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from models.errors import IdvError
from models.reasons import Reason

_MAGIC = b"IDV1"
_ID_RE = re.compile(r"^[0-9a-f]{32}$")


class EncryptedStore:
    """Thread-safe (no mutable state besides the files; writes are atomic renames)."""

    def __init__(self, directory: str | Path, key: bytes) -> None:
        if not isinstance(key, bytes | bytearray) or len(key) != 32:
            raise IdvError(Reason.REVIEW_STORE_KEY_INVALID, "the store key must be 32 bytes (AES-256)", status_code=500)
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._aead = AESGCM(bytes(key))

    def _path(self, object_id: str) -> Path:
        if not isinstance(object_id, str) or not _ID_RE.match(object_id):
            raise IdvError(Reason.REVIEW_EVIDENCE_MISSING, "malformed object id", status_code=404)
        return self.directory / object_id[:2] / f"{object_id}.bin"

    def put(self, data: bytes) -> str:
        object_id = secrets.token_hex(16)
        path = self._path(object_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        nonce = os.urandom(12)
        blob = _MAGIC + nonce + self._aead.encrypt(nonce, bytes(data), object_id.encode())
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
        return object_id

    def get(self, object_id: str) -> bytes:
        path = self._path(object_id)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise IdvError(Reason.REVIEW_EVIDENCE_MISSING, "the stored object does not exist", status_code=404) from None
        if blob[:4] != _MAGIC or len(blob) < 4 + 12 + 16:
            raise IdvError(Reason.REVIEW_EVIDENCE_TAMPERED, "the stored object is not in the store's format", status_code=500)
        try:
            return self._aead.decrypt(blob[4:16], blob[16:], object_id.encode())
        except InvalidTag:
            raise IdvError(
                Reason.REVIEW_EVIDENCE_TAMPERED, "the stored object failed authentication (altered or wrong key)",
                status_code=500,
            ) from None

    def delete(self, object_id: str) -> bool:
        """True when a file was removed (purge is real: the ciphertext is gone)."""
        try:
            self._path(object_id).unlink()
            return True
        except FileNotFoundError:
            return False

    def seal(self, data: bytes, context: str) -> str:
        """Small values kept in database rows (a case's read fields): base64 of nonce + ciphertext,
        bound to `context` (the row's verification id) so a value copied onto another row fails."""
        nonce = os.urandom(12)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, bytes(data), context.encode())).decode()

    def unseal(self, token: str, context: str) -> bytes:
        try:
            blob = base64.b64decode(token.encode(), validate=True)
            return self._aead.decrypt(blob[:12], blob[12:], context.encode())
        except (InvalidTag, ValueError):
            raise IdvError(
                Reason.REVIEW_EVIDENCE_TAMPERED, "a sealed value failed authentication (altered or wrong key)",
                status_code=500,
            ) from None

    def exists(self, object_id: str) -> bool:
        return self._path(object_id).is_file()


__all__ = ["EncryptedStore"]
