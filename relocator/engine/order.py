"""
The order of a plan's manifests: bottom-up (children before parents), and each attached
image after its subject.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .graph import Key, ManifestNode, Plan


def after_subjects(plan: Plan) -> None:
    """
    Make each attached image wait for its subject, where the plan lands that subject
    (an OCI referrer already waits through its `subject` field; a cosign signature does
    not have one). A wait that would close a cycle (only a hostile source can build one
    from tags) is left out rather than stalling the run.
    """
    for job in plan.jobs:
        if job.subject is None:
            continue
        node = plan.manifests.get((job.destination, job.digest))
        subject: Key = (job.destination, job.subject)
        if node is None or subject in node.manifests:
            continue
        if subject in plan.manifests_present:
            continue  # already there: nothing to wait for
        if subject not in plan.manifests or _reaches(plan, subject, node.key):
            continue
        node.manifests.append(subject)


def _reaches(plan: Plan, start: Key, target: Key) -> bool:
    """Whether `target` is `start` or below it (through children, subjects and waits)."""
    seen: set[Key] = set()
    stack = [start]
    while stack:
        key = stack.pop()
        if key == target:
            return True
        node = plan.manifests.get(key)
        if node is None or key in seen:
            continue
        seen.add(key)
        stack.extend(node.manifests)
    return False


def bottom_up(plan: Plan) -> dict[Key, ManifestNode]:
    """
    The plan's manifests in a deterministic post-order (children before parents, jobs in
    order), whatever order the concurrent walks finished in.
    """
    ordered: dict[Key, ManifestNode] = {}

    def visit(key: Key) -> None:
        node = plan.manifests.get(key)
        if node is None or key in ordered:
            return
        for child in node.manifests:
            visit(child)
        ordered[key] = node

    for job in plan.jobs:
        visit((job.destination, job.digest))
    return ordered
