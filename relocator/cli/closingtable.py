"""
The table a run closes with on a terminal: images, blobs and bytes moved against skipped,
time, speed, and what each registry cost in requests and retries.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from relocator.api.display import HostState, Report, megabytes

from .plain import registry_costs


def summary_table(
    prefix: str, verb: str, report: Report, hosts: Sequence[HostState], *, narrow: bool = False
) -> RenderableType:
    """
    The closing table: images, blobs and bytes moved against skipped, time, speed,
    and requests and retries per registry (a table, or with `narrow` one line each).
    """
    seconds = max(report.seconds, 1e-6)
    images = len(report.images)
    copied = sum(1 for i in report.images if i.how == "copied")
    table = Table(
        title=f"{prefix}: {verb} {images} images in {report.seconds:.1f} s",
        title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
    )
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_column("size", justify="right")
    table.add_row("images copied", str(copied), "")
    table.add_row("images present (skipped)", str(images - copied), "")
    if report.failures:
        table.add_row(Text("images failed", style="bold red"),
                      Text(str(len(report.failures)), style="bold red"), "")
    table.add_row("blobs copied", str(report.blobs_copied), megabytes(report.bytes_copied))
    table.add_row("blobs mounted", str(report.blobs_mounted), megabytes(report.bytes_mounted))
    table.add_row("blobs present (skipped)", str(report.blobs_present),
                  megabytes(report.bytes_present))
    if report.blobs_excluded:
        table.add_row("blobs left out (non-distributable)", str(report.blobs_excluded), "")
    table.add_row("manifests pushed", str(report.manifests_pushed), "")
    table.add_row("retries (requests)", str(sum(host.retries for host in hosts)), "")
    if report.retries:
        table.add_row("blob transfers restarted", str(report.retries), "")
    table.add_row("time", f"{report.seconds:.1f} s", "")
    table.add_row("throughput", "", f"{megabytes(int(report.bytes_copied / seconds))}/s")
    if not hosts:
        return table
    if narrow:
        lines = []
        for host in hosts:
            line = Text.assemble((host.host, "bold"), "\n  ", registry_costs(host, pulls=False))
            if host.pulls is not None:
                line.append("\n  " + host.pulls.describe())
            lines.append(line)
        return Group(table, *lines)
    pulls = any(host.pulls is not None for host in hosts)
    registries = Table(box=box.SIMPLE_HEAD)
    # The host is what the table is about: it may wrap, never be cut short.
    registries.add_column("registry", overflow="fold", min_width=12)
    for name in ("requests", "retries", "rate-limited", "concurrency"):
        registries.add_column(name, justify="right")
    if pulls:
        registries.add_column("pulls left", justify="right")
    for host in hosts:
        limiter = host.limiter
        concurrency = str(limiter.initial)
        if limiter.lowest < limiter.initial:
            concurrency = f"{limiter.lowest} (of {limiter.initial})"
        cells: list[RenderableType] = [
            host.host, str(host.requests),
            Text(str(host.retries), style="yellow" if host.retries else ""),
            Text(str(host.throttled), style="yellow" if host.throttled else ""),
            concurrency,
        ]
        if pulls:
            cells.append(
                f"{host.pulls.remaining} of {host.pulls.limit}" if host.pulls else ""
            )
        registries.add_row(*cells)
    return Group(table, registries)
