"""``python -m bench.run [--smoke]``: start everything, measure every figure, print the table.

Exit status 0 when every figure was measured (targets missed are reported in the table, not as a
failure of the run), 1 when some figure could not be measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path

from .context import FULL, SMOKE, Bench
from .figures import Figure, all_figures
from .load import wrk_binary
from .report import BenchError, FeatureMissing, Row, markdown_table, rows_to_json
from .servers import ServerError

_VERSIONS_OF = ("Django", "gunicorn", "psycopg", "prometheus-client", "django-prometheus", "pybreaker")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in _VERSIONS_OF)
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{memory_kb / 1024 / 1024:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "libraries": versions,
        "load average at start": " ".join(f"{value:.2f}" for value in os.getloadavg()),
    }


def run_figure(bench: Bench, figure: Figure) -> list[Row]:
    """Run one figure; a failure becomes not-measured rows with the reason, never an abort."""
    started = time.monotonic()
    log(f"measuring {', '.join(figure.ids)}")
    try:
        rows = figure.run(bench)
    except FeatureMissing as missing:
        rows, reason = [], f"feature missing: {missing}"
    except (BenchError, ServerError) as error:
        rows, reason = [], str(error)
    except Exception as error:  # a bug in a figure must not hide the others
        traceback.print_exc()
        rows, reason = [], f"{type(error).__name__}: {error}"
    else:
        reason = "not produced by its figure function"
    by_id = {row.figure: row for row in rows}
    result = [by_id.get(figure_id) or Row(figure_id, figure_id, error=reason) for figure_id in figure.ids]
    log(f"  … {time.monotonic() - started:.1f} s")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the operations layer (see docs/BENCHMARKS.md).")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves every figure runs (< 60 s)")
    parser.add_argument("--only", help="comma-separated figure ids to run (default: all)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    parser.add_argument("--keep-logs", action="store_true", help="keep the run directory (server logs)")
    args = parser.parse_args(argv)

    figures = all_figures()
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {figure_id for figure in figures for figure_id in figure.ids}
        if unknown:
            parser.error(f"unknown figure ids: {', '.join(sorted(unknown))}")
        figures = [figure for figure in figures if wanted & set(figure.ids)]

    try:
        wrk_binary()
    except BenchError as missing:
        parser.exit(2, f"{missing}\n")
    started = time.monotonic()
    host = machine()
    rows: list[Row] = []
    with Bench(SMOKE if args.smoke else FULL, log=log) as bench:
        bench.keep_run_dir = args.keep_logs
        bench.start_shared_servers()
        for figure in figures:
            rows.extend(run_figure(bench, figure))
        if not all(row.produced for row in rows):
            bench.keep_run_dir = True
    elapsed = time.monotonic() - started

    mode = "smoke (tiny sizes; the values mean nothing)" if args.smoke else "full"
    print(f"\nDotMac Platform benchmark, {mode}, {elapsed:.0f} s\n")
    for key, value in host.items():
        print(f"- {key}: {value}")
    print()
    print(markdown_table(rows))
    if args.json:
        args.json.write_text(rows_to_json(rows, mode=mode, seconds=elapsed, machine=host))
    missing = [row.figure for row in rows if not row.produced]
    if missing:
        log(f"not measured: {', '.join(missing)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
