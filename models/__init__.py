"""Model registry, reason codes and the error base class: the bottom layer every package imports."""

from .errors import IdvError, InputError, ModelError
from .reasons import Reason, describe
from .registry import ModelRegistry, ModelSpec, ModelStatus, default_registry, load_manifest

__all__ = [
    "IdvError",
    "InputError",
    "ModelError",
    "ModelRegistry",
    "ModelSpec",
    "ModelStatus",
    "Reason",
    "default_registry",
    "describe",
    "load_manifest",
]
