"""An import-only stand-in for torchvision, so that timm's model code imports beside a torch
build that has no matching torchvision (as on gicho's CPU development machines, where PyPI's
torchvision does not import beside the local torch wheel).

timm imports torchvision at module level for its data transforms, datasets and a frozen
BatchNorm; none of that runs when a ViT is built and called. ``install()`` puts a finder first
on ``sys.meta_path`` that answers every ``torchvision.*`` import with a module whose attributes
are placeholder classes that refuse to be instantiated, so any accidental use fails loudly
instead of computing something. Only ``benchmarks/vit_parity.py --torchvision-stub`` uses it;
never the library or the tests.
"""

from __future__ import annotations

import enum
import importlib.abc
import importlib.machinery
import sys
import types


class _Placeholder:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("torchvision is only stubbed for importing timm; this object was used")


class InterpolationMode(enum.Enum):  # timm reads its members at import time
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        if name == "InterpolationMode":
            return InterpolationMode
        return type(name, (_Placeholder,), {})


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: object, target: object = None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _StubModule(spec.name)
        module.__path__ = []
        module.__version__ = "0+stub"
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def install() -> None:
    """Answer every later ``import torchvision...`` with the stub (idempotent)."""
    if not any(isinstance(f, _StubFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _StubFinder())
