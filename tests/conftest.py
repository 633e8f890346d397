"""Shared test set-up: helper modules in tests/ (such as the toy task) become importable."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

# Figures render off-screen in the tests; runs never need a display.
matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")
