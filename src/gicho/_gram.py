"""Moved to :mod:`gicho.moments._gram` (a private helper of the moments package, issue 20).

This old path is the same module object (monkeypatching it patches the real one), kept while
callers still import it; import ``gicho.moments._gram`` instead.
"""

import sys

from gicho.moments import _gram

sys.modules[__name__] = _gram
