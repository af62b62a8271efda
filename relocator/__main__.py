"""`python -m relocator` runs the command-line interface."""

from __future__ import annotations

import json
import os
import signal
import sys
from types import FrameType


def _stopped_early(signum: int, frame: FrameType | None) -> None:
    """
    SIGINT or SIGTERM while the interpreter is still importing relocator: nothing has
    started, so exit at once with the line and code `relocator.cli.main` documents.
    """
    sigterm = signum == signal.SIGTERM
    message = "terminated by SIGTERM" if sigterm else "interrupted"
    code = 143 if sigterm else 130
    if "--json" in sys.argv:
        line = json.dumps({"type": "Error", "message": message, "hint": None, "exit_code": code})
    else:
        line = f"relocator: error: {message}"
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    os._exit(code)


# Replaced by the command line's own handlers once it runs; imported only after them,
# since loading the command line takes long enough for a signal to land in it.
signal.signal(signal.SIGINT, _stopped_early)
signal.signal(signal.SIGTERM, _stopped_early)

from relocator.cli.main import main

main()
