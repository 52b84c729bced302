"""The worker pool (greenlets reused across connections) and the acceptors that feed it."""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event
from gevent.hub import Waiter, get_hub, getcurrent

from ..connection import (
    SENDS_MORE,
    ClosingQueue,
    Connection,
    accept_function,
    listen_queue_function,
)
from .listeners import Listener

logger = logging.getLogger(__name__)

# Seconds to stop accepting after accept() failed for want of resources (EMFILE,
# ENFILE, ENOBUFS): retrying at once would spin the loop and flood the log.
ACCEPT_ERROR_PAUSE = 0.5


# How long a worker greenlet may go on taking connections from the backlog itself
# (Acceptor.follow_up) before it lets the hub run: timers, signals, other listeners and
# greenlets outside the workers wait at most this long, plus one request. The same
# order as CPython's thread switch interval (5 ms).
FOLLOW_UP_BUDGET = 0.005

# A worker taking follow-up connections may hold those it has finished open
# (ClosingQueue) until the predicted end of the next one is at most this long after the
# start of the first held one, predicting that the next takes as long as the last.
# Requests slower than half of it are closed one by one: they gain nothing from it.
CLOSE_HOLD = 0.001

# After a follow-up accept found the backlog empty, the next this many connections skip
# the attempt: one connection at a time, each attempt would be a wasted accept4().
FOLLOW_UP_COOLDOWN = 7
# Each further attempt that finds the backlog empty quadruples the cool-down, up to this
# many connections; one that finds a connection waiting brings it back to
# FOLLOW_UP_COOLDOWN. Requests arriving one at a time then pay a failed accept4() once
# per 1,024 instead of once per 8 (issues 18 and 21: at one per 64 it was 0.016 of the
# 6 system calls of a request, at one per 256 0.004), and a server that has just
# gone quiet pays four (7, 31, 127, 511) before that. The price: a burst after a quiet
# spell goes through the loop for at most this many connections before follow-ups
# resume (a tenth of a second at 10,000 requests a second), each paying the loop pass
# (epoll_wait, libev's getpid) that a follow-up would have spared it, not a failure.
FOLLOW_UP_COOLDOWN_MAX = 1023

# While every slot is taken and connections wait, how often the acceptor asks the
# server to shed connections that hold a slot without sending their request
# (Acceptor.on_full).
SHED_INTERVAL = 0.5

# A connection as the acceptor hands it over: (fd, raw peer address, address family,
# the Acceptor to follow up on, or None: no follow-up after this one). Two tuple types,
# so that checking the last item for None tells a type checker which one it has.
Accepted = tuple[int, Any, int, None] | tuple[int, Any, int, "Acceptor"]


class Workers:
    """Greenlets that serve connections, at most ``size`` at once, reused.

    A greenlet that has served a connection waits for the next one instead of ending:
    a new greenlet per connection costs a spawn and, on Python 3.11+, a fresh frame
    stack (an ``mmap``/``munmap`` pair) for every request.

    Under load a greenlet that has finished a connection first accepts the next one
    waiting on the same listener (``Acceptor.follow_up``), for up to FOLLOW_UP_BUDGET
    and only while no other connection is in progress: that spares the hub's loop pass
    (``epoll_wait``, libev's ``getpid``) and two greenlet switches per request, and
    never makes a connection already taken in wait behind new ones. While it does,
    it closes the connections it has finished in batches of up to ``close_batch``
    (``close``): the front-end wakes once per batch instead of once per response.
    """

    def __init__(self, size: int, serve: Callable[[int, Any, int], None],
                 close_batch: int) -> None:
        self.size = size
        self.busy = 0
        self._serve = serve
        self.closing = ClosingQueue()
        self.close_batch = close_batch
        # For close(), about the follow-ups of the one worker taking them: when the
        # current one and the first held one started, the acceptor, what its backlog
        # was last found to hold less the follow-ups taken since, and for how many
        # follow-ups nothing is held (_may_hold).
        self._started = self._held_since = 0.0
        self._source: Acceptor | None = None
        self._known_waiting = 0
        self._close_cooldown = 0
        self._idle: list[Waiter[Accepted | None]] = []
        self._running: set[Any] = set()
        self._freed = Event()
        self._room_waiters = 0  # greenlets in wait_available()
        # Made by join() when it has to wait: setting and clearing an Event around
        # every connection would cost more than the rest of the bookkeeping.
        self._all_done: Event | None = None

    def full(self) -> bool:
        return self.busy >= self.size

    def dispatch(self, connection: Accepted) -> None:
        self.busy += 1
        if not self._idle:
            gevent.spawn_raw(self._run, connection)
        elif getcurrent() is get_hub():
            self._idle.pop().switch(connection)
        else:  # a waiter is switched to from the hub only
            get_hub().loop.run_callback(self._idle.pop().switch, connection)

    def _run(self, connection: Accepted | None) -> None:
        waiter: Waiter[Accepted | None] = Waiter()
        current = getcurrent()
        # In _running while it exists, idle or not (kill() ends both kinds): not added
        # and removed around every connection.
        self._running.add(current)
        try:
            while connection is not None:
                try:
                    if connection[3] is None:
                        self._serve(connection[0], connection[1], connection[2])
                    else:
                        self._serve_and_follow_up(connection)
                finally:
                    if self.closing.fds:
                        self.closing.flush()
                    self.busy -= 1
                    if self._room_waiters or (not self.busy and self._all_done is not None):
                        self._wake_waiters()
                self._idle.append(waiter)
                connection = waiter.get()
        finally:
            self._running.discard(current)
            if waiter in self._idle:  # killed while idle
                self._idle.remove(waiter)

    def _serve_and_follow_up(self, connection: tuple[int, Any, int, Acceptor]) -> None:
        """Serve ``connection``, then those its acceptor still has waiting, in one slot."""
        serve, source, closing = self._serve, connection[3], self.closing
        self._started = time.monotonic()
        deadline = self._started + FOLLOW_UP_BUDGET  # a slow first request ends it
        self._source, self._known_waiting = source, 0
        current = getcurrent()
        closing.holder = None if self._close_cooldown else current
        try:
            serve(connection[0], connection[1], connection[2])
            while (following := source.follow_up(deadline)) is not None:
                self._started = time.monotonic()
                self._known_waiting -= 1  # the follow-up took one of them
                if self._close_cooldown:
                    self._close_cooldown -= 1
                closing.holder = None if self._close_cooldown else current
                serve(following[0], following[1], following[2])
        finally:
            closing.holder = None

    def close(self, connection: Connection) -> None:
        """Close a finished connection, or hold it to close with the next ones.

        Only the worker taking follow-up connections holds (``ClosingQueue.holder``);
        a connection not held is closed at once, with those held before it.
        """
        closing = self.closing
        if closing.holder is getcurrent():
            now, held = time.monotonic(), len(closing.fds)
            if not held:
                self._held_since = self._started
            # From the start of the first held request to the predicted end of the
            # next, counted as lasting as long as this one.
            span = now - self._held_since + now - self._started
            if self._may_hold(held + 1, span):
                closing.add(connection)
                closing.hold()
                return
            if held:
                closing.flush()
        connection.close()

    def _may_hold(self, held: int, span: float) -> bool:
        """Whether ``held`` finished connections may stay open while the next is served.

        At most as many are held as connections still wait in the backlog once the
        next is taken: the front-end is not left without requests in flight, which
        would idle the server at low concurrency (two connections at a time would be
        served in turns). The backlog is asked (a system call) only when what it said
        last no longer covers ``held``; found too short, it is not asked again, and
        nothing is held, for the next FOLLOW_UP_COOLDOWN follow-ups.
        """
        if held >= self.close_batch or span > CLOSE_HOLD:
            return False
        if self._known_waiting > held:
            return True
        self._known_waiting = self._source.waiting() if self._source is not None else 0
        if self._known_waiting > held:
            return True
        self._close_cooldown = FOLLOW_UP_COOLDOWN
        self.closing.holder = None
        return False

    def _wake_waiters(self) -> None:
        """A connection is done: wake wait_available() and, when none is left, join()."""
        if self._room_waiters:  # someone waits for room (shutdown's queue)
            self._freed.set()
            self._freed.clear()
        if not self.busy and self._all_done is not None:
            self._all_done.set()

    def wait_available(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        self._room_waiters += 1
        try:
            while self.full():
                left = deadline - time.monotonic()
                if left <= 0 or not self._freed.wait(left):
                    return False
            return True
        finally:
            self._room_waiters -= 1

    def join(self, timeout: float) -> bool:
        """Wait until no connection is being served; False when ``timeout`` ran out."""
        if not self.busy:
            return True
        if self._all_done is None or self._all_done.is_set():
            self._all_done = Event()
        return self._all_done.wait(timeout)

    def kill(self, timeout: float) -> None:
        for greenlet in list(self._running):
            gevent.kill(greenlet)
        self.join(timeout)


class Acceptor:
    """Accepts from one listener while ``workers`` has room, one connection per wake-up.

    The loop's watcher is level-triggered: with more connections waiting it fires
    again on the next pass, so no accept() is spent finding the backlog empty. When
    the workers are full the watcher stops and the kernel backlog holds the rest.
    Under load the workers take the backlog themselves instead (``follow_up``).
    """

    def __init__(self, listener: Listener, workers: Workers,
                 on_full: Callable[[], None] | None = None) -> None:
        self.listener = listener
        self.workers = workers
        # Called when a connection waits and every slot is taken, then every
        # SHED_INTERVAL while that lasts: the server may free slots held by idle peers.
        self.on_full = on_full
        self.family = listener.socket.family
        self._fd = listener.socket.fileno()
        self._accept = accept_function()
        # Finished connections are held for a batch (Workers.close) only where the
        # backlog can be measured and the last bytes wait for the FIN (MSG_MORE).
        self._queue_length = listen_queue_function(listener.socket) if SENDS_MORE else None
        self._watcher: Any = None
        self._waiting_for_room = False
        self._cooldown = 0  # connections to dispatch without a follow-up (see follow_up)
        self._next_cooldown = FOLLOW_UP_COOLDOWN  # the cool-down after the next failed one

    def start(self) -> None:
        if self._watcher is None:
            self._watcher = get_hub().loop.io(self.listener.socket.fileno(), 1)
        self._watcher.start(self._on_readable)

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher.close()
            self._watcher = None

    def _on_readable(self) -> None:
        workers = self.workers
        if workers.busy >= workers.size:  # workers.full(), inlined: once per connection
            self.stop()
            if not self._waiting_for_room:
                self._waiting_for_room = True
                gevent.spawn(self._resume_when_room)
            return
        try:
            accepted = self._accept(self._fd)
        except OSError as error:
            self._accept_failed(error)
            return
        if accepted is None:
            return
        if self._cooldown:  # the last follow-up found the backlog empty
            self._cooldown -= 1
            workers.dispatch((accepted[0], accepted[1], self.family, None))
        else:
            workers.dispatch((accepted[0], accepted[1], self.family, self))

    def follow_up(self, deadline: float) -> Accepted | None:
        """The next connection waiting in the backlog, for a worker that just finished one.

        None when another connection is in progress (it may be waiting for the loop),
        when the acceptor is stopped (workers full, paused after an error, shutting
        down) or when ``deadline`` has passed; and when the backlog is empty, which
        also starts a cool-down (longer each time it happens again in a row). Errors are
        left to the loop's watcher, which sees the same backlog on its next pass.
        """
        watcher = self._watcher
        if (self.workers.busy != 1 or watcher is None or not watcher.active
                or time.monotonic() > deadline):
            return None
        try:
            accepted = self._accept(self._fd)
        except OSError:
            return None
        if accepted is None:
            self._cooldown = cooldown = self._next_cooldown
            self._next_cooldown = min(4 * cooldown + 3, FOLLOW_UP_COOLDOWN_MAX)
            return None
        self._next_cooldown = FOLLOW_UP_COOLDOWN
        return (accepted[0], accepted[1], self.family, self)

    def waiting(self) -> int:
        """Connections waiting in the listener's backlog; 0 where the kernel cannot tell."""
        return self._queue_length() if self._queue_length is not None else 0

    def _resume_when_room(self) -> None:
        on_full = self.on_full
        try:
            if on_full is not None:
                on_full()
            while not self.workers.wait_available(3600 if on_full is None else SHED_INTERVAL):
                if on_full is not None:
                    on_full()
        finally:
            self._waiting_for_room = False
        if self._watcher is not None:
            self.start()

    def _accept_failed(self, error: OSError) -> None:
        if error.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
            return  # that connection is gone; the next one is fine
        logger.error("accept() on %s failed: %s; pausing %ss.", self.listener.display,
                     error.strerror or error, ACCEPT_ERROR_PAUSE)
        self.stop()
        gevent.spawn_later(ACCEPT_ERROR_PAUSE, self._restart)

    def _restart(self) -> None:
        if self._watcher is not None:
            self.start()

    def accept_backlog(self) -> list[Accepted]:
        """Every connection waiting in the backlog, accepted without yielding."""
        accepted: list[Accepted] = []
        while True:
            try:
                connection = self._accept(self._fd)
            except OSError:
                return accepted
            if connection is None:
                return accepted
            accepted.append((connection[0], connection[1], self.family, None))
