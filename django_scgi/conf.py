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
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .values import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    LOG_LEVELS,
    MAX_FILE_MODE,
    PROTOCOLS,
    Address,
    ConfigError,
    FDAddress,
    TCPAddress,
    UnixAddress,
    addresses,
    boolean,
    file_mode,
    log_level,
    networks,
    non_negative_int,
    parse_address,
    positive_int,
    protocol_name,
    seconds,
    words,
)

# The option types live in values.py; they are part of conf's API too.
__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "LOG_LEVELS",
    "MAX_FILE_MODE",
    "PROTOCOLS",
    "Address",
    "ConfigError",
    "FDAddress",
    "TCPAddress",
    "UnixAddress",
    "addresses",
    "boolean",
    "file_mode",
    "log_level",
    "networks",
    "non_negative_int",
    "parse_address",
    "positive_int",
    "protocol_name",
    "seconds",
    "words",
]

SETTING_PREFIX = "SCGI_"


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
        "defer_accept", non_negative_int, 1,
        "TCP listeners we bind: the kernel hands a connection over only once its first "
        "bytes have come (TCP_DEFER_ACCEPT), so a request costs no wake-up and no read "
        "that finds nothing yet. A peer that stays silent is handed over after about "
        "this many seconds all the same, and --header-timeout runs from then. 0 turns "
        "it off. Inherited sockets (fd:N, systemd) keep their own setting "
        "(systemd: DeferAcceptSec=).",
        metavar="SECONDS",
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
        "wait in the backlog, and never while the worker waits for anything. FastCGI: "
        "the same bounds for kept connections, whose final writes (END_REQUEST) are "
        "held while other connections are ready, and written together. 1 closes "
        "each connection (writes each FastCGI response) as soon as its response is sent.",
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
    defer_accept: int
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
