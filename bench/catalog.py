"""The servers under test: how each one is started, and what a correct one reports.

Every server serves the same WSGI application (``testproject.wsgi:application``, or
``nullapp:application`` with ``--app null``) with the same settings, in one process
(plus an idle master for gunicorn). runscgi, uWSGI gevent and gunicorn run twice: with
their request logs off (as the anchors were first measured) and on (runscgi's default),
each log going to the server's log file of the run (``LOG_OFF`` pairs them).
runscgi runs from the project's ``.venv``; the anchors from ``bench/.venv-anchors``,
which pins the same Django and gevent.

``local`` is the class prefix that Django's connection-holding local must have in a
correctly set-up server: gevent's local for gevent servers (gevent patched before
Django was imported), the thread's own local for the sync and threaded ones.

``ceiling`` is not a server under test: runscgi serving the do-nothing app, loaded only
through the front-ends. Its server core stays far from busy, so its req/s is what the
front-end and wrk can pass on their shared core: the most any server could show behind
that front-end in this set-up.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


@dataclass(frozen=True)
class Context:
    main_bin: Path        # the project's .venv/bin
    anchors_bin: Path     # bench/.venv-anchors/bin
    app: str = "django"   # "django" or "null"


@dataclass(frozen=True)
class Server:
    name: str
    label: str
    protocol: str               # "scgi", "fastcgi" or "http"
    offset: int                 # its port is base_port + offset
    local: str                  # expected prefix of the connection local's class
    stop_signal: int = signal.SIGTERM
    anchor: bool = True
    concurrent: bool = True     # False: one request at a time (no sleep tests)
    extra: bool = False         # only when named with --server
    notes: str = ""
    startup: float = 60.0       # seconds to wait for the port (more under valgrind)
    tags: tuple[str, ...] = field(default_factory=tuple)
    ceiling: bool = False       # the do-nothing app, through the front-ends only

    @property
    def measured(self) -> bool:
        """Whether the server's own metrics apply (all but the front-ends' ceiling)."""
        return not self.ceiling

    def argv(self, ctx: Context, port: int, *, many: bool = False) -> list[str]:
        """The command line; ``many``: sized for 5,000 concurrent requests."""
        return BUILDERS[self.name](ctx, port, many)

    def app_spec(self, ctx: Context) -> str:
        return "nullapp:application" if ctx.app == "null" else "testproject.wsgi:application"

    def context(self, ctx: Context) -> Context:
        """``ctx`` with the application this server serves."""
        return replace(ctx, app="null") if self.ceiling else ctx


def _runscgi(ctx: Context, port: int, many: bool, access_log: bool = False,
             protocol: str = "scgi") -> list[str]:
    argv = [str(ctx.main_bin / "python"), "manage.py", "runscgi", f"127.0.0.1:{port}",
            "--max-connections", "6000" if many else "1000"]
    if protocol != "scgi":
        argv += ["--protocol", protocol]
    if many:
        argv += ["--backlog", "4096"]
    argv.append("--access-log" if access_log else "--no-access-log")
    return argv


def _uwsgi(ctx: Context, port: int, many: bool, gevent: bool,
           request_log: bool = False, protocol: str = "scgi") -> list[str]:
    argv = [
        str(ctx.anchors_bin / "uwsgi"), f"--{protocol}-socket", f"127.0.0.1:{port}",
        "--virtualenv", str(ctx.anchors_bin.parent), "--chdir", str(ROOT),
        "--pythonpath", str(ROOT), "--pythonpath", str(BENCH),
        "--module", SERVERS["uwsgi-sync"].app_spec(ctx),
        "--processes", "1", "--single-interpreter", "--need-app",
        "--listen", "4096" if many else "1024", "--die-on-term",
    ]
    if not request_log:
        argv.append("--disable-logging")  # else a line per request on stderr (its default)
    if gevent:
        # Early patching: before the application (and so Django) is imported. Plain
        # --gevent-monkey-patch patches too late (see issue 6) and would not count.
        argv += ["--gevent", "6000" if many else "1000", "--gevent-early-monkey-patch"]
    return argv


def _flup(ctx: Context, port: int, many: bool, protocol: str = "scgi") -> list[str]:
    return [str(ctx.anchors_bin / "python"), str(BENCH / "servers" / "flup_scgi.py"),
            "--port", str(port), "--app", SERVERS["flup"].app_spec(ctx),
            "--protocol", protocol]


def _gunicorn(ctx: Context, port: int, many: bool, access_log: bool = False) -> list[str]:
    # --access-logfile -: a line per request on stdout (none without it).
    return [
        str(ctx.anchors_bin / "gunicorn"), "-k", "gevent", "-w", "1",
        "-b", f"127.0.0.1:{port}", "--chdir", str(ROOT), "--pythonpath", str(BENCH),
        "--worker-connections", "6000" if many else "1000",
        "--backlog", "4096" if many else "1024", "--log-level", "warning",
        *(["--access-logfile", "-"] if access_log else []),
        SERVERS["gunicorn"].app_spec(ctx),
    ]


BUILDERS = {
    "runscgi": _runscgi,
    "runscgi-accesslog": lambda ctx, port, many: _runscgi(ctx, port, many, access_log=True),
    "ceiling": _runscgi,
    "uwsgi-sync": lambda ctx, port, many: _uwsgi(ctx, port, many, gevent=False),
    "uwsgi-gevent": lambda ctx, port, many: _uwsgi(ctx, port, many, gevent=True),
    "uwsgi-gevent-log": lambda ctx, port, many: _uwsgi(ctx, port, many, gevent=True,
                                                       request_log=True),
    "flup": _flup,
    "gunicorn": _gunicorn,
    "gunicorn-log": lambda ctx, port, many: _gunicorn(ctx, port, many, access_log=True),
    "runscgi-fcgi": lambda ctx, port, many: _runscgi(ctx, port, many, protocol="fastcgi"),
    "uwsgi-gevent-fcgi": lambda ctx, port, many: _uwsgi(ctx, port, many, gevent=True,
                                                        protocol="fastcgi"),
    "flup-fcgi": lambda ctx, port, many: _flup(ctx, port, many, protocol="fastcgi"),
    "ceiling-fcgi": lambda ctx, port, many: _runscgi(ctx, port, many, protocol="fastcgi"),
}

SERVERS: dict[str, Server] = {
    server.name: server
    for server in (
        Server("runscgi", "runscgi (gevent)", "scgi", 1, "gevent", anchor=False,
               notes="manage.py runscgi --no-access-log"),
        Server("uwsgi-sync", "uWSGI sync", "scgi", 2, "_thread", stop_signal=signal.SIGINT,
               concurrent=False, notes="uwsgi --scgi-socket, 1 process, no threads"),
        Server("uwsgi-gevent", "uWSGI gevent", "scgi", 3, "gevent", stop_signal=signal.SIGINT,
               notes="uwsgi --scgi-socket --gevent N --gevent-early-monkey-patch"),
        Server("flup", "flup threaded", "scgi", 4, "_thread",
               notes="flup.server.scgi.WSGIServer (a thread per connection)"),
        Server("gunicorn", "gunicorn gevent (HTTP)", "http", 5, "gevent",
               notes="gunicorn -k gevent -w 1 (behind proxy_pass / mod_proxy_http)"),
        # The same servers with their request logs on (runscgi's default, with Django's
        # default LOGGING for django.server), each to a file: the server's log of the run.
        Server("runscgi-accesslog", "runscgi (gevent), access log on", "scgi", 6, "gevent",
               anchor=False, notes="manage.py runscgi --access-log (the default), Django's "
                                   "default LOGGING for django.server"),
        Server("uwsgi-gevent-log", "uWSGI gevent, request log on", "scgi", 8, "gevent",
               stop_signal=signal.SIGINT,
               notes="uwsgi-gevent without --disable-logging (its request log on stderr)"),
        Server("gunicorn-log", "gunicorn gevent (HTTP), access log on", "http", 9, "gevent",
               notes="gunicorn -k gevent -w 1 --access-logfile -"),
        Server("ceiling", "front-end's ceiling (do-nothing app)", "scgi", 7, "gevent",
               anchor=False, ceiling=True,
               notes="manage.py runscgi --no-access-log serving bench/nullapp.py, "
                     "through the front-ends only"),
        # FastCGI (issue 23): served through the front-ends only, each keeping its
        # backend connections (nginx fastcgi_keep_conn + upstream keepalive, Apache
        # enablereuse=on); the direct and body metrics are SCGI's.
        Server("runscgi-fcgi", "runscgi --protocol fastcgi", "fastcgi", 12, "gevent",
               anchor=False, tags=("fastcgi",),
               notes="manage.py runscgi --protocol fastcgi --no-access-log"),
        Server("uwsgi-gevent-fcgi", "uWSGI gevent (FastCGI)", "fastcgi", 13, "gevent",
               stop_signal=signal.SIGINT, tags=("fastcgi",),
               notes="uwsgi --fastcgi-socket --gevent N --gevent-early-monkey-patch"),
        Server("flup-fcgi", "flup threaded (FastCGI)", "fastcgi", 14, "_thread",
               tags=("fastcgi",),
               notes="flup.server.fcgi.WSGIServer (a thread per connection)"),
        # The front-ends' ceiling over FastCGI with kept connections: set against the
        # SCGI ceiling, the most any FastCGI server could gain over SCGI through them.
        Server("ceiling-fcgi", "front-end's FastCGI ceiling (do-nothing app)", "fastcgi", 10,
               "gevent", anchor=False, ceiling=True, tags=("fastcgi",),
               notes="manage.py runscgi --protocol fastcgi --no-access-log serving "
                     "bench/nullapp.py, through the front-ends only"),
    )
}

# Metrics that FastCGI servers take part in: through the front-ends, which keep their
# connections to them; everything else measures one request per connection.
FASTCGI_METRICS = ("nginx", "apache", "json_nginx", "json_apache", "callgrind", "strace",
                   "callgrind_null", "strace_null")


def applies(name: str, metric: str) -> bool:
    """Whether ``metric`` is measured for server ``name``."""
    return SERVERS[name].protocol != "fastcgi" or metric in FASTCGI_METRICS

DEFAULT_SERVERS = [name for name, server in SERVERS.items() if not server.extra]

# Each server with its request log on -> the same server with it off.
LOG_OFF = {"runscgi-accesslog": "runscgi", "uwsgi-gevent-log": "uwsgi-gevent",
           "gunicorn-log": "gunicorn"}

# The slowloris metric: runscgi closes a connection whose header block is not complete
# 15 s after it was accepted (--header-timeout). The metric measures while every
# dribbler is still open, so it raises that deadline above the metric's own bound
# (the dribblers stop after 45 s at most). The anchors keep their defaults.
SLOWLORIS_ARGS = {"runscgi": ["--header-timeout", "60"],
                  "runscgi-accesslog": ["--header-timeout", "60"]}


def slowloris_applies(name: str) -> bool:
    """Slow SCGI peers only make sense for concurrent SCGI servers: uWSGI sync serves one
    connection at a time (one dribbler holds it), gunicorn speaks HTTP (not comparable)."""
    server = SERVERS[name]
    return server.concurrent and server.protocol == "scgi" and server.measured


def server_env(base: dict[str, str], ctx: Context, db_path: Path) -> dict[str, str]:
    env = dict(base)
    for name in ("DJANGO_DEBUG", "SCGI_BIND", "DJANGO_FORCE_SCRIPT_NAME", "PYTHONPATH",
                 "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(name, None)
    env["DJANGO_SETTINGS_MODULE"] = (
        "nullapp_settings" if ctx.app == "null" else "bench_settings")
    env["PYTHONPATH"] = f"{ROOT}:{BENCH}"
    env["DJANGO_DB_PATH"] = str(db_path)
    env["SCGI_LOG_LEVEL"] = "WARNING"
    # Fixed hashing: dict and set layouts (and so instruction counts) repeat run to run.
    env["PYTHONHASHSEED"] = "0"
    return env
