"""Database connection admission and reuse, per process and per database alias.

Under gevent every request runs in its own greenlet, and Django keeps one connection
per greenlet: a burst of requests opens as many connections as there are requests, and
PostgreSQL answers the ones past ``max_connections`` with "too many clients". Here each
alias gets a ``Slots``: a LIFO queue of ``limit`` tokens, each either a free slot
(``None``: the holder may open a connection) or an idle open connection. A greenlet
takes a token when Django opens a connection (``get_new_connection``), waits for one
when none is left (bounded by ``wait_timeout``, then ``DatabaseBusy``: a 503), and puts
one back when the connection is closed, or — a persistent connection
(``CONN_MAX_AGE``) at the end of a request — puts the open connection itself back, so
the next request reuses it instead of each greenlet keeping its own until it dies.

A request that never touches the database never takes a token: Django opens its
connection lazily, on the first query. Aliases with Django's own psycopg pool
(``OPTIONS["pool"]``) are left alone: the pool's ``max_size`` governs them. SQLite
has no server to run out of: left alone too.

Installed by ``runscgi`` (``install()``) in each serving process, after Django loaded.
Imports: stdlib at module level; django and gevent inside functions.
"""

from __future__ import annotations

import contextlib
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

# The per-process limit when the database does not say how many connections it takes.
# Small on purpose: most servers take 100 or more, shared by every process and host.
FALLBACK_LIMIT = 10
# Retry-After of the 503 sent when no connection came free in time, in seconds.
RETRY_AFTER = 1


class DatabaseBusy(Exception):
    """No connection to ``alias`` came free within the wait timeout (→ 503)."""

    def __init__(self, alias: str, waited: float, limit: int) -> None:
        super().__init__(f"no connection to database {alias!r} came free in {waited:g}s "
                         f"(this process holds at most {limit})")
        self.alias = alias
        self.waited = waited
        self.limit = limit


@dataclass
class Idle:
    """An open connection put back for reuse, when Django wants it closed, and what the
    backend's ``get_new_connection`` set on its wrapper when it opened it."""

    raw: Any
    close_at: float | None
    state: dict[str, Any]


class Lease:
    """A token held by one ``DatabaseWrapper``; returns a free slot if the wrapper is lost.

    A greenlet that dies holding a connection (nobody called close) would keep its token
    forever; the finalizer closes the connection and frees the slot instead.
    """

    def __init__(self, slots: Slots, wrapper: Any, raw: Any, state: dict[str, Any]) -> None:
        self.slots = slots
        self.state = state
        self._finalizer = weakref.finalize(wrapper, slots.discard, raw)
        self._finalizer.atexit = False

    def detach(self) -> None:
        self._finalizer.detach()

    def release(self) -> None:
        """The wrapper closed its connection: its slot is free."""
        if self._finalizer.detach() is not None:
            self.slots.tokens.put(None)


class Slots:
    """The tokens of one alias: ``limit`` of them, learned at the first connection."""

    def __init__(self, alias: str, limit: int | None, wait_timeout: float) -> None:
        from gevent.lock import Semaphore
        from gevent.queue import LifoQueue

        self.alias = alias
        self.limit = limit  # None: learn it from the database at the first connection
        self.wait_timeout = wait_timeout
        self.tokens: Any = LifoQueue()
        self.closed = False
        self._learning = Semaphore()
        if limit is not None:
            self._fill(limit)

    def _fill(self, count: int) -> None:
        for _ in range(count):
            self.tokens.put(None)

    def take(self, open_new: Callable[[], Any], learn: Callable[[Any], int] | None,
             healthy: Callable[[Idle], bool]) -> Idle | None:
        """An idle connection to reuse, else None once ``open_new()`` opened one in a
        free slot; waits while there is neither, raises ``DatabaseBusy`` past the timeout."""
        if self.limit is None and self._learn_limit(open_new, learn):
            return None
        from gevent.queue import Empty

        deadline = time.monotonic() + self.wait_timeout
        while True:
            try:
                token = self.tokens.get(timeout=max(0.0, deadline - time.monotonic()))
            except Empty:
                raise DatabaseBusy(self.alias, self.wait_timeout, self.limit or 0) from None
            if token is None:
                self._open(open_new, deadline)
                return None
            if healthy(token):
                return token  # type: ignore[no-any-return]
            self.discard(token.raw)  # dead: its slot is free again; take the next token

    def _open(self, open_new: Callable[[], Any], deadline: float) -> Any:
        """Open a connection in the slot this greenlet holds; the slot back on failure."""
        try:
            return self._connect(open_new, deadline)
        except BaseException:
            self.tokens.put(None)
            raise

    def _connect(self, open_new: Callable[[], Any], deadline: float) -> Any:
        """``open_new()``, again while the server has no slot free, until ``deadline``.

        The server may be out of slots though we hold one: a backend whose client just
        closed takes a moment to exit, and other processes and hosts use the same
        server. Past the deadline this is answered like a wait that timed out.
        """
        import gevent

        pause = 0.01
        while True:
            try:
                return open_new()
            except Exception as error:
                if not is_out_of_slots(error):
                    raise
                if time.monotonic() + pause > deadline:
                    raise DatabaseBusy(self.alias, self.wait_timeout,
                                       self.limit or 0) from error
            gevent.sleep(pause)
            pause = min(pause * 2, 0.25)

    def _learn_limit(self, open_new: Callable[[], Any],
                     learn: Callable[[Any], int] | None) -> bool:
        """The first connection: open it, ask the database for the limit, size the queue.

        True when this greenlet opened the first connection (it holds the last token).
        """
        if not self._learning.acquire(timeout=self.wait_timeout):
            raise DatabaseBusy(self.alias, self.wait_timeout, 0)
        try:
            if self.limit is not None:
                return False  # another greenlet learned it while we waited
            # On failure the limit stays unknown: the next connection tries again.
            raw = self._connect(open_new, time.monotonic() + self.wait_timeout)
            limit = FALLBACK_LIMIT
            if learn is not None:
                with contextlib.suppress(Exception):  # a server that will not say
                    limit = max(1, learn(raw))
            self.limit = limit
            self._fill(limit - 1)  # this connection holds the last token
            logger.info("Database %r: this process opens at most %d connection(s).",
                        self.alias, limit)
            return True
        finally:
            self._learning.release()

    def put_back(self, idle: Idle) -> None:
        """A persistent connection, clean and idle, for the next request."""
        if self.closed:
            self.discard(idle.raw)
        else:
            self.tokens.put(idle)

    def discard(self, raw: Any) -> None:
        """Close ``raw`` (if it is not already) and free its slot."""
        with contextlib.suppress(Exception):
            raw.close()
        self.tokens.put(None)

    def close_idle(self) -> int:
        """Close every idle connection (shutdown); later returns are closed, not kept."""
        self.closed = True
        tokens = []
        while not self.tokens.empty():
            tokens.append(self.tokens.get_nowait())
        idle = [token for token in tokens if token is not None]
        for token in idle:
            with contextlib.suppress(Exception):
                token.raw.close()
        self._fill(len(tokens))
        return len(idle)


# What PostgreSQL says when it has no slot for one more client (SQLSTATE 53300, which
# libpq does not pass on for an error at connection time, hence the texts too).
OUT_OF_SLOTS = ("too many clients", "remaining connection slots are reserved",
                "too many connections")


def is_out_of_slots(error: BaseException) -> bool:
    """Did the database refuse a connection because all its slots are taken?"""
    code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if code == "53300":
        return True
    text = str(error).lower()
    return any(phrase in text for phrase in OUT_OF_SLOTS)


@dataclass(frozen=True)
class Settings:
    """What ``install()`` needs from ``ServerConfig``."""

    max_connections: int  # 0: learn
    wait_timeout: float
    workers: int


# --- Django glue ---------------------------------------------------------------------

_SLOTS: dict[str, Slots] = {}
# PostgreSQL transaction status (libpq PQtransactionStatus, the same numbers in psycopg
# 3 and psycopg2): 0 is idle, outside any transaction.
TRANSACTION_IDLE = 0


def install(settings: Settings) -> list[str]:
    """Admission for every database that needs it; the aliases it applies to.

    Wraps ``get_new_connection`` and ``_close`` of each backend's ``DatabaseWrapper``
    class, keeps persistent connections on ``request_finished`` and turns
    ``DatabaseBusy`` into a 503 in Django's exception handling.
    """
    from django.core.signals import request_finished
    from django.db import connections

    for alias in connections:
        wrapper = connections[alias]
        if not needs_admission(wrapper):
            continue
        limit = settings.max_connections or None
        _SLOTS[alias] = Slots(alias, limit, settings.wait_timeout)
        _patch_wrapper_class(type(wrapper), settings.workers)
    if _SLOTS:
        # Connected after Django's close_old_connections, so it runs after it.
        request_finished.connect(keep_persistent, dispatch_uid="django_scgi.dbpool")
    _patch_exception_response()  # our DatabaseBusy, and a psycopg pool's timeout
    return list(_SLOTS)


def needs_admission(wrapper: Any) -> bool:
    """A database server with connection slots, without Django's own pool in front."""
    if wrapper.vendor == "sqlite":
        return False
    return not wrapper.settings_dict.get("OPTIONS", {}).get("pool")


def _patch_wrapper_class(cls: Any, workers: int) -> None:
    if "_scgi_admission" in cls.__dict__:
        return
    original_new, original_close = cls.get_new_connection, cls._close

    def get_new_connection(self: Any, conn_params: Any) -> Any:
        slots = _SLOTS.get(self.alias)
        if slots is None:
            return original_new(self, conn_params)
        opened: list[Any] = []

        def open_new() -> Any:
            before = dict(vars(self))
            opened.append(original_new(self, conn_params))
            opened.append({k: v for k, v in vars(self).items()
                           if k not in before or before[k] is not v})
            return opened[0]

        idle = slots.take(open_new, lambda raw: learn_limit(self, raw, workers),
                          lambda idle: is_healthy(self, idle))
        if idle is None:
            raw, state = opened
        else:  # reuse: what the backend set on the wrapper, and the connection's age
            raw, state = idle.raw, idle.state
            vars(self).update(state)
            self.close_at = idle.close_at
        self._scgi_lease = Lease(slots, self, raw, state)
        return raw

    def _close(self: Any) -> Any:
        lease = vars(self).pop("_scgi_lease", None)
        try:
            return original_close(self)
        finally:
            if lease is not None:
                lease.release()

    cls.get_new_connection, cls._close = get_new_connection, _close
    cls._scgi_admission = True


def learn_limit(wrapper: Any, raw: Any, workers: int) -> int:
    """This process's share of the server's connection slots (raises if it will not say)."""
    queries = {
        # reserved_connections is PostgreSQL 16's; NULL (0) before.
        "postgresql": "SELECT current_setting('max_connections')::int"
                      " - current_setting('superuser_reserved_connections')::int"
                      " - coalesce(current_setting('reserved_connections', true)::int, 0)",
        "mysql": "SELECT @@max_connections",
    }
    cursor = raw.cursor()
    try:
        cursor.execute(queries[wrapper.vendor])
        total = int(cursor.fetchone()[0])
    finally:
        cursor.close()
        raw.rollback()  # the query may have opened a transaction: Django sets autocommit next
    return total // workers


def is_healthy(wrapper: Any, idle: Idle) -> bool:
    """May ``idle`` serve the next request? Never a round trip unless CONN_HEALTH_CHECKS."""
    if idle.close_at is not None and time.monotonic() >= idle.close_at:
        return False
    if peer_hung_up(idle.raw):
        return False
    if wrapper.settings_dict.get("CONN_HEALTH_CHECKS"):
        try:
            cursor = idle.raw.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
        except wrapper.Database.Error:
            return False
    return True


def peer_hung_up(raw: Any) -> bool:
    """True when an idle connection's socket has something to read: between queries the
    server sends nothing unless it is ending the session (restart, terminate)."""
    import select

    fileno = getattr(raw, "fileno", None)
    if fileno is None:
        return False
    try:
        readable, _, _ = select.select([fileno()], [], [], 0)
    except (OSError, ValueError, TypeError):
        return True
    return bool(readable)


def keep_persistent(**kwargs: Any) -> None:
    """At the end of a request, put each connection Django kept open back for reuse.

    Django has already closed the connections it did not want (CONN_MAX_AGE reached,
    errors, autocommit changed). A connection left inside a transaction is rolled back,
    or closed if that fails: the next request never inherits "idle in transaction".
    """
    from django.db import connections

    for wrapper in connections.all(initialized_only=True):
        lease = vars(wrapper).get("_scgi_lease")
        if lease is None or wrapper.connection is None:
            continue
        if wrapper.in_atomic_block or not ends_transaction(wrapper.connection,
                                                           wrapper.Database.Error):
            wrapper.close()
            continue
        raw = wrapper.connection
        del wrapper._scgi_lease
        lease.detach()
        wrapper.connection = None
        lease.slots.put_back(Idle(raw, wrapper.close_at, lease.state))


def ends_transaction(raw: Any, error: type[Exception]) -> bool:
    """Roll back a transaction left open (``BEGIN`` behind Django's back); True if clean.

    Drivers that do not report a transaction status (not libpq's) are trusted.
    """
    status = getattr(getattr(raw, "info", None), "transaction_status", None)
    if status is None or status == TRANSACTION_IDLE:
        return True
    try:
        cursor = raw.cursor()
        cursor.execute("ROLLBACK")
        cursor.close()
    except error:
        return False
    return bool(raw.info.transaction_status == TRANSACTION_IDLE)


def close_all() -> int:
    """Close every database connection of this process (shutdown); how many were idle.

    Idle persistent connections, this greenlet's own, and Django's psycopg pools.
    Connections still in use are closed when their request ends.
    """
    from django.db import connections

    closed = sum(slots.close_idle() for slots in _SLOTS.values())
    for alias in connections:
        wrapper = connections[alias]
        with contextlib.suppress(Exception):
            wrapper.close()
        close_pool = getattr(wrapper, "close_pool", None)
        if callable(close_pool):
            with contextlib.suppress(Exception):
                close_pool()
    return closed


# --- the 503 ---------------------------------------------------------------------------


def _patch_exception_response() -> None:
    """Make Django answer ``DatabaseBusy`` (and a psycopg pool's timeout) with a 503.

    Django turns an exception anywhere in the middleware chain or the view into a
    response with ``response_for_exception``, looked up in its module at each call.
    """
    from django.core.handlers import exception

    original = exception.response_for_exception
    if getattr(original, "_scgi_busy", False):
        return

    def response_for_exception(request: Any, exc: BaseException) -> Any:
        busy = busy_cause(exc)
        if busy is None:
            return original(request, exc)
        return busy_response(request, busy)

    response_for_exception._scgi_busy = True  # type: ignore[attr-defined]
    exception.response_for_exception = response_for_exception


def busy_cause(exc: BaseException | None) -> BaseException | None:
    """``DatabaseBusy`` or psycopg_pool's ``PoolTimeout`` in ``exc``'s chain, else None."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, DatabaseBusy) or (
                type(exc).__name__ == "PoolTimeout"
                and type(exc).__module__.startswith("psycopg_pool")):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def busy_response(request: Any, busy: BaseException) -> Any:
    from django.http import HttpResponse

    logger.warning("503 for %s %s: %s", request.method, request.path, busy)
    response = HttpResponse("The database is busy; try again shortly.\n", status=503,
                            content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER)
    response._has_been_logged = True  # our line above is the one line: not Django's too
    return response
