"""The gunicorn server hooks ``deploy/gunicorn.conf.py`` wires: the drain, metrics upkeep, probe
listener and warm-up. Nothing here imports Django at module level: the master imports this module and
must not load the application before it forks; Django is imported in the workers only (the warm-up of
:func:`prepare_worker`, the cleanup tasks at exit)."""

from __future__ import annotations

import gc
import os
import signal
import sys
from dataclasses import dataclass

from apps.ops import probe_listener
from apps.ops.metrics.multiprocess import prepare_directory, worker_exited
from apps.ops.shutdown import gunicorn_internals as gunicorn
from apps.ops.shutdown.cleanup import finish_process, log_requests_killed
from apps.ops.shutdown.middleware import CLOSE_CONNECTION_ENVIRON_KEY
from apps.ops.shutdown.state import begin_stopping, create_shared_state, seconds_stopping


def probe_address(bind: str, port: str, *, default_host: str) -> tuple[str, int] | None:
    """Where the probe listener listens: ``port`` on the main bind's host; None without a port."""
    if not port:
        return None
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise RuntimeError(f"PROBE_PORT must be a TCP port number, got {port!r}")
    # A Unix socket or fd:// main bind has no host to share: the default host, as for PORT.
    return gunicorn.bind_host(bind) or default_host, int(port)


@dataclass(frozen=True)
class ServerHooks:
    """The hooks, with the settings ``deploy/gunicorn.conf.py`` read (again on SIGHUP)."""

    runtime_dir: str
    metrics_dir: str
    drain_delay: float
    probe_address: tuple[str, int] | None

    def on_starting(self, server) -> None:
        """Master, before any worker exists: metrics directory, shared drain flag, then on_reload."""
        os.makedirs(self.runtime_dir, mode=0o700, exist_ok=True)
        if gunicorn.is_reexecuted(server):  # by USR2: the old master's workers still write there
            os.makedirs(self.metrics_dir, exist_ok=True)
        else:
            prepare_directory(self.metrics_dir)
        create_shared_state()
        self.on_reload(server)

    def on_reload(self, server) -> None:
        """Master, also after SIGHUP re-read the settings: drain on SIGTERM, listen for probes."""
        gunicorn.drain_on_sigterm(server, self.drain_delay)
        if self.probe_address is None:
            probe_listener.close_listener()
            return
        host, port = self.probe_address
        already = probe_listener.listener()
        try:  # SO_REUSEPORT: after USR2 the old master still listens on the port
            opened = probe_listener.open_listener(host, port)
        except OSError as exc:  # gunicorn prints a RuntimeError's message and exits 1
            raise RuntimeError(f"cannot listen for probes on {host}:{port} (PROBE_PORT): {exc}") from exc
        if opened is not already:
            server.log.info("Probe listener at: http://%s:%s (%s)", host, port, os.getpid())

    def child_exit(self, server, worker) -> None:
        """Master, after a worker died: fold its metrics files into the archives."""
        try:
            worker_exited(self.metrics_dir, worker.pid)
        except Exception:
            server.log.exception("metrics upkeep for worker %s failed", worker.pid)

    def on_exit(self, server) -> None:
        """Master, last: close its copy of the probe socket, left open for the workers until they exited."""
        probe_listener.close_listener()

    def post_worker_init(self, worker) -> None:
        """Worker, application loaded: learn about SIGTERM (no hook tells), warm up, answer probes."""
        gunicorn_handler = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum, frame) -> None:
            begin_stopping()
            if callable(gunicorn_handler):
                gunicorn_handler(signum, frame)

        def on_quit(signum, frame) -> None:
            # gunicorn's handler shuts the request thread pool down in the signal handler, a deadlock
            # if it interrupted the pool's submit() (CPython issue 121649); the exit ends the pool too.
            self.worker_int(worker)
            sys.exit(0)

        signal.signal(signal.SIGTERM, on_sigterm)
        signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn does: do not interrupt active requests
        signal.signal(signal.SIGQUIT, on_quit)
        signal.signal(signal.SIGINT, on_quit)
        if gunicorn.worker_told_to_stop(worker):  # a SIGTERM came while the application was loading
            begin_stopping()
        application = gunicorn.close_connection_through(worker, CLOSE_CONNECTION_ENVIRON_KEY)
        prepare_worker(worker)
        # After the warm-up, so that the first probe pays for no import; it serves until worker_exit.
        probe_listener.serve_in_background(application)
        worker.log.info("Worker ready (pid: %s)", worker.pid)

    def worker_int(self, worker) -> None:
        """Worker, SIGINT or SIGQUIT (immediate stop): log the requests cut short."""
        log_requests_killed("immediate stop")

    def worker_abort(self, worker) -> None:
        """Worker, SIGABRT (the graceful deadline, or a heartbeat timeout): log what gets killed."""
        log_requests_killed("worker timeout" if seconds_stopping() is None else "graceful timeout")

    def worker_exit(self, server, worker) -> None:
        """Worker, exiting: cleanup tasks and the summary line, then exit without the teardown."""
        if worker.pid != os.getpid():
            return  # gunicorn also calls this in the master for a worker that vanished
        # Before the cleanup closes the connections /ready uses: answer the probes this worker took,
        # take no more (they wait in the socket's queue for the other workers).
        probe_listener.stop_serving()
        finish_process()
        # gunicorn calls this hook while its SystemExit propagates. With the connections closed and
        # the logs flushed, the teardown of a Django process (about 0.3 s) only delays the drain.
        exiting, booted = sys.exc_info()[1], gunicorn.worker_booted(worker)
        if booted and isinstance(exiting, SystemExit) and isinstance(exiting.code, int | None):
            os._exit(exiting.code or 0)


def prepare_worker(worker) -> None:
    """Load what first requests would (URL patterns, views, the migration files /ready reads), then
    freeze it out of the garbage collector's walks (docs/ARCHITECTURE.md, "Worker start")."""
    from django.apps import apps

    if apps.ready:  # a Django application (the benchmark's bare WSGI ceiling is not one)
        from django.urls import get_resolver

        from apps.ops import health

        try:
            get_resolver().url_patterns  # noqa: B018  (imports the URLconf and the view modules)
            health.prepare()
        except Exception:  # only a head start: the first request that needs it loads it (and says why)
            worker.log.warning("preloading the application failed", exc_info=True)
    gc.collect()
    gc.freeze()
