"""The model registry: where every model file lives, and proof that it is the file we expect.

Files are located inside installed packages without importing them (importing mediapipe costs
seconds), verified by sha256 and input shape once per process, and never downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelError
from .reasons import Reason

MANIFEST = Path(__file__).with_name("manifest.toml")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    package: str
    path: str
    sha256: str
    license: str
    purpose: str
    input_shape: tuple[int, ...] | None = None
    thresholds: dict[str, float] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        """Short stable id for results and benchmarks: file name plus checksum prefix."""
        return f"{Path(self.path).stem}@{self.sha256[:12]}"


@dataclass(frozen=True)
class ModelStatus:
    name: str
    package: str
    file: str
    ok: bool
    detail: str
    model_id: str


def load_manifest(path: Path = MANIFEST) -> dict[str, ModelSpec]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    specs = {}
    for name, entry in data["models"].items():
        shape = entry.get("input_shape")
        specs[name] = ModelSpec(
            name=name,
            package=entry["package"],
            path=entry["path"],
            sha256=entry["sha256"].lower(),
            license=entry["license"],
            purpose=entry["purpose"],
            input_shape=tuple(shape) if shape else None,
            thresholds={k: float(v) for k, v in entry.get("thresholds", {}).items()},
        )
    return specs


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _onnx_input_shape(path: Path) -> tuple[int, ...]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    first = next(i for i in model.graph.input if i.name not in initializers)
    return tuple(
        d.dim_value if d.HasField("dim_value") else -1 for d in first.type.tensor_type.shape.dim
    )


class ModelRegistry:
    """Resolves and verifies model files; hands out one shared onnxruntime session per model.

    `overrides` maps a model name to another file (tests use it to point at a tampered copy;
    operators could use it for a vetted local mirror) — the checksum is verified all the same.
    """

    def __init__(
        self,
        specs: dict[str, ModelSpec] | None = None,
        overrides: dict[str, Path] | None = None,
        intra_op_threads: int = 1,
    ) -> None:
        self.specs = specs if specs is not None else load_manifest()
        self._overrides = {k: Path(v) for k, v in (overrides or {}).items()}
        self._verified: dict[str, Path] = {}
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._threads = intra_op_threads

    def spec(self, name: str) -> ModelSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise ModelError(Reason.MODEL_MISSING, f"no model named {name!r} in the manifest") from None

    def locate(self, name: str) -> Path:
        """Where the file should be, without verifying it."""
        spec = self.spec(name)
        if name in self._overrides:
            return self._overrides[name]
        pkg = _package_dir(spec.package)
        if pkg is None:
            raise ModelError(
                Reason.MODEL_MISSING,
                f"model {name!r}: package {spec.package!r} is not installed; run scripts/setup "
                f"(it installs requirements.lock)",
            )
        return pkg / spec.path

    def path(self, name: str) -> Path:
        """The verified path of a model file (sha256 and input shape checked once per process)."""
        with self._lock:
            if name in self._verified:
                return self._verified[name]
            spec = self.spec(name)
            file = self.locate(name)
            if not file.is_file():
                raise ModelError(
                    Reason.MODEL_MISSING,
                    f"model {name!r}: file {file} is missing; reinstall package {spec.package!r} "
                    f"with scripts/setup (pinned in requirements.lock)",
                )
            digest = sha256_file(file)
            if digest != spec.sha256:
                raise ModelError(
                    Reason.MODEL_CHECKSUM_MISMATCH,
                    f"model {name!r}: file {file} has sha256 {digest}, expected {spec.sha256}; "
                    f"the file was altered or the wrong package version is installed — reinstall "
                    f"{spec.package!r} from requirements.lock",
                )
            if spec.input_shape is not None and file.suffix == ".onnx":
                shape = _onnx_input_shape(file)
                if len(shape) != len(spec.input_shape) or any(
                    e != -1 and a != e for a, e in zip(shape, spec.input_shape)
                ):
                    raise ModelError(
                        Reason.MODEL_SHAPE_MISMATCH,
                        f"model {name!r}: input shape {shape} != expected {spec.input_shape}",
                    )
            self._verified[name] = file
            return file

    def session(self, name: str, **session_options: Any):
        """One onnxruntime InferenceSession per model, built once; run() is thread-safe."""
        file = self.path(name)
        with self._lock:
            if name not in self._sessions:
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.intra_op_num_threads = self._threads
                opts.log_severity_level = 3
                for k, v in session_options.items():
                    setattr(opts, k, v)
                self._sessions[name] = ort.InferenceSession(
                    str(file), sess_options=opts, providers=["CPUExecutionProvider"]
                )
            return self._sessions[name]

    def thresholds(self, name: str) -> dict[str, float]:
        return dict(self.spec(name).thresholds)

    def verify_all(self) -> list[ModelStatus]:
        out = []
        for name, spec in self.specs.items():
            try:
                file = self.path(name)
                out.append(ModelStatus(name, spec.package, str(file), True, "ok", spec.model_id))
            except ModelError as e:
                out.append(
                    ModelStatus(name, spec.package, spec.path, False, f"{e.code}: {e.detail}", spec.model_id)
                )
        return out


_default: ModelRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> ModelRegistry:
    """The process-wide registry (engines take a registry argument; this is only the default)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ModelRegistry()
        return _default
