"""System checks over the ``SCGI_*`` settings, so ``manage.py check`` catches a bad value
before the server starts. Ids are stable: never renumber, never reuse one."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from . import conf

# One id per option, in the order the options were introduced (not table order).
SETTING_CHECK_IDS: dict[str, str] = {
    "bind": "django_scgi.E001",
    "socket_mode": "django_scgi.E002",
    "max_connections": "django_scgi.E003",
    "backlog": "django_scgi.E004",
    "max_header_size": "django_scgi.E005",
    "max_body_size": "django_scgi.E006",
    "header_timeout": "django_scgi.E007",
    "body_timeout": "django_scgi.E008",
    "write_timeout": "django_scgi.E009",
    "graceful_timeout": "django_scgi.E010",
    "drain_limit": "django_scgi.E011",
    "access_log": "django_scgi.E012",
    "allow_from": "django_scgi.E013",
    "workers": "django_scgi.E014",
    "max_requests": "django_scgi.E015",
    "max_requests_jitter": "django_scgi.E016",
    "reload": "django_scgi.E017",
    "close_batch": "django_scgi.E018",
    "db_max_connections": "django_scgi.E019",
    "db_wait_timeout": "django_scgi.E020",
    "drain_timeout": "django_scgi.E021",
    "request_timeout": "django_scgi.E022",
    "min_body_rate": "django_scgi.E023",
    "min_write_rate": "django_scgi.E024",
    "max_connections_per_peer": "django_scgi.E025",
    "mask_words": "django_scgi.E026",
    "protocol": "django_scgi.E027",
    "keepalive_timeout": "django_scgi.E028",
    "static": "django_scgi.E029",
    "insecure": "django_scgi.E030",
    "log_level": "django_scgi.E031",
    "defer_accept": "django_scgi.E032",
}
OPEN_TCP_WITHOUT_ALLOW_LIST = "django_scgi.W001"
ALLOW_ANY_PEER = "django_scgi.W002"
BLOCKING_DATABASE_DRIVER = "django_scgi.W003"
LOCAL_PEER_CAN_BE_FRONT_END = "django_scgi.W004"
OFFLOAD_ROOTS_INVALID = "django_scgi.E100"


@checks.register()
def check_settings(
    app_configs: Sequence[Any] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for option in conf.OPTIONS:
        problem = conf.check_setting(option, settings)
        if problem:
            errors.append(
                checks.Error(
                    f"{option.setting} is invalid: {problem}",
                    hint=option.help,
                    id=SETTING_CHECK_IDS[option.name],
                )
            )
    return errors


@checks.register(deploy=True)
def check_exposure(
    app_configs: Sequence[Any] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """SCGI trusts its peer completely: warn when strangers may be able to connect."""
    try:
        addresses = conf.addresses(
            getattr(settings, "SCGI_BIND", None) or conf.OPTIONS_BY_NAME["bind"].default
        )
        allowed = conf.networks(getattr(settings, "SCGI_ALLOW_FROM", None) or ())
    except conf.ConfigError:
        return []  # reported by check_settings
    warnings: list[checks.CheckMessage] = []
    exposed = [
        str(a) for a in addresses if isinstance(a, conf.TCPAddress) and not _is_loopback(a.host)
    ]
    if exposed and not getattr(settings, "SCGI_ALLOW_FROM", None):
        warnings.append(
            checks.Warning(
                f"SCGI listens on {', '.join(exposed)}, beyond loopback, and SCGI_ALLOW_FROM "
                "is not set.",
                hint="SCGI has no authentication: set SCGI_ALLOW_FROM to your front-ends' "
                "addresses "
                "(only loopback peers are accepted until you do), or listen on a unix socket.",
                id=OPEN_TCP_WITHOUT_ALLOW_LIST,
            )
        )
    if exposed and any(network.prefixlen == 0 for network in allowed):
        warnings.append(
            checks.Warning(
                f"SCGI_ALLOW_FROM lets any peer connect to {', '.join(exposed)}.",
                hint="Whoever can connect can claim any REMOTE_ADDR, HTTPS or user header: list "
                "only your front-ends' addresses.",
                id=ALLOW_ANY_PEER,
            )
        )
    return warnings


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@checks.register()
def check_database_drivers(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Warn about a database whose driver blocks the whole process under gevent.

    Imports each configured backend (and so its driver), opens no connection.
    """
    from django.db import connections

    return blocking_driver_warnings(connections)


def blocking_driver_warnings(connections: Any) -> list[checks.CheckMessage]:
    """W003 for each alias of ``connections`` (a ``ConnectionHandler``) whose driver blocks."""
    from . import database

    warnings: list[checks.CheckMessage] = []
    for alias in connections:
        try:
            alternative = database.blocking_driver(connections[alias])
        except (ImportError, ImproperlyConfigured):
            continue  # a backend that cannot load: Django reports that itself
        if alternative:
            warnings.append(checks.Warning(
                f"The database {alias!r} uses a driver that waits for the server inside C "
                "code: under runscgi one slow query stops every request of the process.",
                hint=f"Use {alternative}.", id=BLOCKING_DATABASE_DRIVER,
            ))
    return warnings


# --- a local peer posing as the front-end ---------------------------------------------

# Settings under which Django believes what the front-end says about the client: who
# it is, and whether it came over HTTPS. (runscgi always takes HTTPS and REMOTE_ADDR
# from the front-end: SCGI has no other way to say them.)
TRUSTING_SETTINGS = ("SECURE_PROXY_SSL_HEADER", "USE_X_FORWARDED_HOST", "USE_X_FORWARDED_PORT")
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@checks.register(deploy=True)
def check_local_front_end(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W004: a TCP listener that local users may reach while Django trusts the front-end."""
    try:
        addresses = conf.addresses(
            getattr(settings, "SCGI_BIND", None) or conf.OPTIONS_BY_NAME["bind"].default)
        allowed = conf.networks(getattr(settings, "SCGI_ALLOW_FROM", None)
                                or conf.OPTIONS_BY_NAME["allow_from"].default)
    except conf.ConfigError:
        return []  # reported by check_settings
    hosts = [a.host for a in addresses if isinstance(a, conf.TCPAddress)]
    message = local_front_end_risk(hosts, allowed, settings)
    if message is None:
        return []
    return [checks.Warning(message, hint=LOCAL_FRONT_END_HINT, id=LOCAL_PEER_CAN_BE_FRONT_END)]


LOCAL_FRONT_END_HINT = (
    "Listen on a unix socket in a directory of the web server's group (SCGI_BIND = "
    "'unix:/run/myapp/scgi.sock', SCGI_SOCKET_MODE 660): only the front-end can connect. "
    "Or narrow SCGI_ALLOW_FROM to front-ends on other machines."
)


def local_front_end_risk(tcp_hosts: Iterable[str], allowed: Iterable[Any],
                         settings_: Any) -> str | None:
    """The warning sentence when any local user could pose as the front-end, else None.

    ``tcp_hosts``: the hosts of the TCP listeners. A local user's connection comes from
    a loopback address, or from the address it connects to: if the allow-list admits
    either, the user can send its own SCGI variables (REMOTE_USER, HTTPS,
    REMOTE_ADDR), which matters when Django trusts them.
    """
    trusting = trusting_settings(settings_)
    allowed = list(allowed)
    exposed = [host for host in tcp_hosts if _local_users_admitted(host, allowed)]
    if not (trusting and exposed):
        return None
    return (f"SCGI listens on TCP ({', '.join(exposed)}) and admits local peers, while "
            f"{', '.join(trusting)} trusts what the front-end says: any local user can "
            "connect, pose as the front-end and claim any user, HTTPS or client address.")


def trusting_settings(settings_: Any) -> list[str]:
    """The settings (and middleware) that make Django trust the front-end's word."""
    found = [path for path in getattr(settings_, "MIDDLEWARE", None) or ()
             if _is_remote_user_middleware(path)]
    return found + [name for name in TRUSTING_SETTINGS if getattr(settings_, name, None)]


def _is_remote_user_middleware(path: str) -> bool:
    from django.contrib.auth.middleware import RemoteUserMiddleware
    from django.utils.module_loading import import_string

    try:
        middleware = import_string(path)
    except ImportError:
        return "RemoteUser" in path
    return isinstance(middleware, type) and issubclass(middleware, RemoteUserMiddleware)


def _local_users_admitted(host: str, allowed: list[Any]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None  # a host name: only the loopback rule can tell
    for network in allowed:
        if any(network.version == loop.version and network.overlaps(loop) for loop in _LOOPBACK):
            return True
        if address is not None and address.version == network.version and address in network:
            return True
    return False


# --- offload ------------------------------------------------------------------------------


@checks.register()
def check_offload_roots(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E100: SCGI_OFFLOAD_ROOTS, when set, must be a list of absolute directories."""
    from .offload import ROOTS_SETTING, roots_problem

    roots = getattr(settings, ROOTS_SETTING, None)
    problem = None if roots is None else roots_problem(roots)
    if problem is None:
        return []
    return [checks.Error(problem, hint="e.g. SCGI_OFFLOAD_ROOTS = ['/srv/myapp/protected']",
                         id=OFFLOAD_ROOTS_INVALID)]
