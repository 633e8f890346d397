"""Fixtures of the train tests: the toy model module, loaded by path under a unique name.

Loading by path (not by ``import _toy``) keeps the helper independent of pytest's import
mode and of same-named helpers in other test folders.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).resolve().parent
_MODULE_NAME = "_gicho_train_tests_toy"


def load_toy() -> ModuleType:
    if _MODULE_NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(_MODULE_NAME, HERE / "_toy.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[_MODULE_NAME] = module  # dataclasses look their module up here
        spec.loader.exec_module(module)
    return sys.modules[_MODULE_NAME]


@pytest.fixture(scope="session")
def toy() -> ModuleType:
    return load_toy()


@pytest.fixture(autouse=True)
def _one_thread(single_torch_thread):
    """Every train test runs on one torch thread (``single_torch_thread``, tests/conftest.py):
    faster on the small shared test machines, and float reductions keep one fixed order."""
