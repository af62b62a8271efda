"""
The command-line grammar: one argparse parser for every command.

Kept apart from the commands so that `docs/cli.md` is generated from it (a test fails
when the two drift apart).
"""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from relocator import __version__

from .carvelflags import Refused, add_imgpkg_copy, add_kbld_ui
from .docpaths import docs_dir
from .flaggroups import (
    add_deadline,
    add_destination,
    add_files,
    add_limits,
    add_output,
    add_referrers,
    add_registry,
    add_transfer,
)
from .flagtypes import boolean, positive

#: Commands and their aliases; the root command (no name given) is `resolve`, as in kbld.
COMMANDS = {
    "resolve": (),
    "relocate": (),
    "plan": (),
    "pkg": ("package",),
    "unpkg": ("unpackage",),
    "mirror": (),
    "copy": (),
    "version": (),
}
DEFAULT_COMMAND = "resolve"

# Five concurrent transfers was kbld's and imgpkg's default; relocator multiplexes all
# images through one scheduler, so the per-registry figure can be a little higher.
DEFAULT_CONCURRENCY = 8


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
    add_files(resolve)
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
        "--images-annotation", type=boolean, nargs="?", const=True, default=True,
        metavar="BOOL", help="annotate each resolved document with the origins of its images "
        "(kbld.k14s.io/images), as kbld does (default true; =false turns it off)",
    )
    resolve.add_argument(
        "--origins-annotation", type=boolean, nargs="?", const=True, default=True,
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
        "--concurrency", type=positive, default=None, metavar="N",
        help=f"concurrent requests per registry, pinned (default: start at "
        f"{DEFAULT_CONCURRENCY} and adapt to what each registry delivers)",
    )
    add_limits(resolve)
    add_registry(resolve)
    add_deadline(resolve)
    add_output(resolve, report=False)
    add_kbld_ui(resolve, boolean)

    relocate = commands.add_parser(
        "relocate", help="copy every referenced image into one repository",
        description="Copy every image referenced (in digest form) into --repository (or "
        "the repositories --repository-template names), registry to registry, and print "
        "the YAML with relocated references.",
    )
    add_files(relocate)
    add_destination(relocate)
    relocate.add_argument(
        "--shard", metavar="INDEX/COUNT",
        help="upload only this worker's share of the blobs (0-based INDEX of COUNT "
        "workers; every worker derives the same split, by bytes), then push every "
        "manifest whose blobs have all landed; the last worker to finish completes the "
        "run. COUNT alone takes the index from JOB_COMPLETION_INDEX (Kubernetes Indexed "
        "Jobs). Default: $RELOCATOR_SHARD",
    )
    relocate.add_argument(
        "--plan", metavar="PLAN",
        help="run the plan file `relocator plan` wrote from these same inputs and options "
        "(refused otherwise): no manifest is read from the source, only blobs; with "
        "--shard, this worker's share of it",
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
    add_transfer(relocate, DEFAULT_CONCURRENCY)
    add_referrers(
        relocate,
        "Each lands after its image; cosign's under their tag; where the destination "
        "has no referrers API, its sha256-<hex> index is updated (entries kept)",
    )
    add_registry(relocate)
    add_deadline(relocate)
    add_imgpkg_copy(relocate, referrers=True)
    add_output(relocate)
    add_kbld_ui(relocate, boolean)

    plan = commands.add_parser(
        "plan", help="walk the sources once and write the plan of a relocate to a file",
        description="Read the inputs, walk every source image and write the whole plan "
        "of `relocate` with the same inputs and options to a file: every manifest (its "
        "bytes) and every blob with its size. `relocate --plan FILE --shard I/N` then "
        "runs it on N workers with no manifest request to the source.",
    )
    add_files(plan)
    plan.add_argument("-o", "--output", required=True, metavar="PLAN",
                      help="plan file to write (JSON)")
    add_destination(plan)
    plan.add_argument(
        "--concurrency", type=positive, default=DEFAULT_CONCURRENCY, metavar="N",
        help=f"concurrent requests per registry (default {DEFAULT_CONCURRENCY})",
    )
    plan.add_argument(
        "--keep-going", action="store_true",
        help="when an image cannot be planned, plan all the others and leave it out",
    )
    plan.add_argument(
        "--include-non-distributable-layers", action="store_true",
        help="plan foreign / non-distributable layers too (left out by default)",
    )
    add_limits(plan)
    add_referrers(plan, "They are planned with their images")
    add_registry(plan)
    add_deadline(plan)
    add_output(plan, report=False)

    pkg = commands.add_parser(
        "pkg", aliases=list(COMMANDS["pkg"]),
        help="export every referenced image into one tarball",
        description="Export every image referenced (in digest form) into one tarball, "
        "each blob once.",
    )
    add_files(pkg)
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
    add_transfer(pkg, DEFAULT_CONCURRENCY)
    add_referrers(
        pkg,
        "They are packaged as extra images with their tags, and each referrers index as "
        "an image tagged sha256-<hex>; unpkg re-applies both (without --preserve-tags). "
        "Needs --format oci",
    )
    add_registry(pkg)
    add_deadline(pkg)
    pkg.add_argument(
        "--cosign-signatures", action="store_true", dest="include_referrers",
        help="imgpkg's: the same as --include-referrers",
    )
    add_output(pkg)
    add_kbld_ui(pkg, boolean)

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
    add_files(unpkg)
    unpkg.add_argument("-i", "--input", required=True, metavar="TAR", help="tarball to read")
    add_destination(unpkg)
    unpkg_lock = unpkg.add_mutually_exclusive_group()
    unpkg_lock.add_argument(
        "--lock-output", metavar="FILE", help="write a kbld Config lock of the new locations"
    )
    unpkg_lock.add_argument(
        "--imgpkg-lock-output", metavar="FILE", help="write an imgpkg ImagesLock file"
    )
    add_transfer(unpkg, DEFAULT_CONCURRENCY, ranges=False)
    add_registry(unpkg)
    add_deadline(unpkg)
    add_imgpkg_copy(unpkg, referrers=False)
    add_output(unpkg)
    add_kbld_ui(unpkg, boolean)

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
        help="upload only this worker's share of the blobs (0-based INDEX of COUNT "
        "workers; every worker derives the same split, by bytes), then push every "
        "manifest whose blobs have all landed; the last worker to finish completes the "
        "run. COUNT alone takes the index from JOB_COMPLETION_INDEX (Kubernetes Indexed "
        "Jobs). Default: $RELOCATOR_SHARD",
    )
    mirror.add_argument(
        "--check", action="store_true",
        help="copy nothing: list the selected images missing at their destination and "
        "the tags missing there or pointing at another digest; exit 0 when in sync, 10 "
        "when not (with --json: a final {\"type\": \"MirrorCheck\"} object). Needs "
        "read access to the destinations only",
    )
    add_transfer(mirror, DEFAULT_CONCURRENCY)
    add_referrers(
        mirror,
        "For every source (includeReferrers in the config chooses per source); as for "
        "relocate",
    )
    add_registry(mirror)
    add_deadline(mirror)
    add_output(mirror)
    add_kbld_ui(mirror, boolean, files=False)

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
    add_transfer(copy, DEFAULT_CONCURRENCY)
    add_referrers(copy, "As for relocate")
    add_registry(copy)
    add_deadline(copy)
    add_output(copy)

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
