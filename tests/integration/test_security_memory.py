"""
Memory has a bound: what a source may make a run hold is capped (entries of an index,
layers of an image, manifest bytes of one plan) and so is an input file. Over a cap the
run stops in one line with a documented exit code, before anything is pushed; at the
cap it works; and `--limit` moves each cap.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from relocator.engine.limits import MANIFEST_OVERHEAD, Limits
from relocator.oci import Digest, mediatypes
from tests.integration.cli import Result, relocator
from tests.integration.faults_support import ROOT, MiB, cli_env, images_file, insecure_flags
from tests.support import Blob, Image, Pusher, Registry, image, index, verify_image_tree
from tests.support.proxy import FaultProxy, Respond

# The exit codes of docs/cli.md: bad input, and an image that cannot be copied as is.
EXIT_INPUT = 3
EXIT_MANIFEST = 5
# The fan-out of the memory tests: children of about 4 MiB each (the registry's cap on a
# manifest), kept distinct by their annotation.
CHILD_BYTES = 4_000_000
# Peak resident memory allowed for a fan-out index, whether it fits the default cap on
# manifest bytes (and is copied) or not (and is refused). Without the caps the refused
# index alone takes over 400 MiB.
MAX_RSS = 256 * MiB


def _relocate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, reference: str, registry2: Registry,
    *flags: str,
) -> Result:
    host = reference.split("/", 1)[0]
    return relocator(
        capsys, "relocate", "-f", str(images_file(tmp_path / "images.yml", [reference])),
        "-r", f"{registry2.host}/copied", *insecure_flags(host, registry2.host), *flags,
    )


def _writes(registry: Registry, since: int) -> list[str]:
    """Requests that would change the registry (uploads, manifest and tag pushes)."""
    return [
        f"{e.method} {e.path}"
        for e in registry.log.requests(since=since)
        if e.method in ("PUT", "POST", "PATCH", "DELETE")
    ]


def _platforms(count: int) -> list[str]:
    return [f"linux/arch{n}" for n in range(count)]


def _fan_out(seed: str, count: int) -> Image:
    """An index of `count` two-layer images, one per (made-up) platform."""
    return index(
        [image(f"{seed}/{p}", layer_sizes=(64, 64), platform=p) for p in _platforms(count)]
    )


def _served(proxy: FaultProxy, repository: str, doc: dict[str, object]) -> Digest:
    """Serve `doc` as a manifest of `repository` from the proxy alone; its digest."""
    raw = json.dumps(doc).encode()
    digest = Digest.of(raw)
    proxy.add(Respond(body=raw, headers={"Content-Type": str(doc["mediaType"])}),
              method="GET", path=f"/v2/{repository}/manifests/{digest}")
    return digest


def _descriptors(count: int, media_type: str) -> list[dict[str, object]]:
    """`count` descriptors of content that exists nowhere."""
    return [
        {"mediaType": media_type, "digest": str(Digest.of(str(n).encode())), "size": 100}
        for n in range(count)
    ]


@pytest.mark.parametrize("flags", [(), ("--include-referrers",)], ids=["plan", "referrers"])
def test_an_index_over_the_default_entry_cap_is_refused_before_any_child_is_fetched(
    flags: tuple[str, ...], capsys: pytest.CaptureFixture[str], tmp_path: Path,
    registry2: Registry,
) -> None:
    """
    An index of 1,001 entries (the default cap is 1,000) is refused with one line naming
    it, exit code 5: not one of its children is asked for, nothing is pushed; also when
    what is attached to each child would be looked up first (`--include-referrers`).
    """
    mark = registry2.log.mark()
    with FaultProxy("http://127.0.0.1:9") as source:
        digest = _served(source, "big/app", {
            "schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX,
            "manifests": _descriptors(Limits().index_entries + 1, mediatypes.OCI_MANIFEST),
        })
        result = _relocate(capsys, tmp_path, f"{source.host}/big/app@{digest}", registry2,
                           *flags)
        fetched = [r.path for r in source.requests()]

    assert EXIT_MANIFEST == result.code, result.err
    assert 1 == len(result.error_lines)
    assert f"big/app@{digest} is an index of 1001 entries" in result.error_lines[0]
    assert [f"/v2/big/app/manifests/{digest}"] == fetched
    assert [] == _writes(registry2, mark)


def test_an_image_over_the_default_layer_cap_is_refused_before_any_blob_is_fetched(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, registry2: Registry
) -> None:
    """
    An image of 1,001 layers (the default cap is 1,000) is refused with one line naming
    it, exit code 5: no blob is asked for, nothing is pushed.
    """
    mark = registry2.log.mark()
    with FaultProxy("http://127.0.0.1:9") as source:
        digest = _served(source, "big/app", {
            "schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
            "config": _descriptors(1, mediatypes.OCI_CONFIG)[0],
            "layers": _descriptors(Limits().layers + 1, mediatypes.OCI_LAYER_GZIP),
        })
        result = _relocate(capsys, tmp_path, f"{source.host}/big/app@{digest}", registry2)
        fetched = [r.path for r in source.requests()]

    assert EXIT_MANIFEST == result.code, result.err
    assert 1 == len(result.error_lines)
    assert f"big/app@{digest} has 1001 layers" in result.error_lines[0]
    assert [f"/v2/big/app/manifests/{digest}"] == fetched
    assert [] == _writes(registry2, mark)


def _plan_bytes(tree: Image) -> int:
    """What a plan of `tree` holds by the cap's count: each manifest's size and overhead."""
    return sum(node.size + MANIFEST_OVERHEAD for node in tree.walk())


@pytest.mark.parametrize(
    ("name", "cap_of"),
    [
        ("index-entries", lambda tree: len(tree.children)),
        ("layers", lambda tree: len(tree.children[0].layers)),
        ("plan-manifest-bytes", _plan_bytes),
    ],
)
def test_each_cap_refuses_one_over_and_copies_at_the_cap(
    name: str,
    cap_of: Callable[[Image], int],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    push: Pusher,
    request: pytest.FixtureRequest,
) -> None:
    """
    With `--limit NAME=N` one below what a real image (an index of three images) needs,
    relocating it fails in one line with exit code 5 and pushes nothing; with N exactly
    what it needs, it is copied whole.
    """
    tree = _fan_out(request.node.nodeid, 3)
    pushed = push(registry, repository, tree)
    needed = cap_of(tree)
    reference = f"{registry.host}/{repository}@{pushed.digest}"

    mark = registry2.log.mark()
    over = _relocate(capsys, tmp_path, reference, registry2, "--limit", f"{name}={needed - 1}")
    writes = _writes(registry2, mark)
    at = _relocate(capsys, tmp_path, reference, registry2, "--limit", f"{name}={needed}")

    assert EXIT_MANIFEST == over.code, over.err
    assert 1 == len(over.error_lines)
    assert f"limit of {needed - 1}" in over.error_lines[0]
    assert [] == writes
    assert 0 == at.code, at.err
    verify_image_tree(registry2, "copied", pushed.digest, expected=tree)


def _input_of_size(path: Path, reference: str, size: int) -> Path:
    """A YAML input naming `reference`, padded with a comment to exactly `size` bytes."""
    text = f"images:\n- image: {reference}\n"
    path.write_text(text + "#" + "x" * (size - len(text) - 2) + "\n")
    assert size == path.stat().st_size
    return path


def test_an_input_file_over_its_cap_is_refused_before_any_request(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    push: Pusher,
    request: pytest.FixtureRequest,
) -> None:
    """
    An input of N bytes is refused with `--limit input-bytes=N-1` (one line naming the
    file, exit code 3, no request to any registry) and read with `input-bytes=N`.
    """
    pushed = push(registry, repository, image(request.node.nodeid, layer_sizes=(64,)))
    size = 4096
    with FaultProxy(registry.url) as source:
        sources = _input_of_size(tmp_path / "big.yml", f"{source.host}/{pushed.repository}"
                                 f"@{pushed.digest}", size)
        flags = ["-r", f"{registry2.host}/copied", *insecure_flags(source.host, registry2.host)]
        over = relocator(capsys, "relocate", "-f", str(sources), *flags,
                         "--limit", f"input-bytes={size - 1}")
        asked = source.requests()
        at = relocator(capsys, "relocate", "-f", str(sources), *flags,
                       "--limit", f"input-bytes={size}")

    assert EXIT_INPUT == over.code, over.err
    expected = f"relocator: error: {sources}: larger than the limit of {size - 1} bytes for an input"
    assert [expected] == [line.split(" (hint:")[0] for line in over.error_lines]
    assert [] == asked
    assert 0 == at.code, at.err


def test_an_input_over_the_default_cap_is_refused_from_a_file_and_from_stdin(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A file or standard input one byte over the default cap (32 MiB) is refused with exit
    code 3 and one line naming it, without parsing it.
    """
    from relocator.config import MAX_INPUT_BYTES

    big = _input_of_size(tmp_path / "big.yml", f"example.com/a@sha256:{'a' * 64}",
                         MAX_INPUT_BYTES + 1)

    from_file = relocator(capsys, "resolve", "-f", str(big))
    monkeypatch.setattr(sys, "stdin", io.StringIO(big.read_text()))
    from_stdin = relocator(capsys, "resolve", "-f", "-")

    assert (EXIT_INPUT, EXIT_INPUT) == (from_file.code, from_stdin.code)
    assert 1 == len(from_file.error_lines)
    assert f"{big}: larger than the limit of {MAX_INPUT_BYTES} bytes" in from_file.err
    assert 1 == len(from_stdin.error_lines)
    assert f"stdin: larger than the limit of {MAX_INPUT_BYTES} bytes" in from_stdin.err


def _padded_child(seed: str, n: int, layer: Blob) -> Image:
    """An image of about `CHILD_BYTES` (an annotation pads it), sharing `layer`."""
    config = Blob.from_bytes(json.dumps({"architecture": f"arch{n}", "os": "linux"}).encode(),
                             mediatypes.OCI_CONFIG)
    doc = {
        "schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
        "config": config.to_json(), "layers": [layer.to_json()],
        "annotations": {"pad": f"{seed}/{n}".ljust(CHILD_BYTES - 600, ".")},
    }
    child = Image.from_document(doc, blobs=[config, layer])
    return Image(media_type=child.media_type, digest=child.digest, raw=child.raw,
                 blobs=child.blobs, platform=f"linux/arch{n}")


# Started as `python -S -I -c`, this forks and execs the measured command and prints its
# peak RSS (KiB) last on stdout. Linux keeps a process's peak RSS across `exec`, so a
# command forked straight from pytest (hundreds of MiB by then) would report pytest's;
# forked from this (about 9 MiB), its peak is its own.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss, flush=True)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _relocate_measured(
    tmp_path: Path, reference: str, source: Registry, destination: Registry
) -> tuple[int, str, int]:
    """`relocate` in a subprocess: its exit code, stderr and peak resident bytes."""
    sources = images_file(tmp_path / "images.yml", [reference])
    done = subprocess.run(
        [sys.executable, "-S", "-I", "-c", _LAUNCHER,
         sys.executable, "-m", "relocator", "relocate", "-f", str(sources),
         "-r", f"{destination.host}/copied", "--progress", "none",
         *insecure_flags(source.host, destination.host)],
        cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=600, check=False,
    )
    return done.returncode, done.stderr, int(done.stdout.split()[-1]) * 1024


@pytest.mark.slow
@pytest.mark.parametrize(("children", "expected_code"), [(15, 0), (40, EXIT_MANIFEST)])
def test_a_fan_out_index_of_4_mib_children_stays_under_256_mib(
    children: int,
    expected_code: int,
    tmp_path: Path,
    fresh_registry: Registry,
    registry2: Registry,
    repository: str,
    push: Pusher,
    request: pytest.FixtureRequest,
) -> None:
    """
    An index whose children are each about 4 MiB, from the real registry, relocated
    with the default caps, peaks under 256 MiB of resident memory: 15 children (60 MB,
    within the 64 MiB the plan may hold) are copied; 40 (160 MB) are refused with one
    line and exit code 5, the plan stopping at the cap instead of holding them all.
    """
    layer = Blob.from_bytes(b"shared layer", mediatypes.OCI_LAYER_GZIP)
    tree = index([_padded_child(request.node.nodeid, n, layer) for n in range(children)])
    pushed = push(fresh_registry, repository, tree)

    code, err, peak = _relocate_measured(
        tmp_path, f"{fresh_registry.host}/{repository}@{pushed.digest}", fresh_registry,
        registry2,
    )

    assert expected_code == code, err[-3000:]
    assert peak < MAX_RSS, f"peak RSS {peak // MiB} MiB"
    if expected_code:
        assert 1 == sum(line.startswith("relocator: error:") for line in err.splitlines())
        assert "manifests of this run add up to more than the limit" in err
    else:
        verify_image_tree(registry2, "copied", pushed.digest, expected=tree)
