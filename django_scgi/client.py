"""A small blocking SCGI client: health probes, debugging, tests.

``python -m django_scgi.client ADDRESS [PATH]`` sends one request the way a bare
front-end would (``REQUEST_URI`` and the usual CGI variables), prints the response
and exits 0 for a status below 500 other than 400, 1 for a 5xx or a 400, 2 when the
server could not be reached, timed out or answered with something that is not a CGI
response. That makes it a Docker ``HEALTHCHECK``.

A 400 is not healthy: it is what Django answers when the Host is not in
``ALLOWED_HOSTS`` (``DisallowedHost``), so a probe that gets one proves nothing about the
site. The Host sent is ``--host``, else the first name of the project's
``ALLOWED_HOSTS`` (read only by the command line, when ``DJANGO_SETTINGS_MODULE`` is
set), else the address's host (``localhost`` for a unix socket or a wildcard address).

Imports: stdlib and ``protocol`` only (the command line's ``ALLOWED_HOSTS`` lookup
imports Django's settings inside a function, never at import).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import sys
import time
from collections.abc import Iterator, Mapping, Sequence

from .protocol import encode_request
from .response_head import parse_response_head

EXIT_OK, EXIT_SERVER_ERROR, EXIT_UNREACHABLE = 0, 1, 2
RECV_SIZE = 64 * 1024


class ClientError(Exception):
    """The server could not be reached, timed out or answered nonsense."""


@dataclasses.dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return default

    def header_list(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


def connect(address: str, timeout: float) -> socket.socket:
    """Connect to ``HOST:PORT``, ``[V6]:PORT``, ``PORT`` or ``unix:PATH``."""
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: str | tuple[str, int] = address[5:]
    else:
        host, port = _split_host_port(address)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        target = (host, port)
    sock.settimeout(timeout)
    try:
        sock.connect(target)
    except OSError as error:
        sock.close()
        raise ClientError(f"cannot connect to {address}: {error.strerror or error}") from None
    return sock


def _split_host_port(address: str) -> tuple[str, int]:
    if address.isdigit():
        return "127.0.0.1", int(address)
    host, _, port = address.rpartition(":")
    if not port.isdigit() or not host:
        raise ClientError(f"{address!r} is not HOST:PORT, [V6]:PORT, PORT or unix:PATH")
    return host.strip("[]"), int(port)


def build_environ(
    path: str, method: str = "GET", headers: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None, body_length: int = 0, host: str = "localhost",
) -> dict[str, str]:
    """CGI variables for ``path`` as a minimal front-end sends them, for ``host``."""
    _, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": method,
        "REQUEST_URI": path,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": _without_port(host),
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": host,
    }
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
        else:
            environ["HTTP_" + key] = value
    environ.update(extra or {})
    return environ


def _without_port(host: str) -> str:
    """``example.com:8000`` -> ``example.com``; ``[::1]:80`` -> ``[::1]``."""
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and (not name.startswith("[") or name.endswith("]")):
        return name
    return host


def request(
    address: str, path: str = "/", *, method: str = "GET", body: bytes = b"",
    headers: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None,
    timeout: float = 10.0, host: str = "localhost",
) -> Response:
    """Send one request and read the whole response (the server closes to end it)."""
    cgi = environ if environ is not None else build_environ(path, method, headers, host=host)
    deadline = time.monotonic() + timeout
    with connect(address, timeout) as sock:
        _send_request(sock, encode_request(cgi, body))
        data = b"".join(_receive_all(sock, deadline))
    return parse_response(data)


def _send_request(sock: socket.socket, data: bytes) -> None:
    # A server may answer before it has read the whole body (413 for a body over its
    # limit) and stop reading: the send then fails, but the answer is waiting to be read.
    try:
        sock.sendall(data)
    except TimeoutError:
        raise ClientError("timed out sending the request") from None
    except OSError:
        pass  # EPIPE / ECONNRESET: _receive_all() finds the answer or reports the reset


def _receive_all(sock: socket.socket, deadline: float) -> Iterator[bytes]:
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ClientError("timed out waiting for the response")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(RECV_SIZE)
        except TimeoutError:
            raise ClientError("timed out waiting for the response") from None
        except ConnectionResetError:
            raise ClientError("the server reset the connection") from None
        if not chunk:
            return
        yield chunk


def parse_response(data: bytes) -> Response:
    if not data:
        raise ClientError("the server closed the connection without a response")
    try:
        head = parse_response_head(data, max_size=len(data) + 1)
    except ValueError as error:
        raise ClientError(f"not a CGI response: {error}") from None
    if head is None:
        raise ClientError("the response ended inside its head")
    return Response(head.status, head.reason, head.headers, data[head.body_offset :])


# Addresses that name every interface: not a name a project lists in ALLOWED_HOSTS.
_WILDCARDS = ("0.0.0.0", "::", "")


def host_for_address(address: str) -> str:
    """The Host for a probe of ``address`` when nothing better is known."""
    if address.startswith("unix:") or address.isdigit():
        return "localhost" if not address.isdigit() else "127.0.0.1"
    host = address.rpartition(":")[0].strip("[]")
    if host in _WILDCARDS:
        return "localhost"
    return f"[{host}]" if ":" in host else host


def allowed_host_from_settings() -> str | None:
    """The first concrete name in the project's ALLOWED_HOSTS, or None.

    Only when DJANGO_SETTINGS_MODULE is set; any failure to load the settings is None
    (the probe then uses the address). ``.example.com`` means example.com too; ``*``
    names nothing.
    """
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return None
    try:
        from django.conf import settings

        hosts = [str(host) for host in settings.ALLOWED_HOSTS]
    except Exception:
        return None
    for host in hosts:
        name = host.strip().lstrip(".")
        if name and name != "*":
            return name
    return None


def _parse_headers(parser: argparse.ArgumentParser, values: Sequence[str]) -> dict[str, str]:
    headers = {}
    for item in values:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            # parser.error() exits 2 like any usage error; a bare SystemExit(text) would
            # exit 1, which this command reserves for a 5xx answer.
            parser.error(f"-H {item!r}: write 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def _seconds(text: str) -> float:
    # 0 would make the socket non-blocking and a negative value raises ValueError deep
    # inside socket.settimeout(): refuse both as usage errors (exit 2).
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m django_scgi.client",
        description="Send one SCGI request and print the response. Exit status: 0 below "
        "500, 1 for a 5xx or a 400 (DisallowedHost: the Host is not in ALLOWED_HOSTS), 2 "
        "when unreachable, timed out or not a CGI response.",
    )
    parser.add_argument("address", help="HOST:PORT, [V6]:PORT, PORT or unix:PATH")
    parser.add_argument("path", nargs="?", default="/", help="request path and query")
    parser.add_argument("-X", "--method", default="GET")
    parser.add_argument("-H", "--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("-d", "--data", default=None, help="request body (implies POST)")
    parser.add_argument("--timeout", type=_seconds, default=10.0, help="seconds (default 10)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    parser.add_argument("--host", default=None,
                        help="Host header to send (default: the first name in the project's "
                        "ALLOWED_HOSTS when DJANGO_SETTINGS_MODULE is set, else the "
                        "address's host, localhost for a unix socket)")
    args = parser.parse_args(argv)
    host = args.host or allowed_host_from_settings() or host_for_address(args.address)
    body = args.data.encode() if args.data is not None else b""
    method = "POST" if args.data is not None and args.method == "GET" else args.method
    headers = _parse_headers(parser, args.header)
    try:
        response = request(args.address, args.path, method=method, body=body,
                           headers=headers, timeout=args.timeout, host=host)
    except ClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if not args.quiet:
        _print_response(response)
        if response.status == 400:
            print(f"error: 400 for Host {host!r}: is it in ALLOWED_HOSTS? (--host NAME)",
                  file=sys.stderr)
    return EXIT_SERVER_ERROR if is_unhealthy(response.status) else EXIT_OK


def is_unhealthy(status: int) -> bool:
    """5xx, or 400: Django's answer to a Host it does not serve (DisallowedHost)."""
    return status >= 500 or status == 400


def _print_response(response: Response) -> None:
    out = sys.stdout.buffer
    out.write(f"Status: {response.status} {response.reason}\n".encode("latin-1"))
    for name, value in response.headers:
        out.write(f"{name}: {value}\n".encode("latin-1"))
    out.write(b"\n" + response.body)
    if response.body and not response.body.endswith(b"\n"):
        out.write(b"\n")
    out.flush()


if __name__ == "__main__":
    sys.exit(main())
