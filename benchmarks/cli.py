"""
`python -m benchmarks`: run the sections, print the markdown table, save it with JSON.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from relocator import __version__
from tests.support import find_registry_binary

from . import report, tools
from .ceiling import DEFAULT_STREAMS
from .suite import SECTIONS, Bench, Settings, bench

# Scale 1: about 1 GiB of unique bytes; --small: about 100 MiB.
_FULL_SCALE = 1.0
_SMALL_SCALE = 0.1
# Image counts of the scale check.
_SCALE_COUNTS = (100, 300, 1000)
# Image counts of the scale check whose plan alone is timed: copying 10,000 images would
# take several minutes a run on a small machine.
_SCALE_PLAN_COUNTS = (10000,)
# Three runs per tool and section; the table shows medians.
_RUNS = 3
# Wait up to two minutes for other work on the machine to finish before each run.
_IDLE_WAIT = 120.0
RESULTS = Path(__file__).parent / "results"


def _sections(text: str) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown section {', '.join(unknown) or '(none)'}; choose from {', '.join(SECTIONS)}"
        )
    return chosen


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 100,300,1000: {text}") from None
    if any(n < 1 for n in counts):
        raise argparse.ArgumentTypeError("image counts must be at least 1")
    return counts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="relocator against skopeo and a no-checks ceiling on two local "
        "registries; prints a markdown table and saves it with JSON.",
    )
    parser.add_argument(
        "--small", action="store_true", help="a corpus of about 100 MiB instead of 1 GiB"
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=_RUNS,
        metavar="N",
        help=f"runs per tool and section; medians are reported (default {_RUNS})",
    )
    parser.add_argument(
        "--only",
        type=_sections,
        default=SECTIONS,
        metavar="LIST",
        help=f"comma-separated sections: {','.join(SECTIONS)} (default all)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run relocator once more per section under pyinstrument and save "
        "the profiles beside the results",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="relocator's --concurrency (default: relocator's own default)",
    )
    parser.add_argument(
        "--streams",
        type=int,
        default=DEFAULT_STREAMS,
        metavar="N",
        help=f"parallel streams of the ceiling (default {DEFAULT_STREAMS})",
    )
    parser.add_argument(
        "--scale-counts",
        type=_counts,
        default=_SCALE_COUNTS,
        metavar="LIST",
        help="image counts of the scale check (default 100,300,1000)",
    )
    parser.add_argument(
        "--scale-plan-counts",
        type=_counts,
        default=_SCALE_PLAN_COUNTS,
        metavar="LIST",
        help="image counts of the scale check whose plan (dry run) alone is timed (default 10000)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="a checkout of an earlier relocator revision: the scale section also copies "
        "its largest count of small images with it, interleaved with this one on the same "
        "registries (the small-images rows and their target)",
    )
    parser.add_argument(
        "--idle-wait",
        type=float,
        default=_IDLE_WAIT,
        metavar="SECONDS",
        help="before each run, wait up to this long for the machine to go "
        f"idle; 0: do not wait (default {_IDLE_WAIT:.0f})",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="keep registries, tarballs and logs here (default: a temporary "
        "directory, deleted at the end)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        help="keep generated layers here and reuse them (default: in the work directory)",
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="print the markdown of saved results (and rewrite their .md) instead of running",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        metavar="DIR",
        help="where to write <timestamp>.json and .md (default benchmarks/results)",
    )
    return parser


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m benchmarks`."""
    args = _parser().parse_args(argv)
    # SIGTERM ends the run like Ctrl-C: registries and helpers are stopped on the way out.
    signal.signal(signal.SIGTERM, _terminate)
    if args.runs < 1:
        _parser().error("--runs must be at least 1")
    if args.render is not None:
        saved = report.load(args.render)
        args.render.with_suffix(".md").write_text(report.markdown(saved))
        sys.stdout.write(report.markdown(saved))
        return 0
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + ("-small" if args.small else "")
    keep = args.workdir is not None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="relocator-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        scale=_SMALL_SCALE if args.small else _FULL_SCALE,
        runs=args.runs,
        sections=tuple(s for s in SECTIONS if s in args.only),
        profile=args.profile,
        concurrency=args.concurrency,
        streams=args.streams,
        scale_counts=args.scale_counts,
        scale_plan_counts=args.scale_plan_counts,
        baseline=args.baseline.resolve() if args.baseline else None,
        idle_wait=args.idle_wait,
        workdir=workdir,
        cache=args.cache or workdir / "layers",
        results=args.results,
        stamp=stamp,
    )
    revision = tools.relocator_revision()
    versions = {
        "registry": tools.version_of([find_registry_binary(), "--version"]),
        "skopeo": tools.version_of([tools.skopeo_binary(), "--version"]),
        "relocator": f"relocator {__version__}" + (f" ({revision})" if revision else ""),
        "load_before": report.load_average(),
    }
    tools.byte_compile()
    recorded = {
        "small": args.small,
        "runs": args.runs,
        "sections": list(settings.sections),
        "concurrency": args.concurrency,
        "ceiling_streams": args.streams,
        "scale_counts": list(args.scale_counts),
        "scale_plan_counts": list(args.scale_plan_counts),
        "idle_wait": args.idle_wait,
    }

    def results_of(b: Bench) -> report.Results:
        corpus = b.corpus
        return report.Results(
            machine=report.machine_info({**versions, "load_after": report.load_average()}),
            settings=recorded,
            corpus={
                "scale": settings.scale,
                "images": len(corpus.entries),
                "manifests": len(corpus.manifests()),
                "blobs": len(corpus.blobs()),
                "unique_bytes": corpus.unique_bytes,
            },
            rows=tuple(b.rows),
            scale=tuple(b.scale_rows),
            profiles=tuple(b.profiles),
            targets=report.evaluate(b.rows, b.scale_rows),
        )

    try:
        with bench(settings) as b:
            for section in settings.sections:
                getattr(b, f"section_{section}")()
                # Saved after every section, so an interrupted run keeps what it measured.
                results = results_of(b)
                json_path, md_path = report.write(results, settings.results, stamp)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.write(report.markdown(results))
    print(f"\nwritten: {json_path.name}, {md_path.name} in {settings.results}", file=sys.stderr)
    return 0
