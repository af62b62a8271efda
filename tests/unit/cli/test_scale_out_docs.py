"""
The scale-out guide's examples run as written: every `relocator` command line of its
Kubernetes Indexed Job and GitHub Actions matrix parses into the request it means.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from relocator.api import PlanRequest, RelocateRequest, Shard
from relocator.cli.arguments import Invocation, read

GUIDE = Path(__file__).resolve().parents[3] / "docs" / "scale-out.md"


def _section(title: str) -> list[Any]:
    """The YAML documents of the first code block under the heading `## title`."""
    text = GUIDE.read_text()
    body = text.split(f"## {title}\n", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", body, re.DOTALL)
    assert block is not None, f"no YAML example under '## {title}'"
    return list(yaml.safe_load_all(block.group(1)))


def _kubernetes() -> Iterator[tuple[list[str], dict[str, str]]]:
    """Each container's args, with the plain `value`s of its environment."""
    for job in _section("Kubernetes Indexed Job"):
        for container in job["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
            yield [str(arg) for arg in container["args"]], env


def _github(shard: int) -> Iterator[list[str]]:
    """Each `run:` step that calls relocator, with the matrix's `shard` filled in."""
    for workflow in _section("GitHub Actions matrix"):
        for job in workflow["jobs"].values():
            for step in job["steps"]:
                run = step.get("run", "")
                if run.startswith("relocator "):
                    yield shlex.split(run.replace("${{ matrix.shard }}", str(shard)))[1:]


def _read(argv: list[str]) -> Invocation:
    invocation = read(argv, env={})
    assert isinstance(invocation, Invocation), argv
    assert invocation.error is None, invocation.error
    return invocation


def test_the_kubernetes_example_plans_once_and_runs_shard_2_of_4_from_the_plan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    The one-pod Job is a `plan`; the Indexed Job's pod with JOB_COMPLETION_INDEX=2 is
    `relocate --plan` as shard 2/4 (the count from RELOCATOR_SHARD, the index from
    Kubernetes), both to the same destination.
    """
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "2")
    monkeypatch.delenv("RELOCATOR_SHARD", raising=False)
    requests = []
    for argv, env in _kubernetes():
        with monkeypatch.context() as scoped:
            for name, value in env.items():
                scoped.setenv(name, value)
            requests.append(_read(argv).request)

    assert 2 == len(requests)
    planned, worker = requests
    assert isinstance(planned, PlanRequest)
    assert isinstance(worker, RelocateRequest)
    assert (Shard(2, 4), planned.output) == (worker.transfer.shard, worker.plan)
    assert planned.repository == worker.repository
    assert planned.files == worker.files


@pytest.mark.parametrize("shard", [0, 3])
def test_the_github_actions_example_plans_once_and_runs_each_matrix_shard(
    monkeypatch: pytest.MonkeyPatch, shard: int
) -> None:
    """The plan job is a `plan`; each matrix job is `relocate --plan` as its shard of 4."""
    monkeypatch.delenv("RELOCATOR_SHARD", raising=False)
    requests = [_read(argv).request for argv in _github(shard)]

    assert 2 == len(requests)
    planned, worker = requests
    assert isinstance(planned, PlanRequest)
    assert isinstance(worker, RelocateRequest)
    assert (Shard(shard, 4), planned.output) == (worker.transfer.shard, worker.plan)
    assert planned.repository == worker.repository
