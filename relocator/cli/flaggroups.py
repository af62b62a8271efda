"""
Flags that several commands share, one function per group of them.
"""

from __future__ import annotations

import argparse

from .docpaths import docs_dir
from .flagtypes import LIMIT_DEFAULTS, Insecure, boolean, duration, limit, positive

#: `relocator.engine.execute.TAG_SCHEMES` (not imported, to keep `--help` fast).
TAG_SCHEMES = ("relocator", "kbld", "imgpkg")

#: Streams of one large blob at most (`relocator.store.ranges.RangePolicy.streams`; the
#: parser does not import the store, to keep `--help` fast).
DEFAULT_RANGE_STREAMS = 8


def add_limits(parser: argparse.ArgumentParser) -> None:
    """`--limit`, the caps on what a source or an input may make a run hold."""
    defaults = ", ".join(
        f"{name}={value // 1024**2}M" if name.endswith("bytes") else f"{name}={value}"
        for name, value in LIMIT_DEFAULTS.items()
    )
    parser.add_argument(
        "--limit", type=limit, action="append", default=[], metavar="NAME=N",
        help="raise (or lower) a cap on what a source or an input may make the run hold: "
        "index-entries (of one index), layers (of one image), plan-manifest-bytes (all "
        "manifests held at once), input-bytes (one -f file or stdin); sizes take K, M "
        f"or G; repeatable (defaults {defaults})",
    )


def add_files(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """`-f`, the YAML inputs."""
    parser.add_argument(
        "-f", "--file", action="append", default=[], required=required, metavar="FILE",
        help="YAML or JSON file, directory (recursive: .yml .yaml .json) or - for stdin; "
        "repeatable",
    )


def add_destination(parser: argparse.ArgumentParser) -> None:
    """Where images go (`-r` or `--repository-template`) and under which tags."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "-r", "--repository", metavar="REPO",
        help="destination repository for every image, e.g. registry.example.com/team/app",
    )
    where.add_argument(
        "--repository-template", metavar="TEMPLATE",
        help="destination per image, keeping its path: {registry}, {repository} and "
        "{name} of the source, e.g. registry.internal/mirror/{repository}",
    )
    parser.add_argument(
        "--destination-tags", choices=TAG_SCHEMES, default="relocator",
        help="the tag each image lands under besides its digest: relocator "
        "sha256-<hex>.relocator (default), kbld kbld-sha256-<hex>, imgpkg "
        "sha256-<hex>.imgpkg; pick the one your retention rules match",
    )
    parser.add_argument(
        "--preserve-tags", action="store_true",
        help="also apply the tags the inputs named (or the tarball recorded) at the "
        "destination; a tag that is not valid, or two images wanting one tag in one "
        "repository, stop the run before anything is pushed (exit 3)",
    )


def add_registry(parser: argparse.ArgumentParser) -> None:
    """The `registry` group: CAs, certificate checks, plain http."""
    group = parser.add_argument_group("registry")
    group.add_argument(
        "--registry-ca-cert-path", action="append", default=[], metavar="PATH",
        help="PEM file of a CA to trust besides the system ones; repeatable; also "
        "$RELOCATOR_REGISTRY_CA_CERT_PATH (comma-separated)",
    )
    # None: not given, so $RELOCATOR_REGISTRY_VERIFY_CERTS decides (`registryenv`).
    group.add_argument(
        "--registry-verify-certs", type=boolean, nargs="?", const=True, default=None,
        metavar="BOOL", help="verify registry TLS certificates (default "
        "$RELOCATOR_REGISTRY_VERIFY_CERTS, else true)",
    )
    group.add_argument(
        "--registry-insecure", action=Insecure, nargs="?", default=[],
        metavar="HOST|BOOL",
        help="HOST[:PORT] (repeatable): reach that registry over plain http. Bare or "
        "=true: as kbld, every registry may use plain http after https fails. Without "
        "the flag, as kbld, only local registries (localhost:PORT, 127.0.0.1, ::1, "
        "*.local, private 10/172.16/192.168 addresses) fall back to http. Also "
        "$RELOCATOR_REGISTRY_INSECURE (comma-separated hosts, or true)",
    )
    parser.set_defaults(registry_insecure_all=False)


def add_deadline(parser: argparse.ArgumentParser) -> None:
    """`--timeout`, the deadline of the whole run."""
    parser.add_argument(
        "--timeout", type=duration, metavar="DURATION",
        help="give up when the whole run takes longer (e.g. 90s, 15m, 1h30m): one line "
        "and exit 124, with the unfinished work kept as after Ctrl-C. Default: "
        "$RELOCATOR_TIMEOUT, else no limit",
    )


def add_output(parser: argparse.ArgumentParser, *, report: bool = True) -> None:
    """The `output` group: progress, `--json`, `--report` (with `report`), quiet, debug."""
    docs = docs_dir()
    group = parser.add_argument_group("output")
    group.add_argument(
        "--progress", choices=("auto", "tty", "plain", "none"), default="auto",
        help="progress display on stderr: auto is live bars on a terminal and a line "
        "every few seconds otherwise; tty forces the bars, plain the lines; none shows "
        "no progress (default auto)",
    )
    group.add_argument(
        "--json", action="store_true",
        help="stderr carries JSON lines only: one object per event (byte progress at "
        'most once a second per blob), log lines as {"type": "Log"}'
        + (f', and a final {{"type": "Report"}} object ({docs}/report.schema.json)'
           if report else "")
        + "; no progress display",
    )
    if report:
        group.add_argument(
            "--report", metavar="FILE",
            help=f"write the final report as JSON to FILE ({docs}/report.schema.json), "
            "also when the transfer stops on an error; works with any display",
        )
    group.add_argument(
        "-q", "--quiet", action="store_true",
        help="print errors and warnings only"
        + (" (with --json: those and the report)" if report else ""),
    )
    group.add_argument(
        "--debug", action="store_true",
        help="log HTTP requests (secrets redacted) and show tracebacks",
    )


def add_transfer(
    parser: argparse.ArgumentParser, default_concurrency: int, *, ranges: bool = True
) -> None:
    """How a copy runs: concurrency, Range streams (with `ranges`), dry run, limits."""
    parser.add_argument(
        "--concurrency", type=positive, default=None, metavar="N",
        help=f"concurrent transfers per registry, pinned (default: start at "
        f"{default_concurrency} and adapt to what each registry delivers)",
    )
    if ranges:
        parser.add_argument(
            "--range-streams", type=positive, default=DEFAULT_RANGE_STREAMS, metavar="N",
            help="parallel Range requests, at most, for one large blob (32 MiB or more) "
            "while its source registry has spare connections; 1 fetches every blob as "
            f"one stream (default {DEFAULT_RANGE_STREAMS})",
        )
    parser.add_argument(
        "--dry-run", action="store_true",
        help="print the plan on stderr (images, unique blobs, bytes to move after "
        "skipping what the destination has) and change nothing",
    )
    parser.add_argument(
        "--keep-going", action="store_true",
        help="when an image fails, finish all the others, then report the failed ones",
    )
    parser.add_argument(
        "--verify-blobs", action="store_true",
        help="hash every uploaded blob in relocator too; registries check each blob's "
        "digest themselves, so this only guards against a registry that does not",
    )
    parser.add_argument(
        "--include-non-distributable-layers", action="store_true",
        help="copy foreign / non-distributable layers too (left out by default)",
    )
    add_limits(parser)


def add_referrers(parser: argparse.ArgumentParser, what: str) -> None:
    """`--include-referrers`, its help ending with `what` the command does with them."""
    parser.add_argument(
        "--include-referrers", action="store_true",
        help="also copy what is attached to each image (and to each image of an index): "
        "its OCI 1.1 referrers (signatures, SBOMs, attestations), found through the "
        "registry's referrers API or the sha256-<hex> tag scheme, and cosign's "
        "sha256-<hex>.sig, .att and .sbom tags; then what is attached to those. " + what,
    )
