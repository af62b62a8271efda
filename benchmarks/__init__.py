"""
Benchmarks of relocator against skopeo and a no-checks ceiling, on local registries.

Run with `python -m benchmarks` (or `tox -e bench`); `--help` lists the options and
`benchmarks/README.md` explains the table. Nothing here is a test: it measures, prints
a markdown table and writes it with the raw samples to `benchmarks/results/`.

Every tool runs as a child process and is measured the same way (wall time, CPU and
peak RSS from `wait4`, registry CPU from `/proc`). The corpus, registries, verification
and pushing reuse the test suite's `tests.support`.
"""
