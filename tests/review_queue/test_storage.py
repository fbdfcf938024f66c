"""Evidence encrypted at rest with AES-256-GCM; tampering and wrong keys are detected."""

from __future__ import annotations

import secrets

import pytest

from models.errors import IdvError
from models.reasons import Reason
from review_queue.storage import EncryptedStore


def test_round_trip_and_ciphertext_on_disk(tmp_path, face_bytes):
    store = EncryptedStore(tmp_path, secrets.token_bytes(32))
    data = face_bytes["img1.jpg"]
    oid = store.put(data)
    assert store.get(oid) == data
    files = list(tmp_path.rglob("*.bin"))
    assert len(files) == 1
    raw = files[0].read_bytes()
    assert data[:64] not in raw and b"\xff\xd8\xff" not in raw[:32]  # no JPEG in the clear
    assert store.delete(oid) is True and not files[0].exists() and store.delete(oid) is False


def test_tamper_wrong_key_and_swapped_files(tmp_path):
    key = secrets.token_bytes(32)
    store = EncryptedStore(tmp_path, key)
    a, b = store.put(b"alpha" * 100), store.put(b"beta" * 100)
    pa = next(tmp_path.rglob(f"{a}.bin"))
    pb = next(tmp_path.rglob(f"{b}.bin"))
    with pytest.raises(IdvError) as ei:
        EncryptedStore(tmp_path, secrets.token_bytes(32)).get(a)
    assert ei.value.code is Reason.REVIEW_EVIDENCE_TAMPERED
    pa.write_bytes(pb.read_bytes())  # a file moved onto another id: bound by associated data
    with pytest.raises(IdvError) as ei:
        store.get(a)
    assert ei.value.code is Reason.REVIEW_EVIDENCE_TAMPERED
    blob = bytearray(pb.read_bytes())
    blob[-1] ^= 1
    pb.write_bytes(bytes(blob))
    with pytest.raises(IdvError):
        store.get(b)


@pytest.mark.parametrize("oid", ["../../etc/passwd", "", "ABC", "0" * 31, "g" * 32])
def test_malformed_ids_refused(tmp_path, oid):
    store = EncryptedStore(tmp_path, secrets.token_bytes(32))
    with pytest.raises(IdvError) as ei:
        store.get(oid)
    assert ei.value.code is Reason.REVIEW_EVIDENCE_MISSING


def test_key_must_be_32_bytes(tmp_path):
    with pytest.raises(IdvError) as ei:
        EncryptedStore(tmp_path, b"short")
    assert ei.value.code is Reason.REVIEW_STORE_KEY_INVALID


def test_migrations_match_the_models(engine):
    """Alembic's history builds exactly the tables the code declares (review queue and API), on
    SQLite and PostgreSQL: autogenerate finds nothing to add, drop or alter."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import api.db  # noqa: F401  registers the API's tables on the shared metadata
    from review_queue.db import Base

    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
