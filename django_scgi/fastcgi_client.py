"""A small blocking FastCGI client: health probes, debugging, tests.

``python -m django_scgi.fastcgi_client ADDRESS [PATH]`` sends one request the way a bare
front-end would and prints the response, with the exit codes of ``django_scgi.client``
(0 below 500, 1 for a 5xx, 2 unreachable / timed out / not a FastCGI answer).

In code, :class:`Connection` keeps one connection open for several requests
(``FCGI_KEEP_CONN``), asks ``FCGI_GET_VALUES`` and exposes the raw steps (begin, send
the body, abort, read the answer) that tests need to play a hostile or slow peer.

Imports: stdlib, ``fastcgi`` (the records) and ``client`` (addresses, the CGI
variables of a request, the CGI response parser), which import stdlib and
``protocol`` only.
"""

from __future__ import annotations

import argparse
import dataclasses
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from . import fastcgi
from .client import (
    EXIT_OK,
    EXIT_SERVER_ERROR,
    EXIT_UNREACHABLE,
    ClientError,
    Response,
    build_environ,
    connect,
    parse_response,
)
from .protocol import ProtocolError, _NeedData

Wanted = Callable[["fastcgi.ClientEvent"], bool]

__all__ = ["ClientError", "Connection", "Exchange", "FastCGIResponse", "main", "request"]

RECV_SIZE = 64 * 1024


@dataclasses.dataclass
class Exchange:
    """What came back for one request id: its STDOUT and STDERR streams and the
    END_REQUEST (None if the server closed the connection before it)."""

    stdout: bytes
    stderr: bytes
    end: fastcgi.EndRequest | None


@dataclasses.dataclass
class FastCGIResponse(Response):
    stderr: bytes = b""
    app_status: int = 0


class Connection:
    """One connection to a FastCGI server; requests are sent one after another."""

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        self.address, self.timeout = address, timeout
        self.sock = connect(address, timeout)
        if self.sock.family != socket.AF_UNIX:
            # A request goes out in several writes (head, body records): without this,
            # Nagle's algorithm holds each small one for the previous one's ACK.
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._parser = fastcgi.ResponseParser()
        # Events read while waiting for another request id or for values.
        self._backlog: list[fastcgi.ClientEvent] = []
        self.closed_by_server = False

    def __enter__(self) -> Connection:  # noqa: PYI034 -- typing.Self is 3.11+
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    # ---- whole requests

    def request(
        self, path: str = "/", *, method: str = "GET", body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        keep_conn: bool = True, request_id: int = 1, role: int = fastcgi.Role.RESPONDER,
    ) -> FastCGIResponse:
        """Send one request, read its answer; the connection stays open with
        ``keep_conn`` (the default here)."""
        if environ is None:
            environ = build_environ(path, method, headers, body_length=len(body))
            environ["CONTENT_LENGTH"] = str(len(body))
        self.begin(request_id, environ, keep_conn=keep_conn, role=role)
        self.send_body(request_id, body, end=True)
        return to_response(self.read_exchange(request_id))

    def get_values(self, names: Iterable[str]) -> dict[str, str]:
        self.send(fastcgi.encode_get_values(names))
        event = self._wait_for(lambda e: isinstance(e, fastcgi.ValuesResult))
        assert isinstance(event, fastcgi.ValuesResult)
        return event.values

    # ---- the steps

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise ClientError("timed out sending") from None
        except OSError as error:
            raise ClientError(f"sending failed: {error.strerror or error}") from None

    def begin(self, request_id: int, environ: Mapping[str, str] | Iterable[tuple[str, str]],
              *, keep_conn: bool = True, role: int = fastcgi.Role.RESPONDER) -> None:
        """BEGIN_REQUEST and the whole PARAMS stream."""
        self.send(fastcgi.encode_begin_request(request_id, role, keep_conn)
                  + fastcgi.encode_params(request_id, environ))

    def send_body(self, request_id: int, data: bytes, *, end: bool = False) -> None:
        """STDIN records with ``data``; with ``end``, the empty one that ends the body."""
        out = fastcgi.encode_stdin(request_id, data)
        if end:
            out += fastcgi.encode_record(fastcgi.RecordType.STDIN, request_id)
        self.send(out)

    def abort(self, request_id: int) -> None:
        self.send(fastcgi.encode_record(fastcgi.RecordType.ABORT_REQUEST, request_id))

    def read_exchange(self, request_id: int) -> Exchange:
        """Read until the END_REQUEST of ``request_id`` (or the server's close)."""
        stdout, stderr = bytearray(), bytearray()
        while True:
            event = self._wait_for(lambda e: getattr(e, "request_id", None) == request_id,
                                   eof_ok=True)
            if event is None:
                return Exchange(bytes(stdout), bytes(stderr), None)
            if isinstance(event, fastcgi.Stdout):
                stdout += event.data
            elif isinstance(event, fastcgi.Stderr):
                stderr += event.data
            elif isinstance(event, fastcgi.EndRequest):
                return Exchange(bytes(stdout), bytes(stderr), event)

    def read_first_stdout(self, request_id: int) -> bytes:
        """The data of the next non-empty STDOUT record of ``request_id`` (streaming)."""
        while True:
            event = self._wait_for(lambda e: getattr(e, "request_id", None) == request_id)
            if isinstance(event, fastcgi.Stdout) and event.data:
                return event.data
            if isinstance(event, fastcgi.EndRequest):
                raise ClientError("the request ended without output")

    def _wait_for(self, wanted: Wanted, eof_ok: bool = False) -> fastcgi.ClientEvent | None:
        for index, event in enumerate(self._backlog):
            if wanted(event):
                return self._backlog.pop(index)
        deadline = time.monotonic() + self.timeout
        while True:
            event = self._next_event(deadline)
            if isinstance(event, fastcgi.ConnectionClosed):
                self.closed_by_server = True
                if eof_ok:
                    return None
                raise ClientError("the server closed the connection")
            if wanted(event):
                return event
            self._backlog.append(event)

    def _next_event(self, deadline: float) -> fastcgi.ClientEvent:
        while True:
            try:
                event = self._parser.next_event()
            except ProtocolError as error:
                raise ClientError(f"not a FastCGI answer: {error}") from None
            if not isinstance(event, _NeedData):
                return event
            self._parser.receive_data(self._recv(deadline))

    def _recv(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ClientError("timed out waiting for the response")
        self.sock.settimeout(remaining)
        try:
            return self.sock.recv(RECV_SIZE)
        except TimeoutError:
            raise ClientError("timed out waiting for the response") from None
        except ConnectionResetError:
            return b""  # a reset ends the stream like a close; the caller judges it


def to_response(exchange: Exchange) -> FastCGIResponse:
    """The CGI response in an exchange's STDOUT, with its STDERR and app status."""
    if exchange.end is None:
        raise ClientError("the server closed the connection before END_REQUEST")
    status = exchange.end.protocol_status
    if status != fastcgi.ProtocolStatus.REQUEST_COMPLETE:
        raise ClientError(f"the server refused the request: "
                          f"{fastcgi.ProtocolStatus(status).name}")
    response = parse_response(exchange.stdout)
    return FastCGIResponse(response.status, response.reason, response.headers, response.body,
                           exchange.stderr, exchange.end.app_status)


def request(
    address: str, path: str = "/", *, method: str = "GET", body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    timeout: float = 10.0,
) -> FastCGIResponse:
    """One request on its own connection, without KEEP_CONN (the server closes)."""
    with Connection(address, timeout) as conn:
        return conn.request(path, method=method, body=body, headers=headers,
                            environ=environ, keep_conn=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m django_scgi.fastcgi_client",
        description="Send one FastCGI request and print the response. Exit status: 0 "
        "below 500, 1 for a 5xx, 2 when unreachable, timed out or not a FastCGI answer.",
    )
    parser.add_argument("address", help="HOST:PORT, [V6]:PORT, PORT or unix:PATH")
    parser.add_argument("path", nargs="?", default="/", help="request path and query")
    parser.add_argument("-X", "--method", default="GET")
    parser.add_argument("-d", "--data", default=None, help="request body (implies POST)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    args = parser.parse_args(argv)
    body = args.data.encode() if args.data is not None else b""
    method = "POST" if args.data is not None and args.method == "GET" else args.method
    try:
        response = request(args.address, args.path, method=method, body=body,
                           timeout=args.timeout)
    except ClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if not args.quiet:
        _print(response)
    return EXIT_SERVER_ERROR if response.status >= 500 else EXIT_OK


def _print(response: FastCGIResponse) -> None:
    out = sys.stdout.buffer
    out.write(f"Status: {response.status} {response.reason}\n".encode("latin-1"))
    for name, value in response.headers:
        out.write(f"{name}: {value}\n".encode("latin-1"))
    out.write(b"\n" + response.body)
    out.flush()
    if response.stderr:
        sys.stderr.buffer.write(response.stderr)


if __name__ == "__main__":
    sys.exit(main())

