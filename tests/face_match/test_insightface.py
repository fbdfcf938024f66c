"""The opt-in insightface pack (IDV_INSIGHTFACE_DIR), through insightface 2.1's model zoo.

No licensed pack exists on this machine and none may be downloaded, so the pack here is an ONNX file
built by the test with an ArcFace recognition model's interface (one 1x3x112x112 input, one
embedding output) and a fixed random projection as its weights. What is tested is the wiring, which
is the product's: the model zoo routes the file as a recognition model, the crop is insightface's own
alignment template, insightface's preprocessing reaches the graph, thresholds are bound to the exact
file, and every broken pack fails with a clear error naming the file and the fix. The accuracy of a
real pack is what `python -m benchmarks.face_match --insightface-dir DIR` measures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from face_match import REFERENCE_5PTS, FaceMatcher, MatchConfig, align_face
from face_match.engines import INSIGHTFACE_THRESHOLDS_FILE
from models import ModelError, Reason
from models.images import read_image_file

DIM = 64


def _projection(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((3 * 112 * 112, DIM)).astype(np.float32)


def _write_pack_model(path: Path, seed: int = 0) -> np.ndarray:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = _projection(seed)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["data"], ["flat"], axis=1, name="flatten"),
         helper.make_node("MatMul", ["flat", "W"], ["fc1"], name="embedding")],
        "arcface_shaped",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", DIM])],
        [numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return w


@pytest.fixture
def pack(tmp_path: Path) -> tuple[Path, np.ndarray]:
    d = tmp_path / "pack"
    d.mkdir()
    w = _write_pack_model(d / "w600k_r50.onnx")
    (d / "README.txt").write_text("not a model")
    return d, w


def _calibrate(d: Path, thresholds: dict[str, float]) -> None:
    from benchmarks.face_match import write_pack_thresholds
    from face_match.engines import InsightFaceEmbedder

    write_pack_thresholds(thresholds, d, "yunet+" + InsightFaceEmbedder(d).model_id)


def test_alignment_template_is_insightfaces_own():
    from insightface.utils import face_align

    assert np.allclose(REFERENCE_5PTS, face_align.arcface_dst)


def test_pack_embeddings_are_the_models_on_insightfaces_preprocessing(pack, registry, testdata: Path):
    d, w = pack
    matcher = FaceMatcher(MatchConfig(insightface_dir=d, threshold_override=0.5), registry)
    assert "insightface:w600k_r50.onnx@" in matcher.model_id and matcher.threshold == 0.5
    img = read_image_file(testdata / "faces" / "img1.jpg")
    got = matcher.embed(img)
    # the same crop through insightface's documented preprocessing, by hand: RGB, (x - 127.5) / 127.5
    face = matcher.detect(img)[0]
    aligned = align_face(img, face.landmarks)
    blob = ((aligned[:, :, ::-1].astype(np.float32) - 127.5) / 127.5).transpose(2, 0, 1).reshape(1, -1)
    want = (blob @ w).reshape(-1)
    want /= np.linalg.norm(want)
    assert got.shape == (DIM,) and np.allclose(got, want, atol=1e-4)
    # and the matcher's decisions run on it: the same photo matches itself
    r = matcher.match(img, img)
    assert r.similarity > 0.999 and r.passed


def test_pack_thresholds_come_from_its_calibration_bound_to_the_file(pack, registry):
    d, _ = pack
    with pytest.raises(ModelError) as e:
        FaceMatcher(MatchConfig(insightface_dir=d), registry)
    assert e.value.code is Reason.MODEL_MISSING
    assert "w600k_r50.onnx" in e.value.detail and "--write-thresholds" in e.value.detail

    _calibrate(d, {"1e-2": 0.31, "1e-3": 0.42, "1e-4": 0.55})
    saved = json.loads((d / INSIGHTFACE_THRESHOLDS_FILE).read_text())
    assert saved["model"] == "w600k_r50.onnx" and len(saved["sha256"]) == 64
    assert FaceMatcher(MatchConfig(insightface_dir=d, fmr="1e-3"), registry).threshold == 0.42
    assert FaceMatcher(MatchConfig(insightface_dir=d, fmr="1e-4"), registry).threshold == 0.55

    _write_pack_model(d / "w600k_r50.onnx", seed=1)  # the file replaced: its calibration no longer holds
    with pytest.raises(ModelError) as e:
        FaceMatcher(MatchConfig(insightface_dir=d), registry)
    assert e.value.code is Reason.MODEL_CHECKSUM_MISMATCH and "another file" in e.value.detail

    (d / INSIGHTFACE_THRESHOLDS_FILE).write_text("{not json")
    with pytest.raises(ModelError) as e:
        FaceMatcher(MatchConfig(insightface_dir=d), registry)
    assert e.value.code is Reason.MODEL_MISSING and INSIGHTFACE_THRESHOLDS_FILE in e.value.detail


def test_broken_packs_fail_clearly(tmp_path: Path, registry):
    cases = {
        "missing": (tmp_path / "nowhere", "not a directory"),
        "empty": (tmp_path / "empty", "no recognition model"),
        "garbage": (tmp_path / "garbage", "w600k_r50.onnx in IDV_INSIGHTFACE_DIR is not a loadable ONNX model"),
    }
    (tmp_path / "empty").mkdir()
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "w600k_r50.onnx").write_bytes(b"\x08\x07not a protobuf at all" * 50)
    for name, (d, words) in cases.items():
        with pytest.raises(ModelError) as e:
            FaceMatcher(MatchConfig(insightface_dir=d), registry)
        assert words in e.value.detail, (name, e.value.detail)


def test_settings_reach_the_matcher(pack, tmp_path: Path):
    from api.pipeline import match_config
    from api.settings import Settings

    d, _ = pack
    cfg = match_config(Settings(data_dir=tmp_path / "data", insightface_dir=d, face_threshold=0.37))
    assert cfg.insightface_dir == d and cfg.threshold_override == 0.37
    assert match_config(Settings(data_dir=tmp_path / "data")).insightface_dir is None  # never the default
