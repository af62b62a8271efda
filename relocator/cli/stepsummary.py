"""
A markdown summary of the run for the GitHub Actions job page.

When `GITHUB_STEP_SUMMARY` names a file (GitHub Actions sets it for every step), the
run's summary is appended to it: status, images, bytes, duration, requests and retries
per registry, and the failed images. The file is opened with `O_APPEND | O_NOFOLLOW`:
earlier steps' summaries are never truncated, and a symlink planted in its place is
refused rather than followed to some other file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from relocator.api.display import HostState, Report, megabytes
from relocator.errors import InputError

#: The variable GitHub Actions sets to the step's summary file.
VARIABLE = "GITHUB_STEP_SUMMARY"
# Failed images listed at most; a run where hundreds failed says how many more.
_FAILURES_SHOWN = 50


def step_summary_path(environ: Mapping[str, str] | None = None) -> str | None:
    """The summary file to append to, or None outside GitHub Actions."""
    path = (os.environ if environ is None else environ).get(VARIABLE, "")
    return path or None


def markdown(
    command: str,
    status: str,
    report: Report,
    hosts: Sequence[HostState],
    *,
    nothing_done: bool = False,
    error: str | None = None,
) -> str:
    """The run's summary as a markdown section."""
    lines = [f"### relocator {command}: {status}", ""]
    if error:
        lines += [f"Stopped: {_cell(error)}", ""]
    if nothing_done:
        lines += [f"Nothing to do: {len(report.images)} images already present.", ""]
    else:
        copied = sum(1 for image in report.images if image.how == "copied")
        lines += [
            "| | count | size |",
            "|---|---:|---:|",
            f"| images copied | {copied} | |",
            f"| images present (skipped) | {len(report.images) - copied} | |",
            f"| images failed | {len(report.failures)} | |",
            f"| blobs copied | {report.blobs_copied} | {megabytes(report.bytes_copied)} |",
            f"| blobs mounted | {report.blobs_mounted} | {megabytes(report.bytes_mounted)} |",
            (f"| blobs present (skipped) | {report.blobs_present} | "
             f"{megabytes(report.bytes_present)} |"),
            f"| manifests pushed | {report.manifests_pushed} | |",
            *([f"| manifests waiting on other shards | {report.manifests_waiting} | |"]
              if report.manifests_waiting else []),
            f"| duration | {report.seconds:.1f} s | |",
            "",
        ]
    if hosts:
        lines += [
            "| registry | requests | retries | rate-limited | lowest concurrency | pulls left |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for host in hosts:
            pulls = (f"{host.pulls.remaining} of {host.pulls.limit}"
                     if host.pulls is not None else "")
            lines.append(
                f"| {_cell(host.host)} | {host.requests} | {host.retries} | {host.throttled} "
                f"| {host.limiter.lowest} of {host.limiter.initial} | {pulls} |"
            )
        lines.append("")
    if report.failures:
        lines += ["Failed images:", ""]
        for failure in report.failures[:_FAILURES_SHOWN]:
            lines.append(f"- {_cell(str(failure.source))}: {_cell(failure.error)}")
        if len(report.failures) > _FAILURES_SHOWN:
            lines.append(f"- and {len(report.failures) - _FAILURES_SHOWN} more")
        lines.append("")
    return "\n".join(lines) + "\n"


def append_step_summary(path: str, text: str) -> None:
    """
    Append `text` to the summary file at `path`, created if missing; never truncated,
    never through a symlink.

    Raises:
        InputError: The file cannot be opened or written (a symlink among them).
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise InputError(
            f"cannot append the step summary to {path} ({VARIABLE}): "
            f"{'it is a symlink' if os.path.islink(path) else exc.strerror or exc}"
        ) from None
    try:
        data = text.encode("utf-8")
        while data:
            written = os.write(fd, data)
            data = data[written:]
    except OSError as exc:
        raise InputError(
            f"cannot append the step summary to {path} ({VARIABLE}): {exc.strerror or exc}"
        ) from None
    finally:
        os.close(fd)


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell or list item: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")
