"""The access line of a finished exchange, to Django's ``django.server`` logger.

Two ways out, one output:

- Django's default configuration of ``django.server`` (its one ``StreamHandler`` with
  ``ServerFormatter``, exactly as ``django.utils.log.DEFAULT_LOGGING`` sets them, no
  filters, nothing added): the line is formatted here, byte for byte as that handler
  would format it, and written in batches (``DefaultOutput``). A ``LogRecord``, the
  formatter's generic machinery, the handler lock and a ``write`` + ``flush`` per line
  cost more than everything else the server does for a request (about 130 k
  instructions against 90 k); this costs 5-9 k and, in batches, no system call.
- anything else: a ``LogRecord`` per line, handled at once, with the structured fields
  in ``extra`` (docs/production.rst), as always.

Batches: a line that comes when nothing was written for ``FLUSH_INTERVAL`` is written at
once; later ones wait at most ``FLUSH_INTERVAL`` (a timer), or less when ``FLUSH_LINES``
are waiting or a line comes once the batch is nearly due (``FLUSH_IN_LINE_AFTER``).
They are written in order, on every way out of the process that runs Python code
(stop, second signal, a worker's exit, ``SystemExit``, ``atexit``); only a kill
(SIGKILL, a crash of the interpreter) can lose the last ``FLUSH_INTERVAL`` of lines.
Lines of *other* loggers sharing the stream may come before access lines of requests
that finished up to ``FLUSH_INTERVAL`` earlier. docs/production.rst says all this.

This module imports neither Django nor gevent at import time: Django's formatter class
is recognised through ``sys.modules`` (it is loaded when Django's logging is), and the
timer comes from the running gevent hub.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .. import logtext
from ..environ import request_line

if TYPE_CHECKING:
    from .exchange import Exchange

# The usual line formatted in C (_speedups.c), like protocol.py's head parser: not
# built, or switched off with DJANGO_SCGI_PURE_PYTHON=1, default_line() does it all.
# Its type: _speedups.pyi.
_c_access_line: Callable[[object, object, object, object, object, object, object],
                          str | None] | None
_c_access_line = None
if not os.environ.get("DJANGO_SCGI_PURE_PYTHON"):
    try:
        from .. import _speedups
    except ImportError:
        pass
    else:
        _c_access_line = _speedups.access_line

access_logger = logging.getLogger("django.server")

# The most an access line waits in memory before it is written, in seconds: short enough
# that a person watching the log sees it within a second, long enough that a busy server
# writes its lines in a few large writes instead of one per request. A write costs about
# as much as six lines (the handler's lock, the write and flush, the timer's wake-up).
FLUSH_INTERVAL = 1.0
# A line that comes when its batch has waited this long writes the batch with it: the
# timer would end the batch within FLUSH_INTERVAL - this anyway, and writing from the
# request's greenlet spares the event loop a wake-up for the timer (an epoll_wait and
# libev's getpid: under steady load, one per batch; issue 21).
FLUSH_IN_LINE_AFTER = 0.9
# A batch this long is written at once, timer or not: it bounds the memory held and the
# size of one write (a line is about a hundred bytes, at most the request's URI more).
# Sequential requests come about 400 a second: at 128 lines a batch, their writes were
# 0.008 of a request's system calls (issue 21's limit is 6, and 6 are the floor).
FLUSH_LINES = 512

# What Django's DEFAULT_LOGGING gives django.server's formatter (django/utils/log.py).
DJANGO_SERVER_FORMAT = "[{server_time}] {message}"
DJANGO_TIME_FORMAT = "%d/%b/%Y %H:%M:%S"
DJANGO_MSEC_FORMAT = "%s,%03d"

# REMOTE_ADDR "METHOD URI PROTOCOL" STATUS BYTES SECONDS -- docs/production.rst gives the
# regex and a test holds it.
MESSAGE = "%s %s %d %d %.3f"

_NO_LOCK = contextlib.nullcontext()

# Bound once: a global lookup per request instead of two (the fast path counts them).
_wall_clock, _monotonic = time.time, time.monotonic


class AccessLog:
    """One server's access lines: the fast default output or a LogRecord each."""

    # log(exchange): the access line of ``exchange`` (the caller checks that the log is
    # on). The fast output's own method when it applies: one call per request.
    log: Callable[[Exchange], None]

    def __init__(self, logger: logging.Logger = access_logger) -> None:
        self.logger = logger
        self.output = DefaultOutput.for_logger(logger, self._configuration_changed)
        self.log = self.output.add if self.output is not None else self.log_record
        _open_logs.add(self)

    def _configuration_changed(self) -> None:
        """The fast output no longer applies (its last batch is written): records from now."""
        self.output = None
        self.log = self.log_record

    def log_record(self, exchange: Exchange) -> None:
        """The access line as a LogRecord (any configuration but Django's default)."""
        environ = exchange.environ
        if environ is not None and self.logger.isEnabledFor(logging.INFO):
            log_record(self.logger, exchange, environ)

    def flush(self) -> None:
        """Write the waiting lines now."""
        if self.output is not None:
            self.output.flush()

    def close(self) -> None:
        """Write the waiting lines and stop the timer (the server has stopped)."""
        if self.output is not None:
            self.output.close()
        _open_logs.discard(self)


class DefaultOutput:
    """Django's default ``django.server`` output, formatted here and written in batches."""

    def __init__(self, logger: logging.Logger, handler: logging.StreamHandler[Any],
                 on_stale: Callable[[], None]) -> None:
        self.logger = logger
        self.on_stale = on_stale  # called once the configuration is not the default's any more
        self.handler = handler
        self.formatter = handler.formatter
        # None: no colours (not a terminal); else Django's Style, used as the formatter does.
        style = getattr(handler.formatter, "style", None)
        self.style = None if _plain(style) else style
        self.lines: list[str] = []
        self.last_write = 0.0  # time.monotonic() of the last write
        # time.monotonic() from which a line added to the batch writes it (add()).
        self.due = 0.0
        self.timer: Any = None  # the gevent timer that ends a batch, made on first use
        self.owner = 0  # the ident of the serving thread, whose loop has the timer
        # The second that self.stamp was formatted for: [start, end).
        self.second_start = self.second_end = 0.0
        self.stamp = ""
        # The usual line in C, unless coloured (colours are for terminals: rare and slow).
        self.c_line = _c_access_line if self.style is None else None

    @classmethod
    def for_logger(cls, logger: logging.Logger,
                   on_stale: Callable[[], None]) -> DefaultOutput | None:
        """The fast output when ``logger`` is configured as Django's default, else None."""
        handler = default_handler(logger)
        return None if handler is None else cls(logger, handler, on_stale)

    def applies(self) -> bool:
        """Whether the configuration checked at start-up is still in place.

        What logging.config and the handler and logger methods change: a new
        configuration (dictConfig replaces handlers and formatters), an added filter or
        handler, levels, propagation, logging.disable(). Checked after each batch, so
        cheap: default_handler() ran once, at start-up.
        """
        handler, logger = self.handler, self.logger
        handlers = logger.handlers
        return (len(handlers) == 1 and handlers[0] is handler
                and handler.formatter is self.formatter and not handler.filters
                and handler.level <= logging.INFO and not logger.filters
                and not logger.propagate and not logger.disabled
                and logger.isEnabledFor(logging.INFO))

    def add(self, exchange: Exchange) -> None:
        """Format the line as ServerFormatter would and queue it (or write it at once)."""
        now = _wall_clock()  # the record's time: LogRecord takes time.time() too
        if not self.second_start <= now < self.second_end:
            self._new_second(now)
        mono = _monotonic()
        duration = mono - exchange.started
        c_line = self.c_line
        # environ's masking words (SCGI_MASK_WORDS): the C side leaves a query that holds
        # one to request_line(), which masks it.
        if c_line is None or (line := c_line(
                self.stamp, now, exchange.environ, exchange.status, exchange.bytes_sent,
                duration, logtext._secret_words)) is None:
            if exchange.environ is None:  # no request read: no line
                return
            line = self._line(exchange, exchange.environ, now, duration)
        lines = self.lines
        lines.append(line)
        count = len(lines)
        if count == 1:
            self._schedule(mono)
        elif count >= FLUSH_LINES or mono >= self.due:
            self.flush()

    def _line(self, exchange: Exchange, environ: dict[str, Any], now: float,
              duration: float) -> str:
        if self.style is None:
            return default_line(self.stamp, now, environ, exchange.status, exchange.bytes_sent,
                                duration)
        return coloured_line(self.style, self.stamp, now, environ, exchange.status,
                             exchange.bytes_sent, duration)

    def _new_second(self, now: float) -> None:
        # Formatter.formatTime(): strftime of converter(created), the same all second.
        second = int(now)
        self.second_start, self.second_end = float(second), float(second + 1)
        self.stamp = time.strftime(DJANGO_TIME_FORMAT, time.localtime(now))

    def _schedule(self, now: float) -> None:
        """The first line of a batch (``now``: time.monotonic()): at once when the log
        was quiet, else on a timer, or with a line that comes once it is nearly due."""
        if self.last_write + FLUSH_INTERVAL <= now:
            self.flush()
            return
        self.due = now + FLUSH_IN_LINE_AFTER
        timer = self.timer
        if timer is None:
            gevent = sys.modules.get("gevent")
            if gevent is None:  # not served by gevent (an embedding): no batches
                self.flush()
                return
            # One watcher, made once: again() starts it FLUSH_INTERVAL from now (libev's
            # ev_timer_again, with the repeat value), flush() stops it. start() would
            # not do: libev starts a stopped timer from where it stopped, which for one
            # that has fired is "due already".
            timer = self.timer = gevent.get_hub().loop.timer(
                FLUSH_INTERVAL, FLUSH_INTERVAL, ref=False)
            self.owner = threading.get_ident()
        timer.again(self.flush)

    def flush(self) -> None:
        """Write every waiting line, in order, in one write, as the handler would."""
        if self.lines:
            self._write()
        # After the write: at exit the loop may be half gone, and the lines come first.
        timer = self.timer
        if timer is not None and self.owner == threading.get_ident():
            timer.stop()

    def _write(self) -> None:
        lines, self.lines = self.lines, []
        self.last_write = time.monotonic()
        handler = self.handler
        # The handler's lock, as Handler.handle() takes it around emit() (the handler is
        # exactly a StreamHandler: nothing overrides acquire()).
        with handler.lock or _NO_LOCK:
            try:
                # What emit() does per record, once per batch; the stream's flush directly
                # (StreamHandler.flush() would take the lock a second time).
                stream = handler.stream
                stream.write("".join(lines))
                if stream and hasattr(stream, "flush"):
                    stream.flush()
            except RecursionError:
                raise
            except Exception:
                handler.handleError(_record_for(lines))
        if not self.applies():
            self.on_stale()

    def close(self) -> None:
        self.flush()
        if self.timer is not None and self.owner == threading.get_ident():
            self.timer.close()
            self.timer = None


def default_handler(logger: logging.Logger) -> logging.StreamHandler[Any] | None:
    """``logger``'s one handler when it is exactly Django's default, else None.

    Exact types, Django's format and time formats, no filters, no propagation, the
    standard record factory: then the records would only ever be formatted by this
    handler, and the fast output gives the same bytes in the same order.
    """
    handlers = logger.handlers
    if (len(handlers) != 1 or logger.filters or logger.propagate or logger.disabled
            or type(logger) is not logging.Logger
            or logging.getLogRecordFactory() is not logging.LogRecord):
        return None
    handler = handlers[0]
    if (type(handler) is not logging.StreamHandler or handler.filters
            or handler.level > logging.INFO or handler.terminator != "\n"
            or _overridden(handler, ("emit", "handle", "format", "flush"))
            or not _is_django_server_formatter(handler.formatter)):
        return None
    return handler


def _is_django_server_formatter(formatter: Any) -> bool:
    """Whether ``formatter`` is DEFAULT_LOGGING's ``django.server`` formatter, untouched."""
    formatter_cls = getattr(sys.modules.get("django.utils.log"), "ServerFormatter", None)
    return (formatter_cls is not None and type(formatter) is formatter_cls
            and type(formatter._style) is logging.StrFormatStyle
            and formatter._fmt == DJANGO_SERVER_FORMAT and formatter.datefmt is None
            and formatter.default_time_format == DJANGO_TIME_FORMAT
            and formatter.default_msec_format == DJANGO_MSEC_FORMAT
            and formatter.converter is time.localtime
            and not getattr(formatter._style, "_defaults", None)
            and not _overridden(formatter, ("format", "formatTime", "formatMessage")))


def _overridden(obj: object, names: tuple[str, ...]) -> bool:
    """Whether an instance attribute shadows one of the class's methods."""
    return any(name in vars(obj) for name in names)


def _plain(style: Any) -> bool:
    """Whether Django's colour style leaves every HTTP_* message as it is (no terminal)."""
    probe = "%s"
    return all(getattr(style, role, None) is not None and getattr(style, role)(probe) == probe
               for role in _ROLES)


_ROLES = ("HTTP_SUCCESS", "HTTP_INFO", "HTTP_NOT_MODIFIED", "HTTP_REDIRECT",
          "HTTP_NOT_FOUND", "HTTP_BAD_REQUEST", "HTTP_SERVER_ERROR")


def _colour(style: Any, code: int, message: str) -> str:
    """``message`` coloured for ``code`` as ServerFormatter.format() colours it."""
    role: Callable[[str], str]
    if not code:
        return message
    if 200 <= code < 300:
        role = style.HTTP_SUCCESS
    elif 100 <= code < 200:
        role = style.HTTP_INFO
    elif code == 304:
        role = style.HTTP_NOT_MODIFIED
    elif 300 <= code < 400:
        role = style.HTTP_REDIRECT
    elif code == 404:
        role = style.HTTP_NOT_FOUND
    elif 400 <= code < 500:
        role = style.HTTP_BAD_REQUEST
    else:
        role = style.HTTP_SERVER_ERROR
    return role(message)


if sys.version_info >= (3, 13):
    def _msecs(now: float) -> int:
        # 3.13's LogRecord takes time_ns() and its millisecond part; from a float
        # the same digits, short of a rounding at the last nanosecond.
        return int(now * 1000) % 1000
else:
    def _msecs(now: float) -> int:
        return int((now - int(now)) * 1000)  # LogRecord.__init__ (gh-89047)


def default_line(stamp: str, now: float, environ: dict[str, Any], status: str | None,
                 bytes_sent: int, duration: float) -> str:
    """The line Django's default handler writes for the access record, colourless.

    "[{server_time}] {message}": the record's time as Formatter.formatTime() gives it
    (``stamp`` is its strftime part), the message as getMessage() does. The C function
    ``_speedups.access_line`` agrees with this for the usual request, else answers None.
    """
    args = (_remote(environ), request_line(environ), status_code(status), bytes_sent, duration)
    return f"[{stamp},{_msecs(now):03d}] {MESSAGE % args}\n"


def coloured_line(style: Any, stamp: str, now: float, environ: dict[str, Any],
                  status: str | None, bytes_sent: int, duration: float) -> str:
    """default_line() with the message coloured first, as ServerFormatter.format() does."""
    code = status_code(status)
    args = (_remote(environ), request_line(environ), code, bytes_sent, duration)
    return f"[{stamp},{_msecs(now):03d}] {_colour(style, code, MESSAGE) % args}\n"


def _record_for(lines: list[str]) -> logging.LogRecord:
    """A record for handleError(): what failed to be written."""
    return logging.LogRecord(access_logger.name, logging.INFO, __file__, 0,
                             "%s", ("".join(lines),), None)


def _remote(environ: dict[str, Any]) -> str:
    # Every field is one token: request_line() escapes spaces, quotes and control
    # characters, and so does this for the peer.
    remote = str(environ.get("REMOTE_ADDR") or "-")
    if not (remote.isascii() and remote.isprintable()) or " " in remote or '"' in remote:
        remote = quote(remote, safe="")
    return remote


def log_record(logger: logging.Logger, exchange: Exchange, environ: dict[str, Any]) -> None:
    """The access line as a LogRecord, for any configuration but Django's default."""
    # BYTES counts what went to the front-end, head included; STATUS 0: no response.
    code = status_code(exchange.status)
    remote = _remote(environ)
    line = request_line(environ)
    method, _, rest = line[1:-1].partition(" ")
    uri, _, protocol_ = rest.rpartition(" ")
    duration = time.monotonic() - exchange.started
    # makeRecord() + handle() is what info() does, minus findCaller(): walking the
    # stack for a source line that an access line never shows cost about a third
    # of the whole access log's price per request.
    record = logger.makeRecord(
        logger.name, logging.INFO, __file__, 0, MESSAGE,
        (remote, line, code, exchange.bytes_sent, duration), None,
        # For structured (JSON) formatters; status_code drives Django's colours.
        extra={"status_code": code, "remote_addr": remote, "request_method": method,
               "request_uri": uri, "server_protocol": protocol_,
               "response_bytes": exchange.bytes_sent, "duration": duration},
    )
    logger.handle(record)


def status_code(status: str | None) -> int:
    """The numeric code of a WSGI status line; 0 when there is none (no response)."""
    try:
        return int(status[:3])  # type: ignore[index]
    except (TypeError, ValueError):
        return 0


# Every AccessLog not closed yet: written out when the interpreter exits another way
# (SystemExit from a view, the autoreloader's sys.exit(3), an unhandled exception).
_open_logs: weakref.WeakSet[AccessLog] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for log in list(_open_logs):
        try:
            if log.output is not None:
                log.output.flush()
        except Exception:  # the stream may be gone at exit: nothing more to do
            pass
