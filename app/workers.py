"""Several worker processes that share the connections evenly.

uvicorn's `--workers` gives all workers one shared listening socket, and whichever worker is
awake when connections arrive accepts every one that is queued: a client or proxy that opens its
keep-alive connections in a burst puts them all on one worker while the others idle (measured
with 16 connections and 2 workers: all 16 on one worker, and 1.1x the throughput of one
worker). Here each worker listens on a socket of its own, all bound to the same address with
SO_REUSEPORT, and the kernel spreads new connections across them by hash. The supervision is
uvicorn's (health pings, a dead worker replaced, SIGHUP restarts, SIGINT/SIGTERM shutdown), each
worker keeping its socket across replacements, so connections that arrive while a worker is
being replaced wait in its socket's backlog instead of being refused.
"""

from __future__ import annotations

import socket
import sys

from uvicorn import Config
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process, logger


def reuse_port_supported() -> bool:
    # Elsewhere SO_REUSEPORT either does not exist or does not balance (the last socket bound
    # gets every connection), so uvicorn's shared socket is the better choice there.
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def reuse_port_sockets(host: str, port: int, count: int, *, backlog: int) -> list[socket.socket]:
    """`count` listening sockets on one address (port 0: one free port chosen for all).

    They listen from the start, so a connection the kernel hands to a worker that is still
    starting (or being replaced) waits in that socket's backlog rather than being refused.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # SO_REUSEPORT would also let a second service started on the same port join this one's
    # group and silently take half its connections; binding once without it first fails
    # with "address in use" as a plain server would, in both directions.
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            logger.error(exc)
            sys.exit(STARTUP_FAILURE)
        port = probe.getsockname()[1]
    sockets: list[socket.socket] = []
    for _ in range(count):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            for other in sockets:
                other.close()
            logger.error(exc)
            sys.exit(STARTUP_FAILURE)
        sock.listen(backlog)
        port = sock.getsockname()[1]
        sock.set_inheritable(True)
        sockets.append(sock)
    logger.info("Uvicorn running on http://%s:%d with %d workers", host, port, count)
    return sockets


class BalancedMultiprocess(Multiprocess):
    """uvicorn's worker supervisor, with worker i always serving `sockets[i]`."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets=[])
        self._slots = sockets

    def _spawn(self, slot: int) -> Process:
        process = Process(self.config, [self._slots[slot]])
        process.start()
        return process

    def init_processes(self) -> None:
        self.processes = [self._spawn(slot) for slot in range(len(self._slots))]

    def keep_subprocess_alive(self) -> None:
        for slot, process in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # gone or hung
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                # It failed before serving (the app or its configuration is broken): every
                # replacement would fail the same way.
                logger.error(f"Child process [{process.pid}] failed to start, stopping the parent process.")
                self.should_exit.set()
                return
            logger.info(f"Child process [{process.pid}] died")
            self.processes[slot] = self._spawn(slot)

    def restart_all(self) -> None:
        """SIGHUP: replace each worker, the new one serving before the old one stops."""
        for slot, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = self._spawn(slot)
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                if not self.should_exit.is_set():
                    logger.error(f"New child process [{new.pid}] was not ready in time; restart aborted.")
                return
            old.terminate()
            old.join()
            self.processes[slot] = new
