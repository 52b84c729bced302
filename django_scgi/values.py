"""The value types of the options: listen addresses, ports, durations, file modes,
networks, words. Each takes a CLI string or a setting's native value and returns the
value the server uses, or raises ``ConfigError`` with a sentence for the user.
Standard library only.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Sequence
from typing import Any

DEFAULT_PORT = 4000
DEFAULT_HOST = "127.0.0.1"


class ConfigError(ValueError):
    """An option value that cannot be used; the message is a sentence for the user."""


# --- addresses -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TCPAddress:
    host: str
    port: int

    @property
    def family_is_v6(self) -> bool:
        return ":" in self.host

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.family_is_v6 else f"{self.host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class UnixAddress:
    path: str

    def __str__(self) -> str:
        return f"unix:{self.path}"


@dataclasses.dataclass(frozen=True)
class FDAddress:
    """A listening socket inherited from a parent process (``fd:3``)."""

    fd: int

    def __str__(self) -> str:
        return f"fd:{self.fd}"


Address = TCPAddress | UnixAddress | FDAddress


def parse_address(text: str | int) -> Address:
    """Parse ``PORT``, ``HOST:PORT``, ``[V6]:PORT``, ``unix:PATH`` or ``fd:N``."""
    text = str(text).strip()
    if text.startswith("unix:"):
        return _parse_unix(text[5:])
    if text.startswith("fd:"):
        return _parse_fd(text[3:])
    if _is_number(text):
        return TCPAddress(DEFAULT_HOST, _parse_port(text, text))
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ConfigError(f"{text!r} is not an address: write [IPV6]:PORT, e.g. [::1]:4000.")
        return TCPAddress(_parse_ip(host, text, v6=True), _parse_port(port, text))
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(
            f"{text!r} is not an address: write PORT, HOST:PORT, [IPV6]:PORT or unix:PATH."
        )
    return TCPAddress(_parse_host(host, text), _parse_port(port, text))


def _parse_unix(path: str) -> UnixAddress:
    if not path:
        raise ConfigError("unix: needs a path, e.g. unix:/run/myapp/scgi.sock.")
    # sun_path holds 108 bytes on Linux including the terminating NUL.
    if len(os.fsencode(path)) > 107:
        raise ConfigError(f"The unix socket path {path!r} is longer than the 107 bytes allowed.")
    return UnixAddress(path)


def _is_number(text: str) -> bool:
    # ASCII digits only: str.isdigit() also accepts "²" and "٤", which int() rejects
    # or reads as a number nobody meant.
    return text.isascii() and text.isdigit()


def _parse_fd(number: str) -> FDAddress:
    if not _is_number(number):
        raise ConfigError(f"fd:{number} is not a file descriptor number.")
    return FDAddress(int(number))


def _parse_port(port: str, text: str) -> int:
    if not _is_number(port) or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{text!r} has no valid port: use a number from 0 to 65535.")
    return int(port)


def _parse_ip(host: str, text: str, v6: bool = False) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{host!r} in {text!r} is not an IP address.") from None
    if v6 and address.version != 6:
        raise ConfigError(f"{text!r}: brackets are for IPv6 addresses only.")
    return str(address)


def _parse_host(host: str, text: str) -> str:
    if ":" in host:
        raise ConfigError(f"{text!r}: put an IPv6 address in brackets, e.g. [::1]:4000.")
    if host == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    # A name whose last label is all digits is not a host name (RFC 1123 2.1 keeps
    # top-level labels alphabetic): it is a mistyped IP such as 999.1.1.1. Say so now,
    # rather than let a resolver lookup fail (or hang on DNS) at bind time.
    if host.rsplit(".", 1)[-1].isdigit():
        raise ConfigError(f"{host!r} in {text!r} is not a valid IP address.")
    # A name other than localhost: resolved at bind time; keep it as written.
    if not all(part and part.replace("-", "").isalnum() for part in host.split(".")):
        raise ConfigError(f"{host!r} in {text!r} is not a host name or IP address.")
    return host


# --- value types: each takes a CLI string or a setting's native value -------------------


def addresses(value: Any) -> tuple[Address, ...]:
    """A list of addresses, or one string of them separated by spaces (environment)."""
    items: Sequence[str | int]
    if isinstance(value, str):
        items = value.split()
    else:
        items = [value] if isinstance(value, int) else list(value)
    if not items:
        raise ConfigError("At least one address to listen on is needed.")
    return tuple(parse_address(item) for item in items)


def positive_int(value: Any) -> int:
    number = _as_int(value)
    if number < 1:
        raise ConfigError(f"{value!r} must be a whole number of at least 1.")
    return number


def non_negative_int(value: Any) -> int:
    number = _as_int(value)
    if number < 0:
        raise ConfigError(f"{value!r} must be a whole number of at least 0.")
    return number


def _as_int(value: Any) -> int:
    # int() would quietly turn True into 1 and 1.5 into 1.
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ConfigError(f"{value!r} is not a whole number.")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{value!r} is not a whole number.") from None


def seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{value!r} is not a number of seconds.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{value!r} is not a number of seconds.") from None
    if not number > 0 or number == float("inf"):
        raise ConfigError(f"{value!r} must be a number of seconds above 0.")
    return number


# The largest permission bits: a mode above it is no mode at all.
MAX_FILE_MODE = 0o777


def file_mode(value: Any) -> int:
    """Octal permission bits: ``"660"``, ``"0o660"``, the int ``0o660`` or the int ``660``.

    An int is ambiguous: ``0o660`` *is* 432, and ``660`` is what "Default: 660" invites.
    No mode is above 0o777 (511), so an int above 511 whose decimal digits are all octal
    digits (600, 660, 666, 700, 770, 777) can only mean those digits, and is read so. An
    int up to 511 is taken as it is (``0o660`` stays 0o660): write ``"440"`` or ``0o440``
    for the few small modes, never ``440``.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        mode = _octal_digits(value) if value > MAX_FILE_MODE else value
    else:
        text = str(value).lower().removeprefix("0o")
        if not text or any(c not in "01234567" for c in text):
            raise ConfigError(f"{value!r} is not an octal file mode such as 660.")
        mode = int(text, 8)
    if not 0 <= mode <= MAX_FILE_MODE:
        hint = " (write '660' or 0o660)" if isinstance(value, int) else ""
        raise ConfigError(f"{value!r} is not a file mode between 000 and 777{hint}.")
    return mode


def _octal_digits(value: int) -> int:
    """660 -> 0o660; an int whose digits are not octal stays as it is (and is refused)."""
    text = str(value)
    return int(text, 8) if all(c in "01234567" for c in text) else value


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(value: Any) -> str:
    """A logging level name (any case); the logging module's own names only."""
    text = str(value).strip().upper()
    if text not in LOG_LEVELS:
        raise ConfigError(f"{value!r} is not a log level: use one of {', '.join(LOG_LEVELS)}.")
    return text


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{value!r} is not true or false.")


PROTOCOLS = ("scgi", "fastcgi")


def protocol_name(value: Any) -> str:
    """``scgi`` or ``fastcgi`` (any case)."""
    text = str(value).strip().lower()
    if text not in PROTOCOLS:
        raise ConfigError(f"{value!r} is not a protocol: use scgi or fastcgi.")
    return text


def networks(value: Any) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Addresses or CIDR networks, as a list or one string; ``*`` means any peer."""
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    if "*" in items:
        items = [item for item in items if item != "*"] + ["0.0.0.0/0", "::/0"]
    try:
        return tuple(ipaddress.ip_network(str(item), strict=False) for item in items)
    except ValueError as error:
        raise ConfigError(
            f"{error}: write addresses or networks like 127.0.0.1 or 10.0.0.0/8."
        ) from None


def words(value: Any) -> tuple[str, ...]:
    """Words (letters, digits, ``_``), as a list or one string separated by spaces/commas."""
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    for item in items:
        if not isinstance(item, str) or not item.replace("_", "").isalnum():
            raise ConfigError(f"{item!r} is not a word (letters, digits and _ only).")
    return tuple(item.upper() for item in items)


