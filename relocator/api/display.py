"""
What a display of a run needs besides the requests and events: the report's parts,
host states, and the helpers the command line writes its output with. Stable as the
rest of `relocator.api`, but of interest only to a front end.
"""

from __future__ import annotations

from relocator.engine import ImageFailure, ImageResult, Report, first_error
from relocator.oci import Reference
from relocator.outfiles import check_output, write_atomically
from relocator.redaction import forget_all, remember, scrub
from relocator.transport import HostState
from relocator.transport.ratelimit import window_text

from .text import count, megabytes

__all__ = [
    "HostState",
    "ImageFailure",
    "ImageResult",
    "Reference",
    "Report",
    "check_output",
    "count",
    "first_error",
    "forget_all",
    "megabytes",
    "remember",
    "scrub",
    "window_text",
    "write_atomically",
]
