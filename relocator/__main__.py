"""`python -m relocator` runs the command-line interface."""

from __future__ import annotations

from relocator.cli import early

# Before the command line is imported: that takes long enough for a signal to land in it.
early.install()

from relocator.cli.main import main

main()
