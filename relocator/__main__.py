"""`python -m relocator` runs the command-line interface."""

from __future__ import annotations

from relocator.cli.main import main

main()
