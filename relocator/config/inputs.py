"""
The `-f` inputs: files, directories and stdin, read into documents and config.

Everything is read and checked once, in `load_inputs`: malformed YAML, refused YAML
features, bad config and non-string references all fail there, before any image moves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from relocator.config.emit import emit_yaml
from relocator.config.kbld import KbldConfig, config_kind, merge_config_documents
from relocator.config.origins import Origin, annotate, images_annotation
from relocator.config.overrides import Override
from relocator.config.walker import Walker
from relocator.config.yamltree import Map, ParseProblem, Scalar, Seq, describe, parse_yaml_stream
from relocator.errors import ConfigError

# The file names a directory is searched for, as kbld (and kubectl) do.
_EXTENSIONS = (".json", ".yaml", ".yml")
#: How standard input is named in messages.
STDIN_NAME = "stdin"
#: Bytes of one input file (or of stdin), at most. Parsing YAML takes about 16 times
#: its size in memory; 32 MiB is far more than any rendered set of manifests and keeps
#: one file under about 512 MiB (`--limit input-bytes` raises it).
MAX_INPUT_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Document:
    """One input document (a `List`'s items are documents of their own)."""

    #: The file it came from, as named to the user ("stdin" for `-`).
    source: str
    #: Its position in that file, counting from 1 (a `List`'s items share it).
    position: int
    root: Map


@dataclass(frozen=True, slots=True)
class FoundImage:
    """An image reference found in the documents, with the override that applies to it."""

    #: The value exactly as written.
    value: str
    #: "FILE:LINE" of its first occurrence.
    where: str
    override: Override | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Inputs:
    """The documents and the config read from the `-f` inputs. Build with `load_inputs`."""

    #: The documents that are not config, in input order.
    documents: tuple[Document, ...]
    config: KbldConfig
    #: Every distinct reference in the documents, in document order.
    found: tuple[FoundImage, ...]
    #: One line per thing ignored or left unchanged ("FILE:LINE: ..."), for the CLI.
    warnings: tuple[str, ...]

    def found_images(self) -> tuple[FoundImage, ...]:
        """Every distinct reference in the documents, in document order."""
        return self.found

    def preresolved(self) -> tuple[Override, ...]:
        """
        The preresolved overrides (lock file entries): the images a lock file names.

        kbld's `pkg` and `relocate` take these as images to move in addition to the
        references found, so that a lock file alone (`-f app.lock`) is a list of images.
        """
        return self.config.preresolved()

    def render(
        self,
        resolved: Mapping[str, str],
        *,
        origins: Mapping[str, Sequence[Origin]] | None = None,
    ) -> str:
        """
        The documents as YAML, each found value replaced by `resolved[value]`.

        Values missing from `resolved` are left as they are. Documents are separated by
        `---` lines (none before the first); keys keep their order and scalars their
        text, style and quoting. With `origins` (each found value's), every document
        naming an image gets kbld's `kbld.k14s.io/images` annotation.
        """
        rules = self.config.search_rules
        parts = []
        for doc in self.documents:
            named: list[str] = []

            def replace(value: str, _line: int, named: list[str] = named) -> str | None:
                named.append(value)
                return resolved.get(value)

            root = Walker(doc.source, replace).walk(doc.root, rules)
            if origins is not None and named and isinstance(root, Map):
                root = annotate(root, images_annotation(
                    (resolved.get(value, value), origins.get(value, ())) for value in named
                ))
            parts.append(emit_yaml(root))
        return "---\n".join(parts)


def load_inputs(
    paths: Sequence[str],
    *,
    stdin_text: str | None = None,
    max_bytes: int = MAX_INPUT_BYTES,
) -> Inputs:
    """
    Read the `-f` inputs: files, directories (searched recursively for `.yml`, `.yaml`
    and `.json` files, in sorted order) and `-` (standard input, given as `stdin_text`),
    each of at most `max_bytes`.

    Each document must be a mapping; empty documents are skipped and `List` documents are
    replaced by their items. kbld `Config` (and legacy kinds) and imgpkg `ImagesLock`
    documents become the config; the others are searched for image references.

    Raises:
        ConfigError: An input cannot be read, is larger than `max_bytes` or is malformed
            (one line, "FILE:LINE: ...").
    """
    documents: list[Document] = []
    configs: list[tuple[str, Map]] = []
    for name, data in _read(paths, stdin_text, max_bytes):
        for doc in _documents(name, data):
            if config_kind(doc.root) is None:
                documents.append(doc)
            else:
                configs.append((doc.source, doc.root))
    config = merge_config_documents(configs)

    found: dict[str, FoundImage] = {}
    warnings = list(config.warnings)
    rules = config.search_rules
    for doc in documents:

        def collect(value: str, line: int, source: str = doc.source) -> None:
            if value not in found:
                found[value] = FoundImage(value, f"{source}:{line}", config.override_for(value))

        Walker(doc.source, collect, warnings).walk(doc.root, rules)
    return Inputs(
        documents=tuple(documents),
        config=config,
        found=tuple(found.values()),
        warnings=tuple(warnings),
    )


def _read(
    paths: Sequence[str], stdin_text: str | None, max_bytes: int
) -> Iterator[tuple[str, str | bytes]]:
    stdin_used = False
    for path in paths:
        if path == "-":
            if stdin_text is None:
                raise ConfigError("'-' names standard input, but there is none to read")
            if stdin_used:
                raise ConfigError("'-' (standard input) can be given only once")
            stdin_used = True
            if len(stdin_text.encode()) > max_bytes:
                raise _too_large(STDIN_NAME, max_bytes)
            yield STDIN_NAME, stdin_text
        elif path.startswith(("http://", "https://")):
            raise ConfigError(
                f"{path}: URLs are not supported as inputs; download the file and give its path"
            )
        elif os.path.isdir(path):
            for file in _directory_files(path):
                yield file, _read_file(file, max_bytes)
        else:
            yield path, _read_file(path, max_bytes)


def _directory_files(directory: str) -> list[str]:
    def fail(exc: OSError) -> None:
        raise ConfigError(f"{exc.filename or directory}: {exc.strerror or exc}")

    files = [
        os.path.join(parent, name)
        for parent, _, names in os.walk(directory, onerror=fail)
        for name in names
        if name.endswith(_EXTENSIONS)
    ]
    return sorted(files)


def _read_file(path: str, max_bytes: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            # One byte more than allowed tells "too large" without reading the rest.
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise _too_large(path, max_bytes)
    return data


def _too_large(name: str, max_bytes: int) -> ConfigError:
    return ConfigError(
        f"{name}: larger than the limit of {max_bytes} bytes for an input",
        hint="raise it with --limit input-bytes=SIZE if the file is meant to be this large",
    )


def _documents(name: str, data: str | bytes) -> Iterator[Document]:
    try:
        stream = parse_yaml_stream(data)
    except ParseProblem as problem:
        raise problem.to_config_error(name) from None
    for position, root in enumerate(stream, start=1):
        if root is None:
            continue
        if not isinstance(root, Map):
            raise ConfigError(
                f"{name}:{root.line}: document {position} is {describe(root)}; expected a mapping"
            )
        if not root.items:  # `{}`, which kbld skips like an empty document
            continue
        items = _list_items(root)
        if items is None:
            yield Document(name, position, root)
            continue
        for index, item in enumerate(items.items):
            if not isinstance(item, Map):
                raise ConfigError(
                    f"{name}:{item.line}: item {index} of the List in document {position} is "
                    f"{describe(item)}; expected a mapping"
                )
            if item.items:
                yield Document(name, position, item)


def _list_items(root: Map) -> Seq | None:
    """The `items` of a `kind: List` (or `...List`) document; None if it is not one."""
    kind, items = root.get("kind"), root.get("items")
    if (
        isinstance(kind, Scalar)
        and isinstance(kind.value, str)
        and kind.value.endswith("List")
        and isinstance(items, Seq)
    ):
        return items
    return None
