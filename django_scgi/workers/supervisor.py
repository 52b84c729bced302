"""The supervisor of ``--workers N``: starts, watches, restarts, reloads and stops workers."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Mapping

import gevent
from gevent import socket, subprocess
from gevent.event import Event
from gevent.lock import Semaphore

from ..conf import ServerConfig
from ..server import Listener
from .handoff import WORKER_ENV, Handoff

logger = logging.getLogger(__name__)

# Seconds before a dead worker is replaced: doubled for each death in a row, capped,
# so a worker that cannot start does not spin the CPU or flood the log.
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
# A worker that has served this long resets its slot's count of deaths in a row.
STABLE_AFTER = 30.0
# Seconds a new worker may take to import the project and listen (a large project
# with its system checks takes a few seconds); past it the start counts as failed.
START_TIMEOUT = 60.0
# Seconds on top of graceful_timeout for a stopping worker to cancel what is left and
# exit, before the supervisor kills it.
STOP_MARGIN = 5.0


class WorkerStartError(RuntimeError):
    """A worker of the first set did not start; the message is a sentence."""


def backoff_delay(failures: int) -> float:
    """Seconds to wait before restarting a worker after ``failures`` deaths in a row."""
    # The exponent is capped too: from 2 ** 1024 on the product overflows a float, and a
    # slot whose worker keeps dying (about 8.5 hours at BACKOFF_MAX) would never restart.
    return min(BACKOFF_FIRST * 2.0 ** min(max(failures - 1, 0), _MAX_DOUBLINGS), BACKOFF_MAX)


# More doublings than it takes BACKOFF_FIRST to pass BACKOFF_MAX.
_MAX_DOUBLINGS = 32


def describe_exit(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


class Worker:
    """One worker process as the supervisor sees it."""

    def __init__(self, slot: int, proc: subprocess.Popen[bytes], channel: socket.socket) -> None:
        self.slot = slot
        self.proc = proc
        self.channel = channel
        self.started = time.monotonic()
        self.ready = Event()
        self.exited = Event()
        self.stop_sent = False
        self.retiring = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def name(self) -> str:
        return f"Worker {self.slot + 1} (pid {self.pid})"


class Supervisor:
    """Runs ``config.workers`` worker processes over ``listeners`` until a signal says stop."""

    def __init__(
        self, listeners: list[Listener], config: ServerConfig, command: list[str], *,
        env: Mapping[str, str] | None = None, cwd: str | None = None,
        on_ready: Callable[[Supervisor], object] | None = None,
        on_stopping: Callable[[Supervisor], object] | None = None,
        on_reloading: Callable[[Supervisor], object] | None = None,
        on_reloaded: Callable[[Supervisor], object] | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.listeners = listeners
        self.config = config
        self.command = command
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.on_ready = on_ready
        self.on_stopping = on_stopping
        self.on_reloading = on_reloading
        self.on_reloaded = on_reloaded
        self.start_timeout = start_timeout
        self.slots: list[Worker | None] = [None] * config.workers
        self.failures = [0] * config.workers
        self.workers: set[Worker] = set()  # every live process, stopping ones included
        self._replacing = Semaphore()
        self._stopping = False
        self._signals = 0
        self._stop_requested = Event()
        self._done = Event()
        self._reloading = False
        self._reload_again = False
        self._running = False  # True once the first set of workers is ready

    @property
    def addresses(self) -> list[str]:
        return [listener.display for listener in self.listeners]

    @property
    def pids(self) -> list[int]:
        return [worker.pid for worker in self.slots if worker is not None]

    # -- running --

    def run(self) -> None:
        """Start the workers, serve until stopped; ``WorkerStartError`` if one cannot start."""
        self.install_signal_handlers()
        failed = self._start_all()
        if failed is not None:
            returncode = failed.proc.poll()
            self.stop(graceful=1.0)
            raise WorkerStartError(
                f"{failed.name} {describe_exit(returncode)} before it was ready; its "
                "output above says why." if returncode is not None
                else f"{failed.name} was not ready after {self.start_timeout:g}s."
            )
        if self._stopping:
            self._done.wait()
            return
        self._running = True
        logger.info("%d workers ready (pids %s).", len(self.slots),
                    ", ".join(map(str, self.pids)))
        if self.on_ready is not None:
            self.on_ready(self)
        if self._reload_again:  # SIGHUP during start-up: the code may have changed since
            gevent.spawn(self.reload)
        self._done.wait()

    def _start_all(self) -> Worker | None:
        """Start every slot at once; the first worker that does not become ready, if any."""
        started: list[Worker] = []
        for slot in range(len(self.slots)):
            self.slots[slot] = worker = self._spawn(slot)
            started.append(worker)
        for worker in started:
            if not self._wait_ready(worker) and not self._stopping:
                return worker
        return None

    def _spawn(self, slot: int) -> Worker:
        ours, theirs = socket.socketpair()
        fds = [listener.socket.fileno() for listener in self.listeners]
        env = dict(self.env)
        env[WORKER_ENV] = Handoff(slot, theirs.fileno(), tuple(fds)).encode()
        env.pop("NOTIFY_SOCKET", None)  # only the supervisor talks to systemd
        try:
            proc = subprocess.Popen(
                self.command, env=env, cwd=self.cwd, pass_fds=[*fds, theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        worker = Worker(slot, proc, ours)
        self.workers.add(worker)
        gevent.spawn(self._watch, worker)
        logger.info("%s starting.", worker.name)
        return worker

    def _wait_ready(self, worker: Worker) -> bool:
        gevent.wait([worker.ready, worker.exited, self._stop_requested],
                    timeout=self.start_timeout, count=1)
        return worker.ready.is_set() and not worker.exited.is_set()

    def _watch(self, worker: Worker) -> None:
        reader = gevent.spawn(self._read_channel, worker)
        returncode = worker.proc.wait()
        reader.kill()
        worker.channel.close()
        self.workers.discard(worker)
        worker.exited.set()
        self._on_exit(worker, returncode)

    def _read_channel(self, worker: Worker) -> None:
        pending = b""
        while True:
            try:
                data = worker.channel.recv(256)
            except OSError:
                return
            if not data:
                return
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                self._on_message(worker, line.decode("ascii", "replace").strip())

    def _on_message(self, worker: Worker, word: str) -> None:
        if word == "ready":
            worker.ready.set()
        elif word == "retire" and not worker.retiring and not self._stopping:
            worker.retiring = True
            gevent.spawn(self._replace, worker.slot, worker)

    def _on_exit(self, worker: Worker, returncode: int | None) -> None:
        how = describe_exit(returncode)
        if self._stopping or worker.stop_sent:
            logger.info("%s %s.", worker.name, how)
            return
        if self.slots[worker.slot] is not worker or not (self._running or worker.ready.is_set()):
            logger.warning("%s %s before it was ready.", worker.name, how)
            return
        stable = worker.ready.is_set() and time.monotonic() - worker.started >= STABLE_AFTER
        self.failures[worker.slot] = 1 if stable else self.failures[worker.slot] + 1
        delay = backoff_delay(self.failures[worker.slot])
        logger.warning("%s %s; starting a new one in %.1fs.", worker.name, how, delay)
        gevent.spawn_later(delay, self._restart, worker)

    def _restart(self, dead: Worker) -> None:
        with self._replacing:
            if self._stopping or self.slots[dead.slot] is not dead:
                return  # stopping, or a reload replaced the slot meanwhile
            try:
                self.slots[dead.slot] = self._spawn(dead.slot)
            except OSError as error:
                self.failures[dead.slot] += 1
                delay = backoff_delay(self.failures[dead.slot])
                logger.error("Cannot start worker %d (%s); trying again in %.1fs.",
                             dead.slot + 1, error, delay)
                gevent.spawn_later(delay, self._restart, dead)

    # -- replacing workers: reload and recycling --

    def _replace(self, slot: int, old: Worker | None = None) -> bool:
        """Start a successor for ``slot``; once it is ready, tell the old worker to stop."""
        with self._replacing:
            current = self.slots[slot]
            if self._stopping or current is None or (old is not None and current is not old):
                return True  # nothing to do: stopping, or already replaced
            try:
                new = self._spawn(slot)
            except OSError as error:
                logger.error("Cannot start a new worker %d: %s.", slot + 1, error)
                return False
            if not self._wait_ready(new):
                if not self._stopping:
                    logger.error("%s did not start (%s); %s keeps serving.", new.name,
                                 describe_exit(new.proc.poll()) if new.proc.poll() is not None
                                 else f"not ready after {self.start_timeout:g}s", current.name)
                self._tell_stop(new)
                return False
            self.slots[slot] = new
            self.failures[slot] = 0
            self._tell_stop(current)
            return True

    def reload(self) -> None:
        """Replace every worker, one at a time, with one running freshly imported code."""
        if self._reloading:
            self._reload_again = True  # a HUP during a reload: once more when it is done
            return
        self._reloading = True
        if self.on_reloading is not None:
            self.on_reloading(self)
        try:
            while not self._stopping:
                self._reload_again = False
                logger.info("Reloading: replacing %d workers one at a time.", len(self.slots))
                if all(self._replace(slot) for slot in range(len(self.slots))):
                    logger.info("Reload finished: workers %s.", ", ".join(map(str, self.pids)))
                elif not self._stopping:
                    logger.error("Reload abandoned: a new worker could not start; the "
                                 "workers already running go on serving.")
                if not self._reload_again:
                    break
        finally:
            self._reloading = False
            if self.on_reloaded is not None and not self._stopping:
                self.on_reloaded(self)

    # -- stopping --

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            gevent.signal_handler(signum, self._on_signal, signum)
        gevent.signal_handler(signal.SIGHUP, self._on_sighup)

    def _on_sighup(self) -> None:
        if self._stopping:
            return
        logger.info("SIGHUP received.")
        if not self._running:
            self._reload_again = True  # reload once the first workers are ready
            return
        gevent.spawn(self.reload)

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        self._signals += 1
        if self._signals > 1:
            logger.warning("Second %s: killing the workers and exiting at once.", name)
            self._kill_all()
            for listener in self.listeners:
                listener.remove_socket_file()
            os._exit(1)
        logger.info("%s received: stopping %d worker(s), in-flight requests get up to %ss.",
                    name, len(self.workers), self.config.graceful_timeout)
        if self.on_stopping is not None:
            self.on_stopping(self)
        gevent.spawn(self.stop)

    def stop(self, graceful: float | None = None) -> None:
        """Tell every worker to stop, wait for them (killing stragglers), close the listeners."""
        if self._stopping:
            self._done.wait()
            return
        self._stopping = True
        self._stop_requested.set()
        for listener in self.listeners:
            listener.remove_socket_file()  # new unix connections fail from here on
        for worker in list(self.workers):
            self._tell_stop(worker)
        # The workers accept what is already queued, then close their copies; once the
        # last one has, the kernel refuses new connections.
        for listener in self.listeners:
            listener.close()
        graceful = self.config.graceful_timeout if graceful is None else graceful
        if not self._wait_exited(graceful + STOP_MARGIN):
            for worker in list(self.workers):
                logger.warning("%s still running %ss after stop; killing it.", worker.name,
                               graceful + STOP_MARGIN)
            self._kill_all()
            self._wait_exited(5.0)
        logger.info("Stopped (pid %d): every worker has exited.", os.getpid())
        self._done.set()

    def _wait_exited(self, timeout: float) -> bool:
        events = [worker.exited for worker in list(self.workers)]
        return not events or len(gevent.wait(events, timeout=timeout)) == len(events)

    def _tell_stop(self, worker: Worker) -> None:
        """Ask ``worker`` to drain and exit: by message once it listens, else SIGTERM."""
        if worker.stop_sent or worker.exited.is_set():
            return
        worker.stop_sent = True
        if worker.ready.is_set():
            try:
                worker.channel.sendall(b"stop\n")
                return
            except OSError:
                pass
        # Not serving yet: its signal handlers may not be in place, and it has nothing
        # to drain; SIGTERM ends it either way.
        _send_signal(worker, signal.SIGTERM)

    def _kill_all(self) -> None:
        for worker in list(self.workers):
            _send_signal(worker, signal.SIGKILL)


def _send_signal(worker: Worker, signum: int) -> None:
    try:
        worker.proc.send_signal(signum)
    except (ProcessLookupError, OSError):
        pass
