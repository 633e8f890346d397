"""Shared test set-up: helper modules in tests/ (such as the toy task) become importable."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib
import pytest
from hypothesis import HealthCheck, settings

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

# Property tests check identities, not speed: a slow CI machine must not fail them on
# hypothesis' per-example deadline. Examples are derived from each test's name
# (derandomize), so CI is reproducible: a failure seen once is seen again. Explore new
# examples locally with `HYPOTHESIS_PROFILE=explore pytest`.
settings.register_profile(
    "gicho", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("explore", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "gicho"))

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
