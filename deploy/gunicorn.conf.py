"""gunicorn settings and hooks for DotMac Platform: settings from the environment, graceful drain.

Imports no Django at module level: the master must not load the application before forking.
Every setting below is documented in the README's configuration table.

On SIGTERM the master does not stop at once (gunicorn's own ``handle_term`` would close the
listeners immediately and reset the connections waiting in the accept queue). It drains:

1. announce: the shared drain flag is set, ``/ready`` answers 503 in every worker while all other
   traffic is served, for ``DRAIN_DELAY_SECONDS`` (load balancers stop routing meanwhile);
2. close the door: the listening sockets stop completing new TCP handshakes (a drop-everything
   socket filter), the workers accept what is already queued, then the listeners are closed and
   the workers get SIGTERM. A worker refuses requests that still reach it (503, ``Connection:
   close``) and finishes those in flight;
3. wait for the workers, at most ``GUNICORN_GRACEFUL_TIMEOUT`` seconds: the master exits as soon as
   the last one is gone. At the deadline a worker gets SIGABRT (it logs the requests it was still
   serving, with their paths) and SIGKILL shortly after;
4. every worker runs its cleanup tasks on exit and logs one summary line; the master logs one.

A second SIGTERM or SIGINT during the drain is logged and changes nothing; SIGQUIT stops at once.

Probes on a port of their own (``PROBE_PORT``; apps/ops/probe_listener.py): a gthread worker gives
a connection a request thread as soon as its first bytes arrive and then reads the headers blocking,
so clients sending their headers slowly hold every request thread (20 hold 2 workers x 4 threads) and
the kubelet's probes on the main port time out: the kubelet would restart a pod that is only busy.
With ``PROBE_PORT`` set the master opens one more listening socket before forking (not one of
gunicorn's listeners: the drain does not close it, the master closes its copy on exit), and each
worker answers ``/live``, ``/ready`` and ``/health`` there from threads of its own, apart from the
request threads, until it exits: ``/ready`` 503 and ``/live`` 200 throughout the drain.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime

from gunicorn.glogging import Logger as _GunicornLogger
from gunicorn.util import parse_address


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


_production = _env("DJANGO_ENV", "development") == "production"
_port = int(_env("PORT", "8000"))

# --- Server settings ------------------------------------------------------------------------
# 0.0.0.0 in a container (the kubelet and the Service reach the pod IP); loopback on a workstation.
_host = "0.0.0.0" if _production else "127.0.0.1"
bind = [_env("GUNICORN_BIND", f"{_host}:{_port}")]
wsgi_app = "dotmac.wsgi:application"
worker_class = "gthread"
workers = int(_env("WEB_CONCURRENCY", "2"))
threads = int(_env("GUNICORN_THREADS", "4"))
timeout = int(_env("GUNICORN_TIMEOUT", "60"))
# Time the workers get to finish requests in flight once they are told to stop.
graceful_timeout = int(_env("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# Below the idle timeouts of common load balancers (60 s and up), so the proxy closes first.
keepalive = int(_env("GUNICORN_KEEPALIVE", "5"))
max_requests = int(_env("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = int(_env("GUNICORN_MAX_REQUESTS_JITTER", "200"))
forwarded_allow_ips = _env("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn >= 25 opens a control socket under $HOME by default; nothing here uses it.
control_socket_disable = True

# How long /ready answers 503 while everything else is still served, before the listeners close.
DRAIN_DELAY_SECONDS = float(_env("DRAIN_DELAY_SECONDS", "5" if _production else "0"))


def _probe_address() -> tuple[str, int] | None:
    """Where the probe listener listens: ``PROBE_PORT`` on the main bind's host; None when unset."""
    value = _env("PROBE_PORT", "")
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) < 65536:
        raise RuntimeError(f"PROBE_PORT must be a TCP port number, got {value!r}")
    main = parse_address(bind[0])
    # A Unix socket or fd:// main bind has no host to share: the default host, as for PORT.
    return (main[0] if isinstance(main, tuple) else _host), int(value)


# /live, /ready and /health on a port of their own, apart from the request threads (see above).
PROBE_ADDRESS = _probe_address()

# --- Writable paths: only a temporary directory is writable in the container -----------------
# One directory per port, so two servers on one host never share (or wipe) each other's files.
RUNTIME_DIR = os.environ.setdefault(
    "GUNICORN_RUNTIME_DIR", os.path.join(tempfile.gettempdir(), f"dotmac-gunicorn-{_port}")
)
# Set before the workers fork: prometheus_client reads it when it is first imported.
PROMETHEUS_MULTIPROC_DIR = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(RUNTIME_DIR, "prometheus")
)
# Worker heartbeat files: a tmpfs when there is one (the root filesystem may be read-only).
worker_tmp_dir = _env(
    "GUNICORN_WORKER_TMP_DIR",
    "/dev/shm" if os.access("/dev/shm", os.W_OK | os.X_OK) else RUNTIME_DIR,
)


# --- Logging: JSON access log on stdout, gunicorn's own messages on stderr --------------------
class JsonAccessLogger(_GunicornLogger):
    """gunicorn's logger with one JSON object per access-log line (the query string is left out)."""

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        status = str(resp.status or "").split(None, 1)[0]
        request_id = next((v for k, v in resp.headers if k.lower() == "x-request-id"), None)
        method = environ.get("REQUEST_METHOD", "-")
        path = environ.get("PATH_INFO", "-")
        entry = {
            "time": datetime.now(tz=UTC).isoformat(timespec="milliseconds"),
            "level": "INFO",
            "logger": "gunicorn.access",
            "message": f"{method} {path} {status}",
            "method": method,
            "path": path,
            "status": int(status) if status.isdigit() else status,
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "remote_addr": environ.get("REMOTE_ADDR", "-"),
            "user_agent": environ.get("HTTP_USER_AGENT", ""),
            "request_id": request_id,
            "pid": os.getpid(),
        }
        try:
            self.access_log.info(json.dumps(entry, default=str, ensure_ascii=False))
        except Exception:
            self.exception("access log entry failed")


logger_class = JsonAccessLogger
accesslog = "-"
errorlog = "-"
loglevel = _env("LOG_LEVEL", "info").lower()


# --- Master: the drain ----------------------------------------------------------------------
# Seconds a worker killed at the graceful deadline gets, after SIGABRT, to log before SIGKILL.
_ABORT_GRACE_SECONDS = 1.0
# At most this long for the workers to accept the connections already queued on a listener.
_ACCEPT_QUEUE_WAIT_SECONDS = 1.0
_SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)


def _refuse_new_handshakes(sock: socket.socket) -> None:
    """Attach a classic BPF program that drops every packet arriving on a listening socket.

    New SYNs are dropped (clients retry, then get "connection refused" once the listener is
    closed) while connections already in the accept queue are untouched: they were cloned before
    the filter existed. Without this, closing the listener resets whatever was still queued.
    """
    import ctypes

    class SockFilter(ctypes.Structure):
        _fields_ = [
            ("code", ctypes.c_uint16),
            ("jt", ctypes.c_uint8),
            ("jf", ctypes.c_uint8),
            ("k", ctypes.c_uint32),
        ]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    drop_all = (SockFilter * 1)(SockFilter(0x06, 0, 0, 0))  # BPF_RET | BPF_K, accept 0 bytes
    program = SockFprog(1, drop_all)
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, bytes(program))


class _Drain:
    """The master's SIGTERM handling (replaces ``Arbiter.handle_term`` on the instance)."""

    def __init__(self, arbiter) -> None:
        self.arbiter = arbiter
        self.log = arbiter.log
        self.started = 0.0

    def _signals(self, timeout: float) -> None:
        """Wait up to ``timeout`` for signals and handle them the drain's way."""
        for sig in self.arbiter.wait_for_signals(timeout=timeout):
            if sig == signal.SIGCHLD:
                self.arbiter.handle_chld()
            elif sig == signal.SIGQUIT:
                self.log.info("SIGQUIT during the drain: stopping immediately")
                self.arbiter.handle_quit()  # gunicorn's quick stop; raises StopIteration
            elif sig == signal.SIGUSR1:
                self.arbiter.handle_usr1()  # reopen log files, as always
            else:
                name = self.arbiter.SIG_NAMES.get(sig, str(sig)).upper()
                self.log.info("SIG%s ignored: already draining (SIGQUIT stops immediately)", name)

    def __call__(self) -> None:
        from apps.ops import shutdown

        arbiter = self.arbiter
        self.started = time.monotonic()
        shutdown.announce()
        self.log.info(
            "SIGTERM: draining; /ready answers 503 for %.1f s while requests are still served",
            DRAIN_DELAY_SECONDS,
        )
        announce_until = self.started + DRAIN_DELAY_SECONDS
        while (remaining := announce_until - time.monotonic()) > 0:
            self._signals(min(remaining, 0.5))
            # Business as usual meanwhile: replace crashed or recycled workers, watch heartbeats.
            arbiter.murder_workers()
            arbiter.manage_workers()
        announced = time.monotonic() - self.started

        self._close_the_door()
        workers_at_stop = len(arbiter.WORKERS)
        self.log.info(
            "listeners closed; %d workers finish their requests in flight (at most %d s)",
            workers_at_stop,
            arbiter.cfg.graceful_timeout,
        )
        if arbiter.dirty_arbiter_pid:
            arbiter.kill_dirty_arbiter(signal.SIGTERM)
        arbiter.kill_workers(signal.SIGTERM)
        deadline = time.monotonic() + arbiter.cfg.graceful_timeout
        while arbiter.WORKERS and (remaining := deadline - time.monotonic()) > 0:
            self._signals(min(remaining, 0.1))
            arbiter.reap_workers()

        killed = sorted(arbiter.WORKERS)
        if killed:
            self.log.error(
                "graceful timeout (%d s): killing workers %s; they log the requests they were serving",
                arbiter.cfg.graceful_timeout,
                ", ".join(map(str, killed)),
            )
            arbiter.kill_workers(signal.SIGABRT)
            abort_deadline = time.monotonic() + _ABORT_GRACE_SECONDS
            while arbiter.WORKERS and (remaining := abort_deadline - time.monotonic()) > 0:
                self._signals(min(remaining, 0.1))
                arbiter.reap_workers()
            arbiter.kill_workers(signal.SIGKILL)
            arbiter.reap_workers()
        self.log.info(
            "drain finished in %.2f s: announced %.2f s, %d workers stopped, %d gracefully, "
            "%d killed at the graceful deadline%s",
            time.monotonic() - self.started,
            announced,
            workers_at_stop,
            workers_at_stop - len(killed),
            len(killed),
            f" (pids {', '.join(map(str, killed))})" if killed else "",
        )
        raise StopIteration  # gunicorn's normal exit path: halt(), on_exit, exit status 0

    def _close_the_door(self) -> None:
        """Stop new handshakes, let the workers take what is queued, then close the listeners."""
        from gunicorn import sock as gunicorn_sock

        arbiter = self.arbiter
        # Only sockets this master alone owns: not while a re-executed master (USR2) shares them,
        # nor systemd's or SO_REUSEPORT ones. A filter on a shared socket would starve its other owner.
        owned = (
            arbiter.reexec_pid == arbiter.master_pid == 0
            and not arbiter.systemd
            and not arbiter.cfg.reuse_port
        )
        filtered = []
        for listener in arbiter.LISTENERS if owned else []:
            if listener.sock.family not in (socket.AF_INET, socket.AF_INET6):
                continue  # Unix sockets: nothing in front of them to route elsewhere
            try:
                _refuse_new_handshakes(listener.sock)
                filtered.append(listener)
            except OSError as exc:
                self.log.warning("cannot stop new connections on %s before closing it: %s", listener, exc)
        wait_until = time.monotonic() + _ACCEPT_QUEUE_WAIT_SECONDS
        while any(lnr.get_backlog() > 0 for lnr in filtered) and time.monotonic() < wait_until:
            time.sleep(0.005)  # the workers are accepting; the kernel counter is all there is to watch
        gunicorn_sock.close_sockets(arbiter.LISTENERS, unlink=owned)  # as gunicorn's own stop does
        arbiter.LISTENERS = []


# --- Hooks ----------------------------------------------------------------------------------


def _open_probe_listener(server) -> None:
    """Master: listen on ``PROBE_ADDRESS`` (the workers inherit the socket), or close what was open."""
    from apps.ops import probe_listener

    if PROBE_ADDRESS is None:
        probe_listener.close_listener()
        return
    host, port = PROBE_ADDRESS
    already = probe_listener.listener()
    try:
        # SO_REUSEPORT: after USR2 (server.master_pid set) the old master still listens on the port.
        opened = probe_listener.open_listener(host, port)
    except OSError as exc:  # gunicorn prints a RuntimeError's message and exits 1
        raise RuntimeError(f"cannot listen for probes on {host}:{port} (PROBE_PORT): {exc}") from exc
    if opened is not already:
        server.log.info("Probe listener at: http://%s:%s (%s)", host, port, server.pid)


def on_starting(server) -> None:
    """Master, before the workers exist: metrics directory, shared drain flag, drain on SIGTERM,
    probe listener."""
    from apps.ops import shutdown
    from apps.ops.metrics.multiprocess import prepare_directory

    os.makedirs(RUNTIME_DIR, mode=0o700, exist_ok=True)
    if server.master_pid:  # re-executed by USR2: the old master's workers still write there
        os.makedirs(PROMETHEUS_MULTIPROC_DIR, exist_ok=True)
    else:
        prepare_directory(PROMETHEUS_MULTIPROC_DIR)
    shutdown.create_shared_state()
    server.handle_term = _Drain(server)
    _open_probe_listener(server)


def on_reload(server) -> None:
    """Master, after SIGHUP re-read this file: drain and listen for probes with the settings just read."""
    server.handle_term = _Drain(server)
    _open_probe_listener(server)


def on_exit(server) -> None:
    """Master, last thing before it exits: close its copy of the probe socket.

    The workers are gone by then; the drain closed gunicorn's listeners but left this one open so
    every worker could answer probes until it exited.
    """
    from apps.ops import probe_listener

    probe_listener.close_listener()


def _with_connection_closer(app):
    """Give the application a way to make gunicorn close the connection after its response."""
    from apps.ops.shutdown import CLOSE_CONNECTION_ENVIRON_KEY

    def application(environ, start_response):
        response = getattr(start_response, "__self__", None)  # gunicorn's Response
        if response is not None and hasattr(response, "force_close"):
            environ[CLOSE_CONNECTION_ENVIRON_KEY] = response.force_close
        return app(environ, start_response)

    return application


def post_worker_init(worker) -> None:
    """Worker, application loaded: learn about SIGTERM (gunicorn has no hook for it)."""
    from apps.ops import shutdown

    gunicorn_handler = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame) -> None:
        shutdown.begin_stopping()
        if callable(gunicorn_handler):
            gunicorn_handler(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn does: do not interrupt active requests
    if not worker.alive:  # SIGTERM arrived while the application was loading
        shutdown.begin_stopping()
    worker.wsgi = _with_connection_closer(worker.wsgi)
    _prepare_worker(worker)
    # After the preloading: the first probe must not pay for imports. It serves until worker_exit
    # stops it, so this worker answers probes through the whole drain.
    from apps.ops import probe_listener

    probe_listener.serve_in_background(worker.wsgi)
    worker.log.info("Worker ready (pid: %s)", worker.pid)


def _prepare_worker(worker) -> None:
    """Load now what first requests would load, then keep it out of the garbage collector's walks.

    Loading the URL patterns, the view modules and the migration files (the readiness check's
    first run) costs a new worker's first requests 100 ms or more, after every recycle too. And a
    full collection walks every tracked object: with the application loaded that is about 70,000
    objects and 70 ms on a small machine, a pause for whichever request triggers it (both seen as
    the 100+ ms tail of ``/ready`` in ``make bench``). What is loaded here lives as long as the
    worker, so it is frozen (``gc.freeze``): later collections walk only what requests create.
    """
    import gc

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


def worker_int(worker) -> None:
    """Worker got SIGINT or SIGQUIT (immediate stop): log the requests it cuts short."""
    from apps.ops import shutdown

    shutdown.log_requests_killed("immediate stop")


def worker_abort(worker) -> None:
    """Worker got SIGABRT (graceful deadline, or a heartbeat timeout): log what gets killed."""
    from apps.ops import shutdown

    shutdown.log_requests_killed("graceful timeout" if shutdown.is_stopping() else "worker timeout")


def worker_exit(server, worker) -> None:
    """Worker exiting: cleanup tasks and the worker's summary line, then exit without teardown."""
    if worker.pid != os.getpid():
        return  # gunicorn also calls this in the master for a worker that vanished
    from apps.ops import probe_listener, shutdown

    # Before the cleanup closes the connections /ready uses: answer the probes this worker took,
    # take no more (they wait in the socket's queue for the other workers).
    probe_listener.stop_serving()
    shutdown.finish_process()
    # gunicorn calls this hook while its SystemExit propagates. Once the cleanup tasks closed the
    # connections and flushed the logs, the interpreter's teardown of a Django process (about
    # 0.3 s of freeing objects) only delays the drain, so a worker that booted leaves right away.
    exiting = sys.exc_info()[1]
    if worker.booted and isinstance(exiting, SystemExit) and isinstance(exiting.code, int | None):
        os._exit(exiting.code or 0)


def child_exit(server, worker) -> None:
    """Master, after a worker died: fold its metrics files into the archives."""
    from apps.ops.metrics.multiprocess import worker_exited

    try:
        worker_exited(PROMETHEUS_MULTIPROC_DIR, worker.pid)
    except Exception:
        server.log.exception("metrics upkeep for worker %s failed", worker.pid)
