import shutil

import pytest

from models import ModelError, ModelRegistry, Reason, load_manifest


def test_every_model_file_verifies(registry):
    statuses = registry.verify_all()
    assert {s.name for s in statuses} == set(load_manifest())
    bad = [s for s in statuses if not s.ok]
    assert not bad, bad


def test_tampered_copy_fails_loudly(tmp_path, registry):
    original = registry.path("sface")
    copy = tmp_path / original.name
    shutil.copyfile(original, copy)
    with copy.open("r+b") as f:  # flip one byte in the middle of the weights
        f.seek(copy.stat().st_size // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xFF]))
    reg = ModelRegistry(overrides={"sface": copy})
    with pytest.raises(ModelError) as e:
        reg.path("sface")
    assert e.value.code == Reason.MODEL_CHECKSUM_MISMATCH
    assert "sface" in e.value.detail and "reinstall" in e.value.detail


def test_missing_file_names_the_file_and_the_fix(tmp_path):
    reg = ModelRegistry(overrides={"yunet": tmp_path / "nope.onnx"})
    with pytest.raises(ModelError) as e:
        reg.path("yunet")
    assert e.value.code == Reason.MODEL_MISSING
    assert "nope.onnx" in e.value.detail and "scripts/setup" in e.value.detail


def test_unknown_model_name():
    with pytest.raises(ModelError):
        ModelRegistry().path("does-not-exist")


def test_session_is_built_once(registry):
    assert registry.session("yunet") is registry.session("yunet")
