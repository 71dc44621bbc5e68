"""The gunicorn master's SIGTERM: announce, close the door, wait for the workers, kill the late ones
(docs/ARCHITECTURE.md, "Graceful shutdown"). It replaces gunicorn's own, which closes the listeners at
once and so resets the connections queued on them."""

from __future__ import annotations

import array
import signal
import socket
import struct
import time

from .gunicorn_internals import Master
from .state import announce

ABORT_GRACE_SECONDS = 1.0  # for a worker killed at the deadline to log, between SIGABRT and SIGKILL
ACCEPT_QUEUE_WAIT_SECONDS = 1.0  # at most, for the workers to accept the connections already queued
SO_ATTACH_FILTER = 26  # Linux's; Python's socket module does not name it


class MasterDrain:
    """Called by the master's main loop on SIGTERM; ends with gunicorn's normal exit."""

    def __init__(self, arbiter, delay: float) -> None:
        self.master = Master(arbiter)
        self.log = self.master.log
        self.delay = delay

    def __call__(self) -> None:
        started = time.monotonic()
        announce()
        self.log.info(
            "SIGTERM: draining; /ready answers 503 for %.1f s while requests are still served", self.delay
        )
        while (remaining := started + self.delay - time.monotonic()) > 0:
            self._handle_signals(min(remaining, 0.5))
            self.master.keep_workers()  # business as usual meanwhile
        announced = time.monotonic() - started

        self._close_the_door()
        stopped, timeout = self.master.worker_pids(), self.master.graceful_timeout()
        self.log.info(
            "listeners closed; %d workers finish their requests in flight (at most %d s)",
            len(stopped),
            timeout,
        )
        self.master.signal_workers(signal.SIGTERM)
        self._wait_for_workers(timeout)
        killed = self.master.worker_pids()
        pids = ", ".join(map(str, killed))
        if killed:
            message = "graceful timeout (%d s): killing workers %s; they log the requests they were serving"
            self.log.error(message, timeout, pids)
            self.master.signal_workers(signal.SIGABRT)
            self._wait_for_workers(ABORT_GRACE_SECONDS)
            self.master.signal_workers(signal.SIGKILL)
            self.master.reap_workers()
        self.log.info(
            "drain finished in %.2f s: announced %.2f s, %d workers stopped, %d gracefully, "
            "%d killed at the graceful deadline%s",
            time.monotonic() - started,
            announced,
            len(stopped),
            len(stopped) - len(killed),
            len(killed),
            f" (pids {pids})" if killed else "",
        )
        raise StopIteration  # gunicorn's normal exit path: halt(), on_exit, exit status 0

    def _wait_for_workers(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self.master.worker_pids() and (remaining := deadline - time.monotonic()) > 0:
            self._handle_signals(min(remaining, 0.1))
            self.master.reap_workers()

    def _handle_signals(self, timeout: float) -> None:
        for sig in self.master.wait_for_signals(timeout):
            if sig == signal.SIGQUIT:
                self.log.info("SIGQUIT during the drain: stopping immediately")
                self.master.stop_now()
            elif sig == signal.SIGUSR1:
                self.master.reopen_log_files()
            elif sig != signal.SIGCHLD:  # a worker exited: the loops reap
                self.log.info(
                    "%s ignored: already draining (SIGQUIT stops immediately)", signal.Signals(sig).name
                )

    def _close_the_door(self) -> None:
        # Only on sockets this master alone owns: a filter on a shared one would starve its other owner.
        filtered = []
        for sock in self.master.listening_sockets() if self.master.owns_listeners() else []:
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                continue  # Unix sockets: nothing in front of them routes elsewhere
            try:
                refuse_new_handshakes(sock)
                filtered.append(sock)
            except OSError as exc:
                self.log.warning("cannot stop new connections on %s before closing it: %s", sock, exc)
        deadline = time.monotonic() + ACCEPT_QUEUE_WAIT_SECONDS
        while any(map(queued_connections, filtered)) and time.monotonic() < deadline:
            time.sleep(0.005)  # the workers are accepting; the kernel's counter is all there is to watch
        self.master.close_listeners()


def refuse_new_handshakes(sock: socket.socket) -> None:
    """Drop every packet reaching a listening socket (a classic BPF program): new SYNs go unanswered,
    while the connections already queued, cloned before the filter existed, are untouched."""
    drop_all = array.array("B", struct.pack("HBBI", 0x06, 0, 0, 0))  # BPF_RET | BPF_K: accept 0 bytes
    program = struct.pack("HP", 1, drop_all.buffer_info()[0])  # struct sock_fprog {len, filter address}
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, program)


def queued_connections(sock: socket.socket) -> int:
    """Connections waiting in a listening TCP socket's accept queue (Linux: ``tcp_info.tcpi_unacked``)."""
    return struct.unpack_from("8B5I", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104))[12]
