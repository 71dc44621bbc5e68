"""Folding dead workers' metrics files: exact totals, bounded files, scrapes never see a half fold.

Real processes write the files: a child interpreter forks one process per "worker", each records
through prometheus_client in multiprocess mode and exits, as gunicorn workers do.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from apps.ops.metrics.collectors import MultiProcessMerge
from apps.ops.metrics.multiprocess import ARCHIVE_ID, prepare_directory, worker_exited
from tests.servers import wait_until

WORKERS_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
    from prometheus_client import Counter, Gauge, Histogram

    jobs = Counter("jobs", "Jobs done.", ["kind"])
    latency = Histogram("latency_seconds", "Latency.", ["kind"], buckets=(0.1, 1.0))
    peak = Gauge("peak", "Highest.", ["kind"], multiprocess_mode="max")
    low = Gauge("low", "Lowest.", ["kind"], multiprocess_mode="min")
    total = Gauge("held", "Held.", ["kind"], multiprocess_mode="sum")
    last = Gauge("last", "Last set.", ["kind"], multiprocess_mode="mostrecent")
    live = Gauge("busy", "In use.", ["kind"], multiprocess_mode="livesum")
    every = Gauge("per_pid", "Per pid.", ["kind"], multiprocess_mode="all")

    pids = []
    for i in range(int(sys.argv[2])):
        pid = os.fork()
        if pid == 0:
            jobs.labels("a").inc(i + 1)
            jobs.labels("b").inc()
            latency.labels("a").observe(0.05 if i % 2 else 0.5)
            peak.labels("a").set(i)
            low.labels("a").set(100 - i)
            total.labels("a").set(2)
            last.labels("a").set(1000 + i)
            live.labels("a").set(1)
            every.labels("a").set(i)
            if len(sys.argv) > 3:  # a label value no earlier process used: new keys in the archives
                jobs.labels(sys.argv[3]).inc()
            os._exit(0)
        os.waitpid(pid, 0)
        pids.append(pid)
    print(json.dumps(pids))
    """
)


def run_dead_workers(directory: str, count: int, new_kind: str = "") -> list[int]:
    """Run ``count`` short-lived processes that record metrics into ``directory``; return their pids."""
    result = subprocess.run(
        [sys.executable, "-c", WORKERS_SCRIPT, directory, str(count), *([new_kind] if new_kind else [])],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def by_series(families) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }


def samples(directory: str) -> dict[tuple[str, tuple], float]:
    """What a scrape reads from ``directory``."""
    return by_series(MultiProcessMerge(directory).collect())


def file_count(directory: str) -> int:
    """Number of metrics files in ``directory`` (what a scrape reads)."""
    return len(glob.glob(os.path.join(directory, "*.db")))


def test_prepare_directory_creates_and_empties(tmp_path):
    target = tmp_path / "metrics"
    prepare_directory(str(target))
    (target / "counter_123.db").write_bytes(b"stale")
    (target / "admitted-tenants.txt").write_text("acme\n")
    prepare_directory(str(target))
    assert sorted(os.listdir(target)) == [".fold.lock"]


def test_folding_keeps_every_increment_and_leaves_only_archives(tmp_path):
    directory = str(tmp_path)
    prepare_directory(directory)
    pids = run_dead_workers(directory, 12)
    before = samples(directory)
    assert file_count(directory) >= 12 * 4

    for pid in pids:
        worker_exited(directory, pid)

    after = samples(directory)
    assert (
        after[("jobs_total", (("kind", "a"),))]
        == sum(range(1, 13))
        == before[("jobs_total", (("kind", "a"),))]
    )
    assert after[("jobs_total", (("kind", "b"),))] == 12
    assert after[("latency_seconds_count", (("kind", "a"),))] == 12
    assert after[("latency_seconds_bucket", (("kind", "a"), ("le", "0.1")))] == 6
    assert after[("latency_seconds_bucket", (("kind", "a"), ("le", "1.0")))] == 12
    # Sums of float observations: equal up to the order of additions.
    assert after[("latency_seconds_sum", (("kind", "a"),))] == pytest.approx(6 * 0.5 + 6 * 0.05, rel=1e-12)
    assert after[("peak", (("kind", "a"),))] == 11
    assert after[("low", (("kind", "a"),))] == 89
    assert after[("held", (("kind", "a"),))] == 24
    assert after[("last", (("kind", "a"),))] == 1011
    # Live and per-pid gauges of dead processes are gone.
    assert not [key for key in after if key[0] in ("busy", "per_pid")]
    remaining = sorted(name for name in os.listdir(directory) if name.endswith(".db"))
    assert all(ARCHIVE_ID in name for name in remaining), remaining
    assert len(remaining) == 6  # counter, histogram, gauge max/min/sum/mostrecent archives


def test_file_count_stays_bounded_over_many_generations(tmp_path):
    directory = str(tmp_path)
    prepare_directory(directory)
    expected = 0
    for _ in range(5):
        for pid in run_dead_workers(directory, 20):
            worker_exited(directory, pid)
        expected += sum(range(1, 21))
        assert file_count(directory) == 6
    assert samples(directory)[("jobs_total", (("kind", "a"),))] == expected


def test_scrapes_during_folds_never_miss_or_double_count(tmp_path):
    directory = str(tmp_path)
    prepare_directory(directory)
    pids = run_dead_workers(directory, 40)
    expected = sum(range(1, 41))
    seen: list[float] = []
    stop = threading.Event()

    def scrape_continuously():
        while not stop.is_set():
            seen.append(samples(directory)[("jobs_total", (("kind", "a"),))])

    scraper = threading.Thread(target=scrape_continuously)
    scraper.start()
    try:
        for pid in pids:
            worker_exited(directory, pid)
            # At least one more scrape before the next fold, however loaded the machine is: the
            # scraper runs throughout, so scrapes overlap the folds, and every fold is scraped.
            scraped = len(seen)
            wait_until(lambda scraped=scraped: len(seen) > scraped, timeout=30, message="a scrape")
    finally:
        stop.set()
        scraper.join(timeout=30)
    seen.append(samples(directory)[("jobs_total", (("kind", "a"),))])
    assert len(seen) > len(pids)
    assert set(seen) == {expected}


def test_worker_exited_ignores_a_missing_directory_and_unknown_pids(tmp_path):
    worker_exited(str(tmp_path / "absent"), 4242)
    prepare_directory(str(tmp_path))
    worker_exited(str(tmp_path), 4242)
    assert file_count(str(tmp_path)) == 0


def test_module_imports_without_django_or_prometheus_client():
    code = (
        "import sys; import apps.ops.metrics.multiprocess; "
        "assert 'django' not in sys.modules and 'prometheus_client' not in sys.modules, sorted(sys.modules)"
    )
    project = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30, cwd=project)


def test_a_scrape_while_a_worker_creates_its_file_does_not_fail(tmp_path):
    """prometheus_client creates a worker's file empty, then sizes it; a scrape may see it empty."""
    directory = str(tmp_path)
    prepare_directory(directory)
    run_dead_workers(directory, 2)
    (tmp_path / "counter_999999.db").write_bytes(b"")
    assert samples(directory)[("jobs_total", (("kind", "a"),))] == 3


def test_a_server_restart_starts_the_archives_from_zero(tmp_path):
    directory = str(tmp_path)
    prepare_directory(directory)
    for pid in run_dead_workers(directory, 3):
        worker_exited(directory, pid)
    assert samples(directory)[("jobs_total", (("kind", "b"),))] == 3

    prepare_directory(directory)  # the next server start, same master process
    for pid in run_dead_workers(directory, 2):
        worker_exited(directory, pid)
    assert samples(directory)[("jobs_total", (("kind", "b"),))] == 2


def test_a_merge_kept_across_scrapes_reads_what_prometheus_client_reads(tmp_path):
    """Scrape after scrape, with keys decoded once per process: new files, keys appended to a file,
    values changed in place, files folded away and a wiped directory are all seen."""
    directory = str(tmp_path)
    prepare_directory(directory)
    merge = MultiProcessMerge(directory)
    reference = MultiProcessCollector(None, path=directory)

    def assert_same() -> None:
        ours, theirs = by_series(merge.collect()), by_series(reference.collect())
        assert ours.keys() == theirs.keys()
        for series, value in theirs.items():
            assert ours[series] == pytest.approx(value, rel=1e-12), series

    assert merge.collect() == []
    first = run_dead_workers(directory, 3)
    assert_same()
    for pid in first[:2]:
        worker_exited(directory, pid)  # archives created, files removed
    assert_same()
    second = run_dead_workers(directory, 3, new_kind="c")
    for pid in second:
        worker_exited(directory, pid)  # values changed in place, and a key appended to an archive
    assert_same()
    assert by_series(merge.collect())[("jobs_total", (("kind", "c"),))] == 3

    prepare_directory(directory)  # a server restart: files under the same names, new contents
    for pid in run_dead_workers(directory, 2, new_kind="d"):
        worker_exited(directory, pid)
    assert_same()
