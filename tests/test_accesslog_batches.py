"""The default access output's batches, in process: when a batch is written.

The output is driven with its clock set by the test (``accesslog._monotonic``), so no
assertion depends on how fast the machine is; the handler is Django's default one for
``django.server``, writing to a ``StringIO``.
"""

from __future__ import annotations

import io
import logging
from types import SimpleNamespace

import pytest
from django.utils.log import ServerFormatter

from django_scgi.server import accesslog


@pytest.fixture
def output(monkeypatch, request):
    """A DefaultOutput over a logger configured as DEFAULT_LOGGING configures
    django.server, its stream, and a function that sets the output's clock."""
    logger = logging.getLogger(f"django_scgi.tests.{request.node.name}")
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ServerFormatter(fmt="[{server_time}] {message}", style="{"))
    logger.addHandler(handler)
    output = accesslog.DefaultOutput.for_logger(logger, lambda: None)
    assert output is not None  # Django's default configuration: the fast output
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(accesslog, "_monotonic", lambda: clock.now)

    def at(now: float) -> None:
        clock.now = now

    yield output, stream, at
    output.close()
    logger.removeHandler(handler)


def exchange(number: int) -> SimpleNamespace:
    environ = {"REMOTE_ADDR": "127.0.0.1", "REQUEST_METHOD": "GET",
               "REQUEST_URI": f"/{number}", "SERVER_PROTOCOL": "HTTP/1.1"}
    return SimpleNamespace(environ=environ, status="200 OK", bytes_sent=10, started=999.0)


def test_a_line_for_a_nearly_due_batch_writes_it_without_the_timer(output):
    output, stream, at = output
    output.last_write = 999.9  # a write 0.1 s ago: the next lines are batched
    at(1000.0)
    output.add(exchange(1))
    assert stream.getvalue() == ""
    assert output.timer is not None and output.timer.active  # due FLUSH_INTERVAL later
    at(1000.0 + accesslog.FLUSH_IN_LINE_AFTER / 2)
    output.add(exchange(2))
    assert stream.getvalue() == ""
    at(1000.0 + accesslog.FLUSH_IN_LINE_AFTER)
    output.add(exchange(3))
    # Written by the third line, all three in order, and the timer stopped.
    assert [line.split()[4] for line in stream.getvalue().splitlines()] == ["/1", "/2", "/3"]
    assert not output.timer.active
    assert output.lines == []


def test_a_line_after_a_quiet_spell_is_written_at_once(output):
    output, stream, at = output
    output.last_write = 1000.0 - accesslog.FLUSH_INTERVAL
    at(1000.0)
    output.add(exchange(1))
    assert stream.getvalue().split()[4] == "/1"
