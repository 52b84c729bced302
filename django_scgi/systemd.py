"""The two halves of systemd's protocol a service speaks: socket activation and sd_notify.

``listen_fds()`` is ``sd_listen_fds(unset_environment=1)`` with the names of
``sd_listen_fds_with_names()``: the listening sockets systemd (or any parent following
the same convention) passed as file descriptors 3, 4, … with ``LISTEN_FDS``,
``LISTEN_PID`` and optionally ``LISTEN_FDNAMES`` in the environment.

``notify()`` is ``sd_notify()``: one datagram of ``KEY=VALUE`` lines to the unix socket
named by ``NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract namespace), a no-op when
the variable is not set.

Imports: stdlib only; no libsystemd needed.
"""

from __future__ import annotations

import logging
import os
import socket
import time

logger = logging.getLogger(__name__)

# sd-daemon.h: SD_LISTEN_FDS_START, the first descriptor passed by socket activation.
LISTEN_FDS_START = 3
LISTEN_VARIABLES = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


def listen_fds(unset_environment: bool = True) -> list[tuple[int, str]]:
    """``[(fd, name), …]`` passed to this process; ``[]`` when none were.

    The descriptors count only when ``LISTEN_PID`` is this process's PID: a child that
    inherited the variables (and not the sockets) must not adopt random descriptors.
    The variables are removed from the environment (unless told otherwise), so that
    processes we start do not see them.
    """
    environ = os.environ
    try:
        pid = int(environ.get("LISTEN_PID", ""))
        count = int(environ.get("LISTEN_FDS", ""))
    except ValueError:
        pid, count = 0, 0
    names = environ.get("LISTEN_FDNAMES", "").split(":") if "LISTEN_FDNAMES" in environ else []
    if unset_environment:
        for name in LISTEN_VARIABLES:
            environ.pop(name, None)
    if pid != os.getpid() or count <= 0:
        return []
    fds = range(LISTEN_FDS_START, LISTEN_FDS_START + count)
    if len(names) != count:
        names = ["unknown"] * count  # what sd_listen_fds_with_names() reports
    return list(zip(fds, names))


def notify_socket_address(value: str | None = None) -> str | bytes | None:
    """The address ``NOTIFY_SOCKET`` names: a path, or ``@name`` as an abstract address."""
    value = os.environ.get("NOTIFY_SOCKET") if value is None else value
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock: and relative paths: not for us


def notify(*lines: str) -> bool:
    """Send ``lines`` (``"READY=1"``, ``"STATUS=…"``) to systemd; True when sent.

    Never raises: a service must not fail because its manager stopped listening.
    """
    address = notify_socket_address()
    if address is None:
        return False
    message = "\n".join(lines).encode("utf-8", "replace")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message)
    except OSError as error:
        logger.warning("Could not notify systemd (%s): %s", os.environ.get("NOTIFY_SOCKET"), error)
        return False
    return True


def ready(status: str = "") -> bool:
    return notify("READY=1", *([f"STATUS={status}"] if status else []))


def reloading() -> bool:
    # Type=notify-reload (systemd 253+) wants the monotonic time with RELOADING=1.
    return notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")


def stopping() -> bool:
    return notify("STOPPING=1")
