"""Requests of the public API: short to write, frozen, and checked before a run starts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from relocator.api import (
    CopyRequest,
    LockFiles,
    PkgRequest,
    PlanRequest,
    RelocateRequest,
    ResolveRequest,
    Transfer,
    UnpkgRequest,
    check,
)
from relocator.errors import InputError


def test_a_relocate_request_needs_only_its_files_and_a_repository() -> None:
    """`RelocateRequest(files=..., repository=...)` is a whole request: it passes `check`."""
    request = RelocateRequest(files=["app.yml"], repository="reg.example/team")

    check(request)

    assert (False, False, "relocator") == (
        request.transfer.dry_run, request.transfer.keep_going, request.tag_scheme
    )


def test_requests_are_frozen() -> None:
    """A request cannot change under a run that holds it."""
    request = RelocateRequest(files=["app.yml"], repository="reg.example/team")

    with pytest.raises(dataclasses.FrozenInstanceError):
        request.repository = "other.example/x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (RelocateRequest(files=["a.yml"]), "name one destination"),
        (RelocateRequest(files=["a.yml"], repository="r.example/a",
                         repository_template="r.example/{repository}"), "name one destination"),
        (UnpkgRequest(input="x.tar", repository_template="r.example/{nope}"),
         "--repository-template 'r.example/{nope}' must use"),
        (RelocateRequest(files=["a.yml"], repository="r.example/a", platforms=["linux/"]),
         "Invalid platform 'linux/'"),
        (CopyRequest(source="r.example/a:1", destination="r.example/b", platforms=["/"]),
         "Invalid platform"),
        (ResolveRequest(files=["a.yml"], platform="linux/"), "Invalid platform"),
        (PkgRequest(files=["a.yml"], output="x.tar", format="kbld",
                    transfer=Transfer(include_referrers=True)), "needs --format oci"),
    ],
)
def test_check_refuses_what_cannot_run(request_: object, expected: str) -> None:
    """Each refusal is one InputError naming the culprit, before anything is read."""
    with pytest.raises(InputError) as refused:
        check(request_)  # type: ignore[arg-type]

    assert expected in str(refused.value)


def test_check_refuses_an_output_path_that_must_not_be_replaced(tmp_path: Path) -> None:
    """A lock file path that names a directory is refused, naming the flag and the path."""
    (tmp_path / "lock").mkdir()
    request = RelocateRequest(files=["a.yml"], repository="r.example/a",
                              locks=LockFiles(kbld=str(tmp_path / "lock")))

    with pytest.raises(InputError, match=f"--lock-output {tmp_path / 'lock'}"):
        check(request)


def test_check_refuses_a_plan_file_path_that_is_a_directory_and_a_plan_with_platforms(
    tmp_path: Path,
) -> None:
    """
    `PlanRequest.output` is checked as `--output` is; a plan run with `--platform`
    (whose new names need the index the plan leaves out) is refused naming the plan.
    """
    with pytest.raises(InputError, match=r"--output .*: is a directory"):
        check(PlanRequest(files=["app.yml"], output=str(tmp_path), repository="reg.example/t"))
    with pytest.raises(InputError, match=r"--plan plan\.json cannot be combined with --platform"):
        check(RelocateRequest(files=["app.yml"], repository="reg.example/t", plan="plan.json",
                              platforms=["linux/amd64"]))
