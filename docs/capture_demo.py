"""
Capture the demo (`scripts/demo`) as a terminal shows it, into `docs/demo-capture.txt`.

The demo runs on a pseudo-terminal, so relocator draws its live display exactly as for
a user; the bytes are replayed through the small terminal emulator of
`capture_progress.py` and the final screen, with everything that scrolled above it,
is written out (colours left out; the live bars show as their last frame).

    python docs/capture_demo.py [--size MIB]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import capture_progress
from capture_progress import final_screen, run_on_terminal

CAPTURE = HERE / "demo-capture.txt"


def main() -> None:
    """Run the demo on a pseudo-terminal and write what the terminal shows."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--size", default="40", help="MiB of the largest app layer")
    args = parser.parse_args()
    # The demo installs what it needs on a fresh machine first: minutes, not seconds.
    capture_progress.TIMEOUT = 900.0
    captured = run_on_terminal(["--size", args.size], program=[str(HERE.parent / "scripts/demo")])
    screen = final_screen(captured.terminal)
    # Work directories and ports change from run to run; the shape is what matters.
    screen = re.sub(r"/tmp/relocator-demo-[a-z0-9_]+", "WORK", screen)
    if captured.code != 0:
        sys.stderr.write(screen)
        raise SystemExit(f"the demo failed with exit code {captured.code}")
    CAPTURE.write_text(
        "The demo (scripts/demo) on a pseudo-terminal, as the terminal shows it at the\n"
        "end (colours left out; live bars show their last frame). The YAML the steps\n"
        "print on stdout is not part of the terminal capture.\n"
        "Regenerate with: python docs/capture_demo.py\n\n" + screen,
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
