"""
kbld's and imgpkg's flags on relocator's command line: accepted without effect, mapped
to relocator's own, or refused with one line naming what to use (docs/migration.md).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

from .docpaths import docs_dir


class Refused(argparse.Action):
    """A kbld or imgpkg flag relocator has no counterpart for: one line naming what to use."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        self.alternative = str(kwargs.pop("alternative"))
        super().__init__(option_strings, dest, nargs="?", default=argparse.SUPPRESS,
                         metavar="VALUE", help=f"refused: {self.alternative}")

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        parser.error(f"{option_string} is not supported: {self.alternative}")


def _duration(text: str) -> float:
    """A Go duration (`30s`, `1m30s`, `500ms`, `1h`) or plain seconds, in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "ns": 1e-9}
    parts = re.fullmatch(r"(?:\d+(?:\.\d+)?(?:h|ms|m|s|us|ns))+", text)
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        seconds = float(text)
    elif parts:
        seconds = sum(
            float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)", text)
        )
    else:
        raise argparse.ArgumentTypeError(f"expected a duration such as 30s or 1m, got '{text}'")
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration above zero, got '{text}'")
    return seconds


def _count_from_zero(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, got {value}")
    return value


def add_kbld_ui(
    parser: argparse.ArgumentParser, boolean: Callable[[str], bool], *, files: bool = True
) -> None:
    """
    kbld's and imgpkg's UI flags (and kbld's `--sort`): accepted, without effect.
    `boolean` parses their `=true|false` as the parser's other boolean flags do.
    """
    group = parser.add_argument_group(
        f"accepted for kbld and imgpkg scripts (no effect; {docs_dir()}/migration.md)"
    )
    group.add_argument(
        "--tty", type=boolean, nargs="?", const=True, default=False, metavar="BOOL",
        help="kbld's: relocator picks its display with --progress",
    )
    group.add_argument(
        "--color", type=boolean, nargs="?", const=True, default=True, metavar="BOOL",
        help="kbld's: relocator colours only the live display on a terminal",
    )
    group.add_argument(
        "-y", "--yes", action="store_true", help="kbld's: relocator never prompts"
    )
    group.add_argument(
        "--column", action="append", default=[], metavar="COL",
        help="kbld's: relocator prints no tables to filter",
    )
    if files:
        group.add_argument(
            "--sort", type=boolean, nargs="?", const=True, default=True, metavar="BOOL",
            help="kbld's (unused there too): output keeps the input order",
        )


def add_imgpkg_copy(parser: argparse.ArgumentParser, *, referrers: bool) -> None:
    """imgpkg copy's flags, for the command that does what that copy does."""
    group = parser.add_argument_group("imgpkg copy flags")
    group.add_argument(
        "--registry-username", metavar="USER",
        help="username for the destination registry (-r); visible in shell history and "
        "the process list: prefer RELOCATOR_REGISTRY_* or docker login",
    )
    group.add_argument(
        "--registry-password", metavar="PASSWORD",
        help="password for the destination registry (-r), with --registry-username; "
        "same warning",
    )
    group.add_argument(
        "--registry-token", metavar="TOKEN",
        help="bearer token for the destination registry (-r); same warning",
    )
    group.add_argument(
        "--registry-anon", action="store_true",
        help="send no credentials to any registry",
    )
    group.add_argument(
        "--registry-retry-count", type=_count_from_zero, metavar="N",
        help="retries of a failed request (default 5)",
    )
    group.add_argument(
        "--registry-response-header-timeout", type=_duration, metavar="DURATION",
        help="how long a response may stall (e.g. 30s, 2m; default 120s)",
    )
    if referrers:
        group.add_argument(
            "--cosign-signatures", action="store_true", dest="include_referrers",
            help="imgpkg's: the same as --include-referrers",
        )
    else:
        group.add_argument(
            "--cosign-signatures", action="store_true",
            help="imgpkg's: signatures packaged with pkg --include-referrers always land",
        )
    group.add_argument(
        "--resume", action="store_true",
        help="imgpkg's: blobs and images the destination has are skipped anyway",
    )
    group.add_argument(
        "--repo-based-tags", action=Refused,
        alternative="use --repository-template to keep each source's path, or "
        "--destination-tags imgpkg for imgpkg's sha256-<hex>.imgpkg tags",
    )
