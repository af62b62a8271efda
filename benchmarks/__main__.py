"""`python -m benchmarks`: see `benchmarks/README.md`."""

from __future__ import annotations

import sys

try:
    from .cli import main
except ModuleNotFoundError as exc:
    # tests.support (registries, images, checks) imports its own dependencies, such
    # as cryptography for its token server; say which one is missing, not a traceback.
    sys.exit(
        f"benchmarks: missing Python module {exc.name!r}; the benchmarks reuse "
        "tests.support, so they need its dependencies (the `tests` dependency group) "
        "besides pyinstrument (the `bench` group)"
    )

sys.exit(main())
