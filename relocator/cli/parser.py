"""
The command-line grammar: one argparse parser for every command.

Kept apart from the commands so that `docs/cli.md` is generated from it (a test fails
when the two drift apart).
"""

from __future__ import annotations

import argparse
import re
import textwrap
from typing import Any

from relocator import __version__
from relocator.errors import shorten

from .carvelflags import Refused, add_imgpkg_copy, add_kbld_ui
from .docpaths import docs_dir

#: Commands and their aliases; the root command (no name given) is `resolve`, as in kbld.
COMMANDS = {
    "resolve": (),
    "relocate": (),
    "pkg": ("package",),
    "unpkg": ("unpackage",),
    "mirror": (),
    "copy": (),
    "version": (),
}
DEFAULT_COMMAND = "resolve"

#: `relocator.engine.execute.TAG_SCHEMES` (not imported, to keep `--help` fast).
TAG_SCHEMES = ("relocator", "kbld", "imgpkg")

# Five concurrent transfers was kbld's and imgpkg's default; relocator multiplexes all
# images through one scheduler, so the per-registry figure can be a little higher.
DEFAULT_CONCURRENCY = 8
#: Streams of one large blob at most (`relocator.store.ranges.RangePolicy.streams`; the
#: parser does not import the store, to keep `--help` fast).
DEFAULT_RANGE_STREAMS = 8


#: What `--limit` caps, with its default (kept equal to `relocator.engine.limits.Limits`
#: and `relocator.config.inputs.MAX_INPUT_BYTES`, which a unit test checks; the parser
#: imports neither, to keep `--help` fast).
LIMIT_DEFAULTS = {
    "index-entries": 1000,
    "layers": 1000,
    "plan-manifest-bytes": 64 * 1024 * 1024,
    "input-bytes": 32 * 1024 * 1024,
}
_SIZE_UNITS = {"": 1, "k": 1024, "kib": 1024, "m": 1024**2, "mib": 1024**2,
               "g": 1024**3, "gib": 1024**3}


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


class _Insecure(argparse.Action):
    """
    `--registry-insecure` as kbld's boolean and as relocator's host list at once.

    Bare, or `=true|false` (any spelling `_bool` takes), it switches plain http for every
    registry (`registry_insecure_all`); any other value is one host (`registry_insecure`,
    repeatable). A boolean word is never taken for a host: no registry is named `true`.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        if values is None:
            namespace.registry_insecure_all = True
            return
        text = str(values)
        if not text:
            parser.error(f"{option_string}= needs a HOST[:PORT], or true or false")
        try:
            namespace.registry_insecure_all = _bool(text)
        except argparse.ArgumentTypeError:
            namespace.registry_insecure = [*namespace.registry_insecure, text]


def _positive(text: str) -> int:
    # ASCII digits only: int() also reads '٣', ' 3' and '1_0'.
    digits = text.removeprefix("-")
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 9):
        raise argparse.ArgumentTypeError(f"expected a number, got '{shorten(text)}'")
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def _limit(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or name not in LIMIT_DEFAULTS:
        raise argparse.ArgumentTypeError(
            f"expected NAME=N with NAME one of {', '.join(LIMIT_DEFAULTS)}, got '{text}'"
        )
    digits = value.rstrip("KkMmGgIiBb")
    unit = _SIZE_UNITS.get(value[len(digits):].lower())
    if not digits.isascii() or not digits.isdigit() or unit is None or int(digits) < 1:
        raise argparse.ArgumentTypeError(
            f"expected a positive number (optionally with K, M or G) for {name}, got '{value}'"
        )
    return name, int(digits) * unit


def _add_limits(parser: argparse.ArgumentParser) -> None:
    defaults = ", ".join(
        f"{name}={value // 1024**2}M" if name.endswith("bytes") else f"{name}={value}"
        for name, value in LIMIT_DEFAULTS.items()
    )
    parser.add_argument(
        "--limit", type=_limit, action="append", default=[], metavar="NAME=N",
        help="raise (or lower) a cap on what a source or an input may make the run hold: "
        "index-entries (of one index), layers (of one image), plan-manifest-bytes (all "
        "manifests held at once), input-bytes (one -f file or stdin); sizes take K, M "
        f"or G; repeatable (defaults {defaults})",
    )


#: Units of a `--timeout` DURATION, in seconds.
_UNITS = {"s": 1, "m": 60, "h": 3600}
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)([hms]))+|\d+(?:\.\d+)?")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")


def parse_duration(text: str) -> float:
    """
    Seconds in `90`, `90s`, `15m`, `2h` or `1h30m`; more than zero.

    Raises:
        ValueError: Anything else, with a message naming `text`.
    """
    shown = text[:40]
    if not _DURATION.fullmatch(text):
        raise ValueError(f"expected a duration such as 90s, 15m or 1h30m, got '{shown}'")
    if text[-1] not in _UNITS:
        seconds = float(text)
    else:
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))
    if seconds <= 0:
        raise ValueError(f"expected a duration of more than zero, got '{shown}'")
    return seconds


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_files(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument(
        "-f", "--file", action="append", default=[], required=required, metavar="FILE",
        help="YAML or JSON file, directory (recursive: .yml .yaml .json) or - for stdin; "
        "repeatable",
    )


def _add_destination(parser: argparse.ArgumentParser) -> None:
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


def _add_registry(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("registry")
    group.add_argument(
        "--registry-ca-cert-path", action="append", default=[], metavar="PATH",
        help="PEM file of a CA to trust besides the system ones; repeatable; also "
        "$RELOCATOR_REGISTRY_CA_CERT_PATH (comma-separated)",
    )
    # None: not given, so $RELOCATOR_REGISTRY_VERIFY_CERTS decides (`registryenv`).
    group.add_argument(
        "--registry-verify-certs", type=_bool, nargs="?", const=True, default=None,
        metavar="BOOL", help="verify registry TLS certificates (default "
        "$RELOCATOR_REGISTRY_VERIFY_CERTS, else true)",
    )
    group.add_argument(
        "--registry-insecure", action=_Insecure, nargs="?", default=[],
        metavar="HOST|BOOL",
        help="HOST[:PORT] (repeatable): reach that registry over plain http. Bare or "
        "=true: as kbld, every registry may use plain http after https fails. Without "
        "the flag, as kbld, only local registries (localhost:PORT, 127.0.0.1, ::1, "
        "*.local, private 10/172.16/192.168 addresses) fall back to http. Also "
        "$RELOCATOR_REGISTRY_INSECURE (comma-separated hosts, or true)",
    )
    parser.set_defaults(registry_insecure_all=False)


def _add_deadline(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout", type=_duration, metavar="DURATION",
        help="give up when the whole run takes longer (e.g. 90s, 15m, 1h30m): one line "
        "and exit 124, with the unfinished work kept as after Ctrl-C. Default: "
        "$RELOCATOR_TIMEOUT, else no limit",
    )


def _add_output(parser: argparse.ArgumentParser, *, report: bool = True) -> None:
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


def _add_transfer(
    parser: argparse.ArgumentParser, default_concurrency: int, *, ranges: bool = True
) -> None:
    parser.add_argument(
        "--concurrency", type=_positive, default=default_concurrency, metavar="N",
        help=f"concurrent transfers per registry (default {default_concurrency})",
    )
    if ranges:
        parser.add_argument(
            "--range-streams", type=_positive, default=DEFAULT_RANGE_STREAMS, metavar="N",
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
    _add_limits(parser)


def _add_referrers(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--include-referrers", action="store_true",
        help="also copy what is attached to each image (and to each image of an index): "
        "its OCI 1.1 referrers (signatures, SBOMs, attestations), found through the "
        "registry's referrers API or the sha256-<hex> tag scheme, and cosign's "
        "sha256-<hex>.sig, .att and .sbom tags; then what is attached to those. " + what,
    )


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout, except that paths are never broken across lines."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(
            " ".join(text.split()), width, break_long_words=False, break_on_hyphens=False
        )

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return textwrap.fill(
            " ".join(text.split()), width, initial_indent=indent, subsequent_indent=indent,
            break_long_words=False, break_on_hyphens=False,
        )


class _Parser(argparse.ArgumentParser):
    """An argument parser with `_Formatter`; subcommands' parsers are of this class too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """
    The parser of the whole command line. The help names documents by where they are
    installed (`docpaths.docs_dir`); `reference.py` writes them as `docs/...`.
    """
    docs = docs_dir()
    parser = _Parser(
        prog="relocator",
        description="Find images in YAML, resolve them to digests, and move them between "
        "registries and tarballs without changing a digest.",
        epilog="Without a command, relocator runs `resolve` (as kbld does). The user "
        f"guide is {docs}/user-guide.md; every flag and exit code is in {docs}/cli.md.",
    )
    parser.add_argument("--version", action="version", version=f"relocator {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    resolve = commands.add_parser(
        "resolve", help="resolve image references in YAML to digests and print the YAML",
        description="Find image references in YAML (kbld search rules), resolve tags to "
        "digests, print the rewritten YAML on stdout.",
    )
    _add_files(resolve)
    lock = resolve.add_mutually_exclusive_group()
    lock.add_argument("--lock-output", metavar="FILE", help="write a kbld Config lock file")
    lock.add_argument(
        "--imgpkg-lock-output", metavar="FILE", help="write an imgpkg ImagesLock file"
    )
    resolve.add_argument(
        "--platform", metavar="OS/ARCH[/VARIANT]",
        help="resolve image indexes to the image for this platform",
    )
    resolve.add_argument(
        "--images-annotation", type=_bool, nargs="?", const=True, default=True,
        metavar="BOOL", help="annotate each resolved document with the origins of its images "
        "(kbld.k14s.io/images), as kbld does (default true; =false turns it off)",
    )
    resolve.add_argument(
        "--origins-annotation", type=_bool, nargs="?", const=True, default=True,
        metavar="BOOL", help="record each image's origins (kbld.carvel.dev/origins) in "
        "--imgpkg-lock-output, as kbld does (default true)",
    )
    resolve.add_argument(
        "--unresolved-inspect", action="store_true",
        help="print the references found (`- image: REF`, sorted) without resolving them, "
        "as kbld does",
    )
    resolve.add_argument(
        "--image-map-file", metavar="FILE",
        help="CNAB relocation mapping (JSON object: image as written -> new image), used "
        "as preresolved overrides after the config's own, as kbld does",
    )
    resolve.add_argument(
        "--build", action=Refused,
        alternative="relocator does not build images: build and push them, then resolve",
    )
    resolve.add_argument(
        "--build-concurrency", action=Refused,
        alternative="relocator does not build images; --concurrency sets resolve requests",
    )
    resolve.add_argument(
        "--concurrency", type=_positive, default=DEFAULT_CONCURRENCY, metavar="N",
        help=f"concurrent requests per registry (default {DEFAULT_CONCURRENCY})",
    )
    _add_limits(resolve)
    _add_registry(resolve)
    _add_deadline(resolve)
    _add_output(resolve, report=False)
    add_kbld_ui(resolve, _bool)

    relocate = commands.add_parser(
        "relocate", help="copy every referenced image into one repository",
        description="Copy every image referenced (in digest form) into --repository (or "
        "the repositories --repository-template names), registry to registry, and print "
        "the YAML with relocated references.",
    )
    _add_files(relocate)
    _add_destination(relocate)
    relocate.add_argument(
        "--shard", metavar="INDEX/COUNT",
        help="copy only this worker's share of the images (0-based INDEX of COUNT "
        "workers); images that share blobs go to the same shard. COUNT alone takes the "
        "index from JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs). Default: "
        "$RELOCATOR_SHARD",
    )
    relocate.add_argument(
        "--platform", metavar="OS/ARCH[,...]",
        help="copy only these platforms' images of an index (the index itself is left "
        "out: its digest would change); references point at the first platform's image",
    )
    relocate_lock = relocate.add_mutually_exclusive_group()
    relocate_lock.add_argument(
        "--lock-output", metavar="FILE", help="write a kbld Config lock of the new locations"
    )
    relocate_lock.add_argument(
        "--imgpkg-lock-output", metavar="FILE", help="write an imgpkg ImagesLock file"
    )
    _add_transfer(relocate, DEFAULT_CONCURRENCY)
    _add_referrers(
        relocate,
        "Each lands after its image; cosign's under their tag; where the destination "
        "has no referrers API, its sha256-<hex> index is updated (entries kept)",
    )
    _add_registry(relocate)
    _add_deadline(relocate)
    add_imgpkg_copy(relocate, referrers=True)
    _add_output(relocate)
    add_kbld_ui(relocate, _bool)

    pkg = commands.add_parser(
        "pkg", aliases=list(COMMANDS["pkg"]),
        help="export every referenced image into one tarball",
        description="Export every image referenced (in digest form) into one tarball, "
        "each blob once.",
    )
    _add_files(pkg)
    pkg.add_argument("-o", "--output", required=True, metavar="TAR", help="tarball to write")
    pkg.add_argument(
        "--format", choices=("oci", "kbld"), default="oci",
        help="oci: an OCI image layout in a tar that kbld unpkg and imgpkg copy --tar also "
        "read (default); kbld: the kbld/imgpkg format alone",
    )
    pkg.add_argument(
        "--resume", action="store_true",
        help="reuse blobs an interrupted run already wrote (verified)",
    )
    _add_transfer(pkg, DEFAULT_CONCURRENCY)
    _add_referrers(
        pkg,
        "They are packaged as extra images with their tags, and each referrers index as "
        "an image tagged sha256-<hex>; unpkg re-applies both (without --preserve-tags). "
        "Needs --format oci",
    )
    _add_registry(pkg)
    _add_deadline(pkg)
    pkg.add_argument(
        "--cosign-signatures", action="store_true", dest="include_referrers",
        help="imgpkg's: the same as --include-referrers",
    )
    _add_output(pkg)
    add_kbld_ui(pkg, _bool)

    unpkg = commands.add_parser(
        "unpkg", aliases=list(COMMANDS["unpkg"]),
        help="import a tarball into one repository",
        description="Import every image of a tarball into --repository (no access to the "
        "source registry needed) and print the YAML with relocated references. What "
        "`pkg --include-referrers` packaged lands too: signature tags "
        "(sha256-<hex>.sig, .att, .sbom) are always applied, and each packaged "
        "referrers index is merged into the destination's sha256-<hex> index (unless "
        "the destination has the referrers API).",
    )
    _add_files(unpkg)
    unpkg.add_argument("-i", "--input", required=True, metavar="TAR", help="tarball to read")
    _add_destination(unpkg)
    unpkg_lock = unpkg.add_mutually_exclusive_group()
    unpkg_lock.add_argument(
        "--lock-output", metavar="FILE", help="write a kbld Config lock of the new locations"
    )
    unpkg_lock.add_argument(
        "--imgpkg-lock-output", metavar="FILE", help="write an imgpkg ImagesLock file"
    )
    _add_transfer(unpkg, DEFAULT_CONCURRENCY, ranges=False)
    _add_registry(unpkg)
    _add_deadline(unpkg)
    add_imgpkg_copy(unpkg, referrers=False)
    _add_output(unpkg)
    add_kbld_ui(unpkg, _bool)

    mirror = commands.add_parser(
        "mirror", help="mirror the repositories and tags a config file lists",
        description="Copy what a mirror config selects (tags of repositories, chosen "
        "exactly, by regex or by semver range, and single images) to its destinations, "
        "registry to registry, tagged as at the source. A second run copies only what "
        f"changed. The config format is in {docs}/mirror.md.",
    )
    mirror.add_argument(
        "-c", "--config", action="append", default=[], required=True, metavar="FILE",
        help="mirror config file (YAML, kind: Mirror); repeatable, merged in order",
    )
    mirror.add_argument(
        "--shard", metavar="INDEX/COUNT",
        help="copy only this worker's share of the images (0-based INDEX of COUNT "
        "workers); images that share blobs go to the same shard. COUNT alone takes the "
        "index from JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs). Default: "
        "$RELOCATOR_SHARD",
    )
    mirror.add_argument(
        "--check", action="store_true",
        help="copy nothing: list the selected images missing at their destination and "
        "the tags missing there or pointing at another digest; exit 0 when in sync, 10 "
        "when not (with --json: a final {\"type\": \"MirrorCheck\"} object). Needs "
        "read access to the destinations only",
    )
    _add_transfer(mirror, DEFAULT_CONCURRENCY)
    _add_referrers(
        mirror,
        "For every source (includeReferrers in the config chooses per source); as for "
        "relocate",
    )
    _add_registry(mirror)
    _add_deadline(mirror)
    _add_output(mirror)
    add_kbld_ui(mirror, _bool, files=False)

    copy = commands.add_parser(
        "copy", help="copy one image to a repository, like crane copy",
        description="Copy one image (by tag or digest) registry to registry through the "
        "same engine as relocate: every digest kept, what the destination has skipped, "
        "blobs mounted within one registry. Prints the digest copied on stdout.",
    )
    copy.add_argument("source", metavar="SRC", help="the image: registry/repo:tag or "
                      "registry/repo@sha256:...")
    copy.add_argument(
        "destination", metavar="DST",
        help="registry/repo:tag, or registry/repo to keep the source's tag (a source "
        "named by digest alone is then pushed by digest only); never a digest",
    )
    copy.add_argument(
        "--platform", metavar="OS/ARCH[,...]",
        help="copy only these platforms' images of an index (the index itself is left "
        "out: its digest would change); the tag and the digest printed are the first "
        "platform's",
    )
    _add_transfer(copy, DEFAULT_CONCURRENCY)
    _add_referrers(copy, "As for relocate")
    _add_registry(copy)
    _add_deadline(copy)
    _add_output(copy)

    commands.add_parser("version", help="print the version")
    return parser


def with_default_command(argv: list[str]) -> list[str]:
    """
    `relocator -f x` means `relocator resolve -f x`, as kbld's root command resolves.
    Only flags imply the default command: a first word that names no command is a
    mistyped command, not something to resolve.
    """
    names = {name for name, aliases in COMMANDS.items() for name in (name, *aliases)}
    argv = registry_flags_after_command(argv, names)
    if not argv or argv[0] in names or argv[0] in ("-h", "--help", "--version"):
        return argv
    if not argv[0].startswith("-"):
        return argv
    return [DEFAULT_COMMAND, *argv]


# kbld's registry flags, by whether a value must follow (cobra reads them before the
# command too: `kbld --registry-insecure pkg ...`).
_LEADING_REGISTRY_FLAGS = {
    "--registry-ca-cert-path": True,
    "--registry-verify-certs": False,
    "--registry-insecure": False,
}


def registry_flags_after_command(argv: list[str], names: set[str]) -> list[str]:
    """
    `relocator --registry-insecure pkg ...` read as `relocator pkg --registry-insecure
    ...`: kbld's registry flags written before the command move after it. A flag whose
    value is optional takes the next word unless it is a command or a flag. Anything
    else is returned as it is (the same list).
    """
    moved: list[str] = []
    at = 0
    while at < len(argv):
        flag, has_value, _ = argv[at].partition("=")
        needs = _LEADING_REGISTRY_FLAGS.get(flag)
        if needs is None:
            break
        moved.append(argv[at])
        at += 1
        follows = argv[at] if at < len(argv) else None
        if not has_value and follows is not None and (
            needs or (follows not in names and not follows.startswith("-"))
        ):
            moved.append(follows)
            at += 1
    if not moved or at >= len(argv) or argv[at] not in names:
        return argv
    return [argv[at], *moved, *argv[at + 1 :]]
