"""Moved to :mod:`gicho.moments._tsqr` (a private helper of the moments package, issue 20).

This old path is the same module object (monkeypatching it patches the real one), kept while
callers still import it; import ``gicho.moments._tsqr`` instead.
"""

import sys

from gicho.moments import _tsqr

sys.modules[__name__] = _tsqr
