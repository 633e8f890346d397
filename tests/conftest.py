"""Shared test set-up: helper modules in tests/ (such as the toy task) become importable."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib
import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

# Figures render off-screen in the tests; runs never need a display.
matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def single_torch_thread():
    """Run the test on one torch CPU thread, then restore the count it found.

    Tiny models gain nothing from intra-op threads and lose much on a shared 2-core machine;
    one thread also keeps float reductions in one fixed order. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("single_torch_thread")``.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
