"""
Signals before the event loop runs: exit at once, with the line and code of an
interrupted run.

Until the loop runs nothing has started, so there is nothing to clean up; and a
KeyboardInterrupt raised while Python is still importing (inside the code a dataclass
generates, say) makes the interpreter end by SIGINT even when the exception is caught.
Imports nothing beyond the standard library, so that it can be installed first.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from types import FrameType

#: Exit codes of an interrupted run, as `relocator.cli.main.EXIT_CODES` documents them.
SIGINT_EXIT = 130
SIGTERM_EXIT = 143


def install() -> None:
    """Handle SIGINT and SIGTERM by exiting at once (until the event loop takes over)."""
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)


def _stop(signum: int, frame: FrameType | None) -> None:
    sigterm = signum == signal.SIGTERM
    message = "terminated by SIGTERM" if sigterm else "interrupted"
    code = SIGTERM_EXIT if sigterm else SIGINT_EXIT
    if "--json" in sys.argv:
        line = json.dumps({"type": "Error", "message": message, "hint": None, "exit_code": code})
    else:
        line = f"relocator: error: {message}"
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    os._exit(code)
