"""
The command-line grammar: one argparse parser for every command.

Kept apart from the commands so that `docs/cli.md` is generated from it (a test fails
when the two drift apart).
"""

from __future__ import annotations

import argparse

from relocator import __version__
from relocator.cli.carvelflags import Refused, add_imgpkg_copy, add_kbld_ui

#: Commands and their aliases; the root command (no name given) is `resolve`, as in kbld.
COMMANDS = {
    "resolve": (),
    "relocate": (),
    "pkg": ("package",),
    "unpkg": ("unpackage",),
    "mirror": (),
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
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


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
        help="PEM file of a CA to trust besides the system ones; repeatable",
    )
    group.add_argument(
        "--registry-verify-certs", type=_bool, nargs="?", const=True, default=True,
        metavar="BOOL", help="verify registry TLS certificates (default true)",
    )
    group.add_argument(
        "--registry-insecure", action=_Insecure, nargs="?", default=[],
        metavar="HOST|BOOL",
        help="HOST[:PORT] (repeatable): reach that registry over plain http. Bare or "
        "=true: as kbld, every registry may use plain http after https fails. Without "
        "the flag, as kbld, only local registries (localhost:PORT, 127.0.0.1, ::1, "
        "*.local, private 10/172.16/192.168 addresses) fall back to http",
    )
    parser.set_defaults(registry_insecure_all=False)


def _add_output(parser: argparse.ArgumentParser, *, report: bool = True) -> None:
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
        + (', and a final {"type": "Report"} object (docs/report.schema.json)'
           if report else "")
        + "; no progress display",
    )
    if report:
        group.add_argument(
            "--report", metavar="FILE",
            help="write the final report as JSON to FILE (docs/report.schema.json), "
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
        help="print the plan (images, unique blobs, bytes to move after skipping what "
        "the destination has) and change nothing",
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


def _add_referrers(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--include-referrers", action="store_true",
        help="also copy what is attached to each image (and to each image of an index): "
        "its OCI 1.1 referrers (signatures, SBOMs, attestations), found through the "
        "registry's referrers API or the sha256-<hex> tag scheme, and cosign's "
        "sha256-<hex>.sig, .att and .sbom tags; then what is attached to those. " + what,
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser of the whole command line."""
    parser = argparse.ArgumentParser(
        prog="relocator",
        description="Find images in YAML, resolve them to digests, and move them between "
        "registries and tarballs without changing a digest.",
        epilog="Without a command, relocator runs `resolve` (as kbld does).",
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
    _add_registry(resolve)
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
    add_imgpkg_copy(unpkg, referrers=False)
    _add_output(unpkg)
    add_kbld_ui(unpkg, _bool)

    mirror = commands.add_parser(
        "mirror", help="mirror the repositories and tags a config file lists",
        description="Copy what a mirror config selects (tags of repositories, chosen "
        "exactly, by regex or by semver range, and single images) to its destinations, "
        "registry to registry, tagged as at the source. A second run copies only what "
        "changed. The config format is in docs/mirror.md.",
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
    _add_transfer(mirror, DEFAULT_CONCURRENCY)
    _add_referrers(
        mirror,
        "For every source (includeReferrers in the config chooses per source); as for "
        "relocate",
    )
    _add_registry(mirror)
    _add_output(mirror)
    add_kbld_ui(mirror, _bool, files=False)

    commands.add_parser("version", help="print the version")
    return parser


def with_default_command(argv: list[str]) -> list[str]:
    """`relocator -f x` means `relocator resolve -f x`, as kbld's root command resolves."""
    names = {name for name, aliases in COMMANDS.items() for name in (name, *aliases)}
    if not argv or argv[0] in names or argv[0] in ("-h", "--help", "--version"):
        return argv
    return [DEFAULT_COMMAND, *argv]
