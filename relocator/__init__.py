"""relocator: move container images between registries and tarballs, digests unchanged."""

from __future__ import annotations

__version__ = "0.1.0"
