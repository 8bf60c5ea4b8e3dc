"""``appliance agent serve --workers N``: N processes answer HTTP on one port.

The owning process binds the port, then starts N-1 serving processes that
inherit the listening socket (its file descriptor, as gunicorn and uvicorn's
``--workers`` do); the kernel hands each new connection to whichever process
accepts first, so an idle one takes the next. Only processes started here can
accept on it: nothing else on the box can join the port, as ``SO_REUSEPORT``
would let a process of the same user do.

A serving process that exits is started again (after 1 s, doubling up to 30 s
while it keeps failing); when the owner stops, it stops them (SIGTERM, then
SIGKILL after the grace period), and a serving process whose owner vanished
stops on its own (:mod:`agent.follower`).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from appliance.children import dying_with
from appliance.errors import ConfigError

log = logging.getLogger(__name__)

MAX_PROCESSES = 64
SERVING_FD_FLAG = "--serving-fd"
"""The hidden flag that makes ``appliance agent serve`` a serving process."""
_BACKOFF_S = (1.0, 30.0)
_HEALTHY_AFTER_S = 60.0
"""A process that ran this long before it exited starts again without delay growth."""


def check_count(count: int) -> int:
    if not 1 <= count <= MAX_PROCESSES:
        raise ConfigError(
            f"--workers {count}: must be between 1 and {MAX_PROCESSES}",
            hint="one per core is the most that helps; each process loads every model",
        )
    return count


def listening_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """The agent's port, bound and listening before any process serves it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="another process holds the port, or the address is not this host's",
        ) from exc
    sock.listen(backlog)
    return sock


def inherited_socket(fd: int) -> socket.socket:
    """The listening socket a serving process was started with."""
    return socket.socket(fileno=fd)


class ServingProcesses:
    """The owner's serving processes: started, restarted when they exit, stopped."""

    def __init__(
        self,
        count: int,
        argv: list[str],
        sock: socket.socket,
        on_exit: Callable[[int], None] = lambda _pid: None,
    ) -> None:
        self.count = count
        self.on_exit = on_exit
        """Told each exited process's pid (its counts are folded into the agent's)."""
        self.sock = sock
        fd = sock.fileno()
        self.command = [sys.executable, "-m", "appliance", *argv, SERVING_FD_FLAG, str(fd)]
        self._processes: list[subprocess.Popen[bytes] | None] = [None] * count
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="appliance-serving", daemon=True)

    def start(self) -> None:
        for slot in range(self.count):
            self._spawn(slot)
        self._thread.start()

    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p is not None and p.poll() is None]

    def _spawn(self, slot: int) -> None:
        # systemd hears READY=1 from the owner alone
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        process = subprocess.Popen(
            self.command,
            pass_fds=(self.sock.fileno(),),
            env=env,
            preexec_fn=dying_with(os.getpid()),  # a SIGKILLed owner takes them along at once
        )
        self._processes[slot] = process
        log.info("serving process %d started (pid %d)", slot + 1, process.pid)

    def _watch(self) -> None:
        delay = [_BACKOFF_S[0]] * self.count
        started = [time.monotonic()] * self.count
        due: list[float | None] = [None] * self.count
        while not self._stopping.wait(0.5):
            now = time.monotonic()
            for slot, process in enumerate(self._processes):
                if process is None:
                    if (when := due[slot]) is not None and now >= when:
                        due[slot], started[slot] = None, now
                        self._spawn(slot)
                    continue
                code = process.poll()
                if code is None:
                    continue
                if now - started[slot] >= _HEALTHY_AFTER_S:
                    delay[slot] = _BACKOFF_S[0]
                log.error(
                    "serving process %d (pid %d) exited with %s; starting it again in %.0f s",
                    slot + 1,
                    process.pid,
                    code,
                    delay[slot],
                )
                self._processes[slot] = None
                self._exited(process.pid)
                due[slot] = now + delay[slot]
                delay[slot] = min(delay[slot] * 2, _BACKOFF_S[1])

    def _exited(self, pid: int) -> None:
        try:
            self.on_exit(pid)
        except Exception:  # its counts are lost, not the supervision
            log.exception("could not fold the counts of serving process %d", pid)

    def stop(self, grace_s: float = 10.0) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(grace_s)
        running = [p for p in self._processes if p is not None and p.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("serving process %d did not stop; killing it", process.pid)
                process.kill()
                process.wait()
