"""
Results: rows of samples, their medians, the targets of the issue, markdown and JSON.

A row is one tool in one section, with one `Sample` per run. The table shows medians
(wall, CPU, registry CPU) and the largest peak RSS of any run. MB are 10^6 bytes and GB
10^9 bytes; throughput is the corpus's unique blob bytes divided by the wall time.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .measure import Sample

MB = 1_000_000
GB = 1_000_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One tool in one section: its samples, or why it has none."""

    section: str
    tool: str
    samples: tuple[Sample, ...] = ()
    #: Unique blob bytes the run moves (the MB/s numerator).
    unique_bytes: int = 0
    images: int = 0
    #: What was checked after the runs (or what failed).
    verified: str = ""
    #: `not available: ...` or `failed: ...`; the row then has no numbers.
    problem: str | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        """Whether the row has numbers."""
        return self.problem is None and bool(self.samples)

    @property
    def wall_s(self) -> float:
        """Median wall time."""
        return statistics.median(s.wall_s for s in self.samples)

    @property
    def best_wall_s(self) -> float:
        """The fastest run: on a shared machine, the one least disturbed."""
        return min(s.wall_s for s in self.samples)

    @property
    def cpu_s(self) -> float:
        """Median client CPU."""
        return statistics.median(s.cpu_s for s in self.samples)

    @property
    def peak_rss(self) -> int:
        """Largest peak RSS of any run, in bytes."""
        return max(s.peak_rss for s in self.samples)

    @property
    def registry_cpu_s(self) -> float:
        """Median CPU of both registries."""
        return statistics.median(s.registry_cpu_s for s in self.samples)

    @property
    def other_cpu_s(self) -> float:
        """Median CPU the rest of the machine used during the runs (interference)."""
        return statistics.median(s.other_cpu_s for s in self.samples)

    @property
    def proxy_cpu_s(self) -> float | None:
        """Median CPU of the WAN proxy, None when there was none."""
        if not any("proxy" in s.server_cpu_s for s in self.samples):
            return None
        return statistics.median(s.server_cpu_s.get("proxy", 0.0) for s in self.samples)

    @property
    def counted_requests(self) -> bool:
        """Whether the registries' requests were counted (results before they were: no)."""
        return any(s.requests for s in self.samples)

    def requests(self, *, method: str | None = None, route: str | None = None) -> float:
        """Median requests to both registries (those of one method and/or route)."""
        return statistics.median(s.requests_by(method=method, route=route) for s in self.samples)

    def request_kinds(self) -> dict[str, float]:
        """
        Median count of each `"registry METHOD route"` any run made (e.g.
        `"destination HEAD manifest"`), largest first.
        """
        kinds = {
            (registry, kind)
            for s in self.samples
            for registry, counts in s.requests.items()
            for kind in counts
        }
        medians = {
            f"{registry} {kind}": statistics.median(
                s.requests.get(registry, {}).get(kind, 0) for s in self.samples
            )
            for registry, kind in kinds
        }
        return dict(sorted(medians.items(), key=lambda item: (-item[1], item[0])))

    @property
    def mb_per_s(self) -> float:
        """Unique bytes per second of wall time, in MB/s."""
        return self.unique_bytes / self.wall_s / MB

    @property
    def cpu_per_gb(self) -> float:
        """Client CPU seconds per GB of unique bytes."""
        return self.cpu_s / (self.unique_bytes / GB) if self.unique_bytes else 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One target of the issue and how this run did."""

    name: str
    goal: str
    measured: str = "not measured"
    #: None when it could not be measured.
    met: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Results:
    """Everything a benchmark run reports."""

    machine: Mapping[str, str]
    settings: Mapping[str, Any]
    corpus: Mapping[str, Any]
    rows: tuple[Row, ...]
    scale: tuple[Row, ...] = ()
    profiles: tuple[str, ...] = ()
    targets: tuple[Target, ...] = field(default=())


def machine_info(versions: Mapping[str, str]) -> dict[str, str]:
    """CPU model, cores, RAM, OS and tool versions: what a reader needs to compare runs."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "ram": f"{mem_kib / 1024 / 1024:.0f} GiB",
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        **versions,
    }


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: a busy machine skews every number."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- targets ---------------------------------------------------------------------------


def _find(rows: Iterable[Row], section: str, tool: str) -> Row | None:
    for row in rows:
        if row.section == section and row.tool == tool and row.ok:
            return row
    return None


def _ratio_target(
    rows: Sequence[Row],
    name: str,
    goal: str,
    numerator: tuple[str, str],
    denominator: tuple[str, str],
    check: Callable[[float], bool],
    label: str,
) -> Target:
    top, bottom = _find(rows, *numerator), _find(rows, *denominator)
    if top is None or bottom is None:
        return Target(name=name, goal=goal)
    ratio = top.wall_s / bottom.wall_s
    best = top.best_wall_s / bottom.best_wall_s
    return Target(
        name=name,
        goal=goal,
        measured=f"{ratio:.2f} {label} (fastest runs: {best:.2f})",
        met=check(ratio),
    )


def _throughput_target(rows: Sequence[Row], section: str, name: str, least: float) -> Target:
    tool, ceiling = _find(rows, section, "relocator"), _find(rows, section, "ceiling")
    goal = f">= {least:.2f} x ceiling throughput"
    if tool is None or ceiling is None:
        return Target(name=name, goal=goal)
    share = ceiling.wall_s / tool.wall_s
    best = ceiling.best_wall_s / tool.best_wall_s
    return Target(
        name=name,
        goal=goal,
        measured=f"{share:.2f} x ceiling (fastest runs: {best:.2f})",
        met=share >= least,
    )


def _cpu_target(rows: Sequence[Row], section: str, name: str, most: float) -> Target:
    tool = _find(rows, section, "relocator")
    goal = f"<= {most:.1f} s per GB"
    if tool is None:
        return Target(name=name, goal=goal)
    return Target(
        name=name,
        goal=goal,
        measured=f"{tool.cpu_per_gb:.2f} s/GB",
        met=tool.cpu_per_gb <= most,
    )


def evaluate(rows: Sequence[Row], scale: Sequence[Row]) -> tuple[Target, ...]:
    """The issue's targets, measured on `rows` (ratios within this run only)."""
    targets = [
        _ratio_target(
            rows,
            "relocate wall",
            "<= 0.70 x skopeo",
            ("relocate", "relocator"),
            ("relocate", "skopeo"),
            lambda r: r <= 0.70,
            "x skopeo",
        ),
    ]
    targets += [
        _cpu_target(rows, "relocate", "relocate client CPU", 1.5),
        _throughput_target(rows, "relocate", "relocate throughput", 0.93),
        _ratio_target(
            rows,
            "pkg wall",
            "<= 0.35 x skopeo",
            ("pkg", "relocator"),
            ("pkg", "skopeo"),
            lambda r: r <= 0.35,
            "x skopeo",
        ),
        _throughput_target(rows, "pkg", "pkg throughput", 0.85),
        _cpu_target(rows, "pkg", "pkg client CPU", 2.0),
        _throughput_target(rows, "unpkg", "unpkg throughput", 0.92),
        _ratio_target(
            rows,
            "no-op re-run",
            "<= 0.05 x first run",
            ("noop", "relocator"),
            ("relocate", "relocator"),
            lambda r: r <= 0.05,
            "x first run",
        ),
        _ratio_target(
            rows,
            "WAN wall",
            "<= 0.20 x skopeo",
            ("wan", "relocator"),
            ("wan", "skopeo"),
            lambda r: r <= 0.20,
            "x skopeo",
        ),
        _throughput_target(rows, "wan", "WAN throughput, default flags", 0.80),
        _ratio_target(
            rows,
            "adaptive limits, loopback",
            "<= 1.00 x pinned --concurrency 8",
            ("relocate", "relocator"),
            ("relocate", "relocator --concurrency 8"),
            lambda r: r <= 1.0,
            "x pinned",
        ),
        _ratio_target(
            rows,
            "many small images",
            "<= 0.60 x the baseline revision",
            ("small-images", "relocator"),
            ("small-images", "baseline"),
            lambda r: r <= 0.60,
            "x baseline",
        ),
    ]
    mine = [row for row in [*rows, *scale] if row.ok and row.tool.startswith("relocator")]
    rss_goal = "< 200 MB in every relocator run"
    if mine:
        worst = max(mine, key=lambda row: row.peak_rss)
        peak = worst.peak_rss / MB
        targets.append(
            Target(
                name="peak RSS",
                goal=rss_goal,
                measured=f"{peak:.0f} MB ({worst.section})",
                met=peak < 200,
            )
        )
    else:
        targets.append(Target(name="peak RSS", goal=rss_goal))
    for kind in ("scale-plan", "scale"):
        targets.append(_linearity(scale, kind))
    return tuple(targets)


def _linearity(scale: Sequence[Row], section: str) -> Target:
    name = "plan time linear" if section == "scale-plan" else "run time linear"
    costs = marginal_costs(scale, section)
    best = marginal_costs(scale, section, measure=lambda row: row.best_wall_s)
    counts = f"{min(costs)}-{max(costs)}" if costs else "100-1000"
    goal = f"cost per image within 1.3 x across {counts} images"
    if len(costs) < 2:
        return Target(name=name, goal=goal)
    spread = max(costs.values()) / min(costs.values())
    best_spread = max(best.values()) / min(best.values())
    per_image = ", ".join(f"{n}: {c * 1000:.1f} ms" for n, c in sorted(costs.items()))
    return Target(
        name=name,
        goal=goal,
        measured=f"{spread:.2f} x ({per_image}; fastest runs: {best_spread:.2f} x)",
        met=spread <= 1.3,
    )


def marginal_costs(
    scale: Sequence[Row], section: str, *, measure: Callable[[Row], float] | None = None
) -> dict[int, float]:
    """
    Seconds per image above the zero-image run (start-up), by image count.

    Args:
        scale: The scale rows.
        section: `scale` (relocate) or `scale-plan` (dry run).
        measure: What to count (default: the median wall time).
    """
    measure = measure or (lambda row: row.wall_s)
    rows = {row.images: row for row in scale if row.section == section and row.ok}
    base = rows.get(0)
    if base is None:
        return {}
    return {n: (measure(row) - measure(base)) / n for n, row in rows.items() if n > 0}


# -- rendering -------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _versus(row: Row, rows: Sequence[Row]) -> tuple[str, str]:
    skopeo = _find(rows, row.section, "skopeo")
    ceiling = _find(rows, row.section, "ceiling")
    vs_skopeo = (
        f"{row.wall_s / skopeo.wall_s:.2f} x"
        if skopeo is not None and row.tool != "skopeo" and row.tool != "ceiling"
        else ""
    )
    of_ceiling = (
        f"{100 * ceiling.wall_s / row.wall_s:.0f} %"
        if ceiling is not None and row.tool != "ceiling"
        else ""
    )
    return vs_skopeo, of_ceiling


def markdown(results: Results) -> str:
    """The results as markdown: machine, corpus, the main table, scale, targets."""
    m = results.machine
    corpus = results.corpus
    lines = [
        (
            f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, {m['kernel']}; "
            f"Python {m['python']}; {m['registry']}; {m['skopeo']}; {m['relocator']}; "
            f"load average {m['load_before']} before, {m['load_after']} after."
        ),
        "",
        (
            f"Corpus: {corpus['images']} images ({corpus['manifests']} manifests), "
            f"{corpus['blobs']} unique blobs, {corpus['unique_bytes'] / MB:.0f} MB unique "
            f"(scale {corpus['scale']}); {results.settings['runs']} runs each, medians; "
            "destination wiped before every run except the no-op ones."
        ),
        "",
        (
            "| section | tool | wall s | MB/s | CPU s | CPU s/GB | peak RSS MB | registry CPU s "
            "| other CPU s | vs skopeo | of ceiling | verified |"
        ),
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for row in results.rows:
        if not row.ok:
            lines.append(
                f"| {row.section} | {row.tool} | {row.problem or 'no runs'} | | | | | | | | | |"
            )
            continue
        vs_skopeo, of_ceiling = _versus(row, results.rows)
        registry = _fmt(row.registry_cpu_s, 1)
        if row.proxy_cpu_s is not None:
            registry += f" (+{row.proxy_cpu_s:.1f} proxy)"
        lines.append(
            f"| {row.section} | {row.tool} | {row.wall_s:.2f} | {row.mb_per_s:.0f} "
            f"| {row.cpu_s:.2f} | {row.cpu_per_gb:.2f} | {row.peak_rss / MB:.0f} | {registry} "
            f"| {row.other_cpu_s:.1f} | {vs_skopeo} | {of_ceiling} | {row.verified} |"
        )
    if results.scale:
        lines += ["", *_scale_table(results.scale)]
    requests = _requests_table([*results.rows, *results.scale])
    if requests:
        lines += ["", *requests]
    lines += [
        "",
        "| target | goal | measured | met |",
        "|---|---|---|---|",
    ]
    for target in results.targets:
        met = {True: "yes", False: "**no**", None: "-"}[target.met]
        lines.append(f"| {target.name} | {target.goal} | {target.measured} | {met} |")
    notes = [f"- {row.section} / {row.tool}: {row.note}" for row in results.rows if row.note]
    if notes:
        lines += ["", "Notes:", *notes]
    if results.profiles:
        lines += ["", "Profiles: " + ", ".join(results.profiles)]
    return "\n".join(lines) + "\n"


def _scale_table(scale: Sequence[Row]) -> list[str]:
    plan = {row.images: row for row in scale if row.section == "scale-plan" and row.ok}
    run = {row.images: row for row in scale if row.section == "scale" and row.ok}
    plan_cost, run_cost = marginal_costs(scale, "scale-plan"), marginal_costs(scale, "scale")
    cpu_cost = marginal_costs(scale, "scale", measure=lambda row: row.cpu_s)
    lines = [
        (
            "| images | plan (dry run) s | plan ms/image | relocate s | relocate ms/image "
            "| CPU s | CPU ms/image | peak RSS MB | registry CPU s | other CPU s | verified |"
        ),
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]

    def ms(costs: Mapping[int, float], n: int) -> str:
        return _fmt(costs[n] * 1000 if n in costs else None, 1)

    for n in sorted(set(plan) | set(run)):
        p, r = plan.get(n), run.get(n)
        lines.append(
            f"| {n} | {_fmt(p.wall_s if p else None)} | {ms(plan_cost, n)} "
            f"| {_fmt(r.wall_s if r else None)} | {ms(run_cost, n)} "
            f"| {_fmt(r.cpu_s if r else None)} | {ms(cpu_cost, n)} "
            f"| {_fmt(r.peak_rss / MB if r else None, 0)} "
            f"| {_fmt(r.registry_cpu_s if r else None, 1)} "
            f"| {_fmt(r.other_cpu_s if r else None, 1)} | {r.verified if r else ''} |"
        )
    problems = [row for row in scale if not row.ok]
    lines += [f"\n{row.section} x{row.images}: {row.problem}" for row in problems]
    return lines


# Methods with a column of their own in the requests table; the rest are summed as "other".
_METHODS = ("GET", "HEAD", "PUT", "POST", "PATCH")
# Registry names as the route column abbreviates them.
_SHORT = {"source": "src", "destination": "dst"}


def _requests_table(rows: Sequence[Row]) -> list[str]:
    """Requests per image to both registries (median run), by method and by route."""
    counted = [row for row in rows if row.ok and row.counted_requests and row.images > 0]
    if not counted:
        return []
    lines = [
        (
            "Requests per image to both registries (medians of the runs; from their access logs). "
            "By route: src/dst, method and what the request was for (manifest, blob, "
            "upload, tags, base = `/v2/`)."
        ),
        "",
        (
            "| section | tool | images | GET | HEAD | PUT | POST | PATCH | other | all "
            "| registry CPU ms/request | by route, per image |"
        ),
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for row in counted:
        n = row.images
        total = row.requests()
        by_method = [row.requests(method=m) / n for m in _METHODS]
        other = total / n - sum(by_method)
        cost = f"{1000 * row.registry_cpu_s / total:.1f}" if total else ""
        routes = ", ".join(
            f"{_SHORT.get(kind.split(' ', 1)[0], kind.split(' ', 1)[0])} "
            f"{kind.split(' ', 1)[1]} {count / n:.2f}"
            for kind, count in row.request_kinds().items()
            if count
        )
        cells = " | ".join(f"{v:.2f}" for v in [*by_method, max(0.0, other), total / n])
        lines.append(f"| {row.section} | {row.tool} | {n} | {cells} | {cost} | {routes} |")
    return lines


def _row_json(row: Row) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "section": row.section,
        "tool": row.tool,
        "images": row.images,
        "unique_bytes": row.unique_bytes,
        "verified": row.verified,
        "problem": row.problem,
        "note": row.note,
        "samples": [asdict(s) for s in row.samples],
    }
    if row.ok:
        doc["median"] = {
            "wall_s": row.wall_s,
            "cpu_s": row.cpu_s,
            "registry_cpu_s": row.registry_cpu_s,
            "proxy_cpu_s": row.proxy_cpu_s,
            "other_cpu_s": row.other_cpu_s,
            "peak_rss": row.peak_rss,
            "mb_per_s": row.mb_per_s,
            "cpu_s_per_gb": row.cpu_per_gb,
        }
        if row.counted_requests:
            doc["median"]["requests"] = row.request_kinds()
    return doc


def load(path: Path) -> Results:
    """Results saved by `write`, with their targets evaluated again."""
    doc = json.loads(path.read_text())

    def rows(key: str) -> tuple[Row, ...]:
        return tuple(
            Row(
                section=r["section"],
                tool=r["tool"],
                samples=tuple(Sample(**s) for s in r["samples"]),
                unique_bytes=r["unique_bytes"],
                images=r["images"],
                verified=r["verified"],
                problem=r["problem"],
                note=r["note"],
            )
            for r in doc[key]
        )

    main, scale = rows("rows"), rows("scale")
    return Results(
        machine=doc["machine"],
        settings=doc["settings"],
        corpus=doc["corpus"],
        rows=main,
        scale=scale,
        profiles=tuple(doc["profiles"]),
        targets=evaluate(main, scale),
    )


def write(results: Results, directory: Path, stem: str) -> tuple[Path, Path]:
    """Write `<stem>.json` and `<stem>.md` into `directory`; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    doc = {
        "machine": dict(results.machine),
        "settings": dict(results.settings),
        "corpus": dict(results.corpus),
        "rows": [_row_json(row) for row in results.rows],
        "scale": [_row_json(row) for row in results.scale],
        "targets": [asdict(t) for t in results.targets],
        "profiles": list(results.profiles),
    }
    json_path, md_path = directory / f"{stem}.json", directory / f"{stem}.md"
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    md_path.write_text(markdown(results))
    return json_path, md_path
