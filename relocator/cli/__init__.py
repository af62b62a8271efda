"""The command-line interface: the only layer that talks to a terminal."""

from __future__ import annotations
