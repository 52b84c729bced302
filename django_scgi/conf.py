"""Every server option, declared once.

One ``Option`` row gives an option's name, its CLI flag, its ``SCGI_*`` setting, its
type/validator, its default and its help text. ``runscgi`` builds its argparse options
from the table, docs/settings.rst's reference is generated from it (a test keeps the two
together) and the system checks validate settings with the same validators.

Precedence (CLI > setting > default) is resolved in one place, ``resolve()``, into a
frozen ``ServerConfig`` that is passed down explicitly: the server never reads settings.
Imports: stdlib only; ``django.conf.settings`` is imported inside functions.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

DEFAULT_PORT = 4000
DEFAULT_HOST = "127.0.0.1"
SETTING_PREFIX = "SCGI_"


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


# --- the table -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Option:
    name: str
    type: Callable[[Any], Any]
    default: Any
    help: str
    metavar: str | None = None
    positional: bool = False
    flag_is_boolean: bool = False
    # The flags that turn a boolean off; () means the usual --no-NAME.
    negative_flags: tuple[str, ...] = ()

    @property
    def setting(self) -> str:
        return SETTING_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def off_flags(self) -> tuple[str, ...]:
        """The flags that turn a boolean option off (``--no-NAME`` unless declared)."""
        return self.negative_flags or ("--no-" + self.flag[2:],)

    @property
    def default_text(self) -> str:
        if self.type is file_mode:
            return format(self.default, "o")
        if isinstance(self.default, tuple):
            return " ".join(str(item) for item in self.default) or "(none)"
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        return str(self.default)


MiB = 1024 * 1024

OPTIONS: tuple[Option, ...] = (
    Option(
        "bind", addresses, (f"{DEFAULT_HOST}:{DEFAULT_PORT}",),
        "Addresses to listen on, one or more: PORT, HOST:PORT, [IPV6]:PORT, unix:PATH or "
        "fd:N (an inherited listening socket; --fd N is the same). The command takes them "
        "as positional arguments; the setting takes a list, or one string of addresses "
        "separated by spaces. Sockets passed by systemd socket activation (LISTEN_FDS) "
        "replace the setting and the default; addresses on the command line replace them. "
        "Without either, a listening socket on file descriptor 0 (how mod_fcgid and "
        "spawn-fcgi start FastCGI applications) replaces them too.",
        metavar="ADDRESS", positional=True,
    ),
    Option(
        "protocol", protocol_name, "scgi",
        "What the front-end speaks on every listener: scgi (Apache mod_proxy_scgi, nginx "
        "scgi_pass, lighttpd mod_scgi) or fastcgi (Apache mod_proxy_fcgi, nginx "
        "fastcgi_pass, lighttpd mod_fastcgi, Caddy's transport fastcgi). manage.py "
        "runfcgi is runscgi with fastcgi chosen.",
        metavar="NAME",
    ),
    Option(
        "socket_mode", file_mode, 0o660,
        "Permission bits of unix sockets we create. 660 lets the owner and the group "
        "(put the web server's user in it) connect, nobody else: SCGI has no authentication.",
        metavar="OCTAL",
    ),
    Option(
        "max_connections", positive_int, 1000,
        "Connections served at once; beyond it the server stops accepting and the kernel "
        "backlog holds the rest. Database connections are limited separately "
        "(--db-max-connections).",
        metavar="N",
    ),
    Option(
        "backlog", positive_int, 1024,
        "Listen backlog: connections the kernel queues while all slots are busy "
        "(capped by net.core.somaxconn).",
        metavar="N",
    ),
    Option(
        "max_header_size", positive_int, 64 * 1024,
        "Largest SCGI header block (FastCGI: PARAMS stream) accepted, in bytes; larger "
        "requests get 431 (FastCGI: the connection is closed).",
        metavar="BYTES",
    ),
    Option(
        "max_body_size", non_negative_int, 0,
        "Largest request body accepted, in bytes; larger requests get 413 before any of "
        "the body is read. 0: no limit of our own (front-ends have theirs).",
        metavar="BYTES",
    ),
    Option(
        "header_timeout", seconds, 15.0,
        "Seconds a connection may take to deliver its whole header block (slow peers are "
        "closed).",
        metavar="SECONDS",
    ),
    Option(
        "body_timeout", seconds, 60.0,
        "Seconds reading the request body may wait for the next bytes.",
        metavar="SECONDS",
    ),
    Option(
        "write_timeout", seconds, 60.0,
        "Seconds a response write may wait for the peer to accept more bytes.",
        metavar="SECONDS",
    ),
    Option(
        "graceful_timeout", seconds, 30.0,
        "On SIGTERM/SIGINT, seconds in-flight requests get to finish before they are "
        "cancelled.",
        metavar="SECONDS",
    ),
    Option(
        "drain_limit", non_negative_int, 16 * MiB,
        "Unread request body bytes discarded before the response is sent and before "
        "closing, so the front-end neither deadlocks nor sees a reset; a larger unread "
        "remainder is left and the connection closed.",
        metavar="BYTES",
    ),
    Option(
        "drain_timeout", seconds, 5.0,
        "Seconds that discarding an unread request body (see drain_limit) may take; a "
        "peer still sending after that is closed.",
        metavar="SECONDS",
    ),
    Option(
        "request_timeout", seconds, 3600.0,
        "Seconds from the connection to the end of its request body: a deadline for head "
        "and body together, however steadily the peer sends.",
        metavar="SECONDS",
    ),
    Option(
        "min_body_rate", non_negative_int, 500,
        "Slowest request body accepted, in bytes per second (like Apache's mod_reqtimeout "
        "MinRate): each byte received allows 1/N more seconds of waiting beyond "
        "body_timeout. Only time spent waiting for the peer counts. 0: no minimum.",
        metavar="BYTES",
    ),
    Option(
        "min_write_rate", non_negative_int, 500,
        "Slowest reader of a response accepted, in bytes per second: each byte sent allows "
        "1/N more seconds of waiting beyond write_timeout. Only time spent waiting for the "
        "peer counts, never the application's. 0: no minimum.",
        metavar="BYTES",
    ),
    Option(
        "max_connections_per_peer", non_negative_int, 0,
        "Connections one TCP peer address may hold at once; more are closed at once. For "
        "allow-lists that admit several hosts, so that none can take every slot. Unix "
        "socket peers are not counted (they have no address). 0: no limit, the right "
        "choice when the only peer is the front-end.",
        metavar="N",
    ),
    Option(
        "close_batch", positive_int, 8,
        "Under load, a worker that takes the next connection from the backlog itself "
        "holds up to N-1 finished TCP connections open and closes them with the N-th, "
        "so the front-end wakes once for all their responses. Only quick requests are "
        "held (a batch spans at most 1 ms), only while at least as many connections "
        "wait in the backlog, and never while the worker waits for anything. 1 closes "
        "each connection as soon as its response is sent.",
        metavar="N",
    ),
    Option(
        "keepalive_timeout", seconds, 120.0,
        "FastCGI only: seconds a connection the front-end keeps open between requests "
        "(FCGI_KEEP_CONN) may wait for its next request before it is closed.",
        metavar="SECONDS",
    ),
    Option(
        "access_log", boolean, True,
        "Write an access line per request to the django.server logger.",
        flag_is_boolean=True,
    ),
    Option(
        "allow_from", networks, ("127.0.0.0/8", "::1"),
        "Peers that may connect to TCP listeners: addresses or CIDR networks, separated "
        "by spaces or commas; * allows any peer. Others are closed at once and logged "
        "once a minute per address. SCGI has no authentication, so the default is "
        "loopback only; unix sockets are guarded by their file mode instead.",
        metavar="NETWORKS",
    ),
    Option(
        "mask_words", words, (),
        "More words that make a request header or query parameter secret in logs, "
        "besides AUTH COOKIE CREDENTIAL CSRF KEY OTP PASS SECRET SESSION SIG TOKEN: a name "
        "containing one (any case) has its value logged as ********.",
        metavar="WORDS",
    ),
    Option(
        "workers", positive_int, 1,
        "Serving processes. Above 1, a supervisor opens the listeners once and starts "
        "this many gevent worker processes that share them (one core each), restarts "
        "those that die, and on SIGHUP replaces them one at a time with freshly "
        "imported code. With 1, one process serves and SIGHUP is ignored.",
        metavar="N",
    ),
    Option(
        "max_requests", non_negative_int, 0,
        "With --workers 2 or more, a worker is replaced after this many requests "
        "(0: never); its successor starts before it stops.",
        metavar="N",
    ),
    Option(
        "max_requests_jitter", non_negative_int, 0,
        "A random 0..N added to --max-requests per worker, so workers do not all "
        "restart at once.",
        metavar="N",
    ),
    Option(
        "db_max_connections", non_negative_int, 0,
        "Connections this process may hold open to each database at once (PostgreSQL, "
        "MySQL; not SQLite, not a database with Django's psycopg pool, whose max_size "
        "governs). A request that needs one more waits for one to be released. 0: "
        "learned at the first connection: PostgreSQL's max_connections minus its "
        "reserved slots (MySQL's max_connections), divided by --workers; 10 when the "
        "server does not say. With several hosts, set it: see docs/databases.rst.",
        metavar="N",
    ),
    Option(
        "db_wait_timeout", seconds, 10.0,
        "Seconds a request waits for a database connection when this process holds "
        "--db-max-connections of them; past it the request is answered 503 with "
        "Retry-After (also when Django's psycopg pool times out).",
        metavar="SECONDS",
    ),
    Option(
        "static", boolean, True,
        "With DEBUG = True and django.contrib.staticfiles installed, serve the files "
        "below STATIC_URL from the staticfiles finders, as runserver does (also below a "
        "mount). --nostatic leaves them to the front-end. In production the front-end "
        "or WhiteNoise serves collectstatic's STATIC_ROOT instead (docs/static-files.rst).",
        flag_is_boolean=True, negative_flags=("--nostatic", "--no-static"),
    ),
    Option(
        "insecure", boolean, False,
        "Serve static files as --static does even with DEBUG = False, as runserver "
        "--insecure does: slow and unsafe, for trying production settings locally.",
        flag_is_boolean=True,
    ),
    Option(
        "log_level", log_level, "INFO",
        "Level of the django_scgi loggers (DEBUG, INFO, WARNING, ERROR). When the "
        "project's LOGGING sends django_scgi's records nowhere, runscgi adds a handler "
        "on stderr with time and level; -v 0/1/2 (Django's verbosity) means WARNING, "
        "INFO, DEBUG when this is not given.",
        metavar="LEVEL",
    ),
    Option(
        "reload", boolean, False,
        "Development only: restart the server when a Python file changes, with Django's "
        "autoreloader (like runserver). One process; no signal handling of our own.",
        flag_is_boolean=True,
    ),
)

OPTIONS_BY_NAME: Mapping[str, Option] = {option.name: option for option in OPTIONS}


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Resolved options; field names are the ``OPTIONS`` names (a test holds them equal)."""

    bind: tuple[Address, ...]
    protocol: str
    socket_mode: int
    max_connections: int
    backlog: int
    max_header_size: int
    max_body_size: int
    header_timeout: float
    body_timeout: float
    write_timeout: float
    graceful_timeout: float
    drain_limit: int
    drain_timeout: float
    request_timeout: float
    min_body_rate: int
    min_write_rate: int
    max_connections_per_peer: int
    close_batch: int
    keepalive_timeout: float
    access_log: bool
    allow_from: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    mask_words: tuple[str, ...]
    workers: int
    max_requests: int
    max_requests_jitter: int
    db_max_connections: int
    db_wait_timeout: float
    static: bool
    insecure: bool
    log_level: str
    reload: bool
    # Not options: derived from Django's own settings.
    mount_prefix: str = ""


def resolve(
    cli: Mapping[str, Any] | None = None,
    settings: Any = None,
    defaults: Mapping[str, Any] | None = None,
) -> ServerConfig:
    """Resolve every option as CLI value, else ``SCGI_*`` setting, else default.

    ``cli`` maps option names to values, ``None`` meaning "not given". ``settings`` is
    Django's settings object (any object with attributes); ``None`` reads
    ``django.conf.settings`` at call time so ``override_settings`` applies.
    ``defaults`` replaces table defaults (the command's ``default_addr``/``default_port``).
    All errors are collected and raised together as one ``ConfigError``.
    """
    cli = cli or {}
    if settings is None:
        from django.conf import settings as django_settings

        settings = django_settings
    values, errors = {}, []
    for option in OPTIONS:
        source, raw = _pick(option, cli, settings, defaults or {})
        try:
            values[option.name] = option.type(raw)
        except ConfigError as error:
            errors.append(f"{source}: {error}")
    if errors:
        raise ConfigError(" ".join(errors))
    values["mount_prefix"] = mount_prefix_from(getattr(settings, "FORCE_SCRIPT_NAME", None))
    return ServerConfig(**values)


def _pick(
    option: Option, cli: Mapping[str, Any], settings: Any, defaults: Mapping[str, Any]
) -> tuple[str, Any]:
    value = cli.get(option.name)
    if value is not None and value != []:
        return option.flag if not option.positional else "address", value
    value = getattr(settings, option.setting, None)
    if value is not None:
        return option.setting, value
    return "default", defaults.get(option.name, option.default)


def check_setting(option: Option, settings: Any) -> str | None:
    """The error sentence for one ``SCGI_*`` setting, or None when it is fine or unset."""
    value = getattr(settings, option.setting, None)
    if value is None:
        return None
    try:
        option.type(value)
    except ConfigError as error:
        return str(error)
    return None


def mount_prefix_from(force_script_name: str | None) -> str:
    """The mount prefix from ``FORCE_SCRIPT_NAME``: no trailing slash, "" for the root."""
    if not force_script_name:
        return ""
    prefix = "/" + force_script_name.strip("/")
    return "" if prefix == "/" else prefix


# --- documentation -------------------------------------------------------------------


def options_rst() -> str:
    """The option reference of docs/settings.rst, generated from ``OPTIONS``."""
    lines = []
    for option in OPTIONS:
        cli = "positional ``ADDRESS …``" if option.positional else _flag_text(option)
        lines += [
            f"``{option.setting}``",
            "    " + f"CLI: {cli}. Default: ``{option.default_text}``.",
            "    " + option.help,
            "",
        ]
    return "\n".join(lines)


def _flag_text(option: Option) -> str:
    if option.flag_is_boolean:
        return " / ".join(f"``{flag}``" for flag in (option.flag, *option.off_flags))
    return f"``{option.flag} {option.metavar}``"


def iter_settings_names() -> Iterable[str]:
    return (option.setting for option in OPTIONS)


if __name__ == "__main__":
    print(options_rst())
