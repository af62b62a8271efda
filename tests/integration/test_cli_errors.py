"""
What the command line prints when things go wrong: one line (or, with `--json`, one
JSON event) naming the culprit, with a hint and a documented exit code; never a
traceback, a library object repr, an aiohttp class name, a value echoed in full, or a
credential relocator sent, whatever the source of the message.
"""

from __future__ import annotations

import io
import json
import re
import socket
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import yaml

from relocator import redaction
from relocator.cli import commands
from relocator.oci import Digest, mediatypes
from tests.integration.cli import relocator
from tests.integration.faults_support import fast_cli
from tests.support import DockerConfigDir, Registry
from tests.support.proxy import FaultProxy, Respond

DIGEST = Digest.of(b"a manifest that is never fetched")
AIOHTTP_NAMES = sorted(
    name for name in dir(aiohttp) if name.endswith(("Error", "Exception", "Disconnected"))
)


@pytest.fixture(autouse=True)
def no_secrets_left(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """
    Retries wait milliseconds (a refused connection is retried: a registry may be
    restarting); secrets recorded by one in-process run are forgotten before the next.
    """
    fast_cli(monkeypatch)
    yield
    redaction.forget_all()


@dataclass(frozen=True, slots=True)
class Case:
    """One mistake or hostile input: the command line, and the exit code and text expected."""

    argv: list[str]
    code: int
    expected: str


def _images(path: Path, *references: str) -> str:
    path.write_text(yaml.safe_dump({"images": [{"image": r} for r in references]}))
    return str(path)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _relocate(tmp_path: Path, destination: Registry, source: str, *flags: str) -> list[str]:
    return ["relocate", "-f", _images(tmp_path / "images.yml", source), "-r",
            f"{destination.host}/errors/app", "--registry-insecure", destination.host, *flags]


def _huge_descriptor_manifest(proxy: FaultProxy) -> str:
    """A source whose manifest names a layer of 2^64 bytes; its digest reference."""
    config = {"mediaType": mediatypes.OCI_CONFIG, "digest": str(Digest.of(b"{}")), "size": 2}
    layer = {"mediaType": mediatypes.OCI_LAYER_GZIP, "digest": str(DIGEST), "size": 2**64}
    body = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
                       "config": config, "layers": [layer]}).encode()
    digest = Digest.of(body)
    proxy.add(Respond(body=body, headers={"Content-Type": mediatypes.OCI_MANIFEST,
                                          "Docker-Content-Digest": str(digest)}),
              path="/manifests/")
    return f"{proxy.host}/errors/huge@{digest}"


def _pax_superscript_tar(path: Path) -> str:
    """A tarball whose first member's PAX header says `size=²`."""
    member = tarfile.TarInfo("oci-layout")
    member.pax_headers = {"size": "\u00b2"}
    data = b'{"imageLayoutVersion": "1.0.0"}'
    member.size = len(data)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(member, io.BytesIO(data))
    return str(path)


def _bearer_crlf(proxy: FaultProxy) -> str:
    """A source whose token endpoint hands out a token with CRLF in it."""
    proxy.add(Respond(body=json.dumps({"token": "tok\r\nX-Injected: 1"}).encode()), path="/token")
    realm = f'Bearer realm="{proxy.url}/token",service="errors"'
    proxy.add(Respond(status=401, headers={"WWW-Authenticate": realm}), path="/v2/")
    return f"{proxy.host}/errors/app@{DIGEST}"


CASES: dict[str, Callable[[Path, Registry, FaultProxy, Registry], Case]] = {
    "connection refused": lambda tmp, dst, proxy, tls: Case(
        _relocate(tmp, dst, f"127.0.0.1:{(port := _closed_port())}/x@{DIGEST}"), 7,
        f"cannot connect to 127.0.0.1:{port}: connection refused (is a registry listening on "
        f"127.0.0.1:{port}?)",
    ),
    "name does not resolve": lambda tmp, dst, proxy, tls: Case(
        _relocate(tmp, dst, f"relocator-test.invalid:5000/x@{DIGEST}"), 7,
        "cannot resolve relocator-test.invalid:5000",
    ),
    "plain http to a TLS registry": lambda tmp, dst, proxy, tls: Case(
        _relocate(tmp, dst, f"{tls.host}/x@{DIGEST}", "--registry-insecure", tls.host), 7,
        f"{tls.host} answers https, not plain http (hint: the registry speaks https: drop "
        f"--registry-insecure for {tls.host})",
    ),
    "CA file that is not PEM": lambda tmp, dst, proxy, tls: Case(
        _relocate(tmp, dst, f"{tls.host}/x@{DIGEST}", "--registry-ca-cert-path",
                  _images(tmp / "ca.pem", "not a certificate")), 3,
        "ca.pem holds no PEM certificate",
    ),
    "CA file that does not exist": lambda tmp, dst, proxy, tls: Case(
        _relocate(tmp, dst, f"{tls.host}/x@{DIGEST}", "--registry-ca-cert-path",
                  str(tmp / "missing.pem")), 3,
        "missing.pem: no such file",
    ),
    "port out of range": lambda tmp, dst, proxy, tls: Case(
        _relocate(tmp, dst, f"localhost:99999/x@{DIGEST}"), 3,
        "port 99999 of registry 'localhost:99999' is not between 1 and 65535",
    ),
    "tag of 40,000 characters": lambda tmp, dst, proxy, tls: Case(
        ["resolve", "-f", _images(tmp / "images.yml", f"{dst.host}/x:{'t' * 40_000}")], 3,
        "…' (40000 characters)",
    ),
    "descriptor of 2^64 bytes": lambda tmp, dst, proxy, tls: Case(
        ["pkg", "-f", _images(tmp / "images.yml", _huge_descriptor_manifest(proxy)),
         "-o", str(tmp / "out.tar"), "--registry-insecure", proxy.host], 5,
        "has no valid size (a whole number from 0 to 2^63-1)",
    ),
    "PAX size in a superscript digit": lambda tmp, dst, proxy, tls: Case(
        ["unpkg", "-f", _images(tmp / "images.yml"), "-i", _pax_superscript_tar(tmp / "in.tar"),
         "-r", f"{dst.host}/errors/app", "--registry-insecure", dst.host], 3,
        "has an unreadable size",
    ),
    "bearer token with CRLF": lambda tmp, dst, proxy, tls: Case(
        _relocate(tmp, dst, _bearer_crlf(proxy), "--registry-insecure", proxy.host), 4,
        "answered a token that is not a valid header value",
    ),
}


def _forbidden(text: str) -> list[str]:
    """Object reprs, tracebacks and aiohttp class names found in `text`."""
    found = re.findall(r"object at 0x[0-9a-fA-F]+|0x[0-9a-fA-F]{8,}|Traceback", text)
    return found + [name for name in AIOHTTP_NAMES if name in text]


@pytest.mark.parametrize("name", list(CASES))
def test_each_mistake_is_one_line_with_its_exit_code(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry2: Registry,
    proxy: FaultProxy,
    tls_registry: Registry,
    name: str,
) -> None:
    """
    Each mistake or hostile value ends the run with one `relocator: error:` line naming
    it, the documented exit code, and no repr, traceback or aiohttp class name.
    """
    case = CASES[name](tmp_path, registry2, proxy, tls_registry)

    result = relocator(capsys, *case.argv, "--progress", "none")

    assert (case.code, 1) == (result.code, len(result.error_lines)), result.err
    assert case.expected in result.error_lines[0]
    assert len(result.error_lines[0]) < 1000
    assert [] == _forbidden(result.err)
    assert "internal error" not in result.err


@pytest.mark.parametrize("name", list(CASES))
def test_with_json_each_mistake_is_one_json_error_event(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry2: Registry,
    proxy: FaultProxy,
    tls_registry: Registry,
    name: str,
) -> None:
    """With `--json`, stderr holds JSON objects only, the last an Error event with the code."""
    case = CASES[name](tmp_path, registry2, proxy, tls_registry)

    result = relocator(capsys, *case.argv, "--json")

    documents = [json.loads(line) for line in result.err.splitlines()]
    errors = [d for d in documents if d["type"] == "Error"]
    assert case.code == result.code
    assert [case.code] == [e["exit_code"] for e in errors]
    assert case.expected.split(" (hint: ")[0] in errors[0]["message"]
    assert [] == _forbidden(result.err)


def test_with_json_an_argument_error_is_a_json_event(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A flag argparse refuses is an Error event with exit code 2, not usage text."""
    result = relocator(capsys, "relocate", "--json", "-f", "x.yml")

    assert 2 == result.code
    [document] = [json.loads(line) for line in result.err.splitlines()]
    assert {"type": "Error", "exit_code": 2} == {k: document[k] for k in ("type", "exit_code")}
    assert "-r/--repository" in document["message"]


@pytest.mark.parametrize("value", ["\u0663", "1_0", " 3", "9" * 5000])
def test_numbers_in_flags_are_ascii_digits(capsys: pytest.CaptureFixture[str], value: str) -> None:
    """`int()` would read '٣', '1_0' and ' 3'; a flag takes plain ASCII digits only."""
    result = relocator(capsys, "relocate", "--json", "-f", "x.yml", "-r", "localhost:5000/x",
                       "--concurrency", value)

    [document] = [json.loads(line) for line in result.err.splitlines()]
    assert (2, "Error") == (result.code, document["type"])
    assert "argument --concurrency: expected a number, got" in document["message"]
    assert len(document["message"]) < 400


def test_with_json_an_internal_error_is_a_json_event(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug (an unexpected exception) is still one JSON Error event, exit code 1."""

    async def broken(_: object) -> int:
        raise ValueError("x" * 40_000)

    monkeypatch.setattr(commands, "resolve", broken)

    result = relocator(capsys, "resolve", "--json", "-f", str(tmp_path / "images.yml"))

    assert 1 == result.code
    [document] = [json.loads(line) for line in result.err.splitlines()]
    assert "Error" == document["type"]
    assert document["message"].startswith("internal error: ValueError: xxx")
    assert document["message"].endswith("(40000 characters)")


def test_a_bug_with_debug_prints_its_traceback_without_secrets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `--debug`, a bug's traceback is shown, and a credential in it is hidden."""

    async def broken(_: object) -> int:
        redaction.remember("s3cr3t-in-a-bug")
        raise ValueError("leaked s3cr3t-in-a-bug")

    monkeypatch.setattr(commands, "resolve", broken)

    result = relocator(capsys, "resolve", "--debug", "-f", str(tmp_path / "images.yml"))

    assert 1 == result.code
    assert "Traceback" in result.err
    assert "internal error: ValueError: leaked REDACTED" in result.err
    assert "s3cr3t-in-a-bug" not in result.err


TOKEN = "registry-token-3f9a8b7c6d5e"
PASSWORD = 'pa55-"word\\-s3cr3t'


@pytest.mark.parametrize("scheme", ["Bearer", "Basic"])
@pytest.mark.parametrize("display", [["--progress", "plain"], ["--json"], ["--debug"]])
def test_credentials_a_registry_echoes_are_never_printed(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    docker_config: DockerConfigDir,
    registry2: Registry,
    proxy: FaultProxy,
    scheme: str,
    display: list[str],
) -> None:
    """
    A registry that echoes the bearer token, the Basic header and the password it was
    sent in its error body gets none of them printed: not in the error line, the JSON
    events, the `--debug` log and traceback, nor the `--report` file.
    """
    docker_config.login(proxy.host, "alice", PASSWORD, registry_token=TOKEN)
    basic = redaction.remember_basic("alice", PASSWORD)
    redaction.forget_all()
    sent = {"Bearer": f"Bearer {TOKEN}", "Basic": f"Basic {basic}"}[scheme]
    echo = {"errors": [{"code": "DENIED", "message": f"rejected {sent} ({PASSWORD})"}]}
    proxy.add(Respond(status=400, body=json.dumps(echo).encode()), header="Authorization")
    challenge = f'{scheme} realm="errors"' if scheme == "Basic" else 'Bearer realm="/token"'
    proxy.add(Respond(status=401, headers={"WWW-Authenticate": challenge}), path="/v2/")
    report = tmp_path / "report.json"

    result = relocator(capsys, *_relocate(tmp_path, registry2, f"{proxy.host}/x@{DIGEST}",
                                          "--registry-insecure", proxy.host,
                                          "--report", str(report)), *display)

    shown = result.out + result.err + report.read_text()
    assert 8 == result.code, result.err
    assert "rejected" in shown
    assert [] == [s for s in (TOKEN, basic, PASSWORD, json.dumps(PASSWORD)[1:-1]) if s in shown]
