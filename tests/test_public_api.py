"""The top-level namespace: every advertised name resolves, and importing gicho is light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import gicho


@pytest.mark.parametrize("name", [n for n in gicho.__all__ if n != "__version__"])
def test_every_exported_name_resolves_to_its_module(name):
    value = getattr(gicho, name)
    assert getattr(value, "__name__", name) == name or name in ("R2Components",)
    assert value.__module__.startswith("gicho.")


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="module 'gicho' has no attribute 'nope'"):
        gicho.nope  # noqa: B018


def test_import_gicho_does_not_import_torch_or_sklearn():
    code = "import sys, gicho; print(sorted(m for m in ('torch', 'sklearn', 'scipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
