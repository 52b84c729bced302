"""``manage.py runscgi``: a thin command line over ``conf``, ``server`` and ``workers``.

Four ways to run, chosen in ``handle()``: one serving process (``--workers 1``, the
default), a supervisor of worker processes (``--workers N``), a worker started by such
a supervisor (``DJANGO_SCGI_WORKER`` in the environment), and Django's autoreloader
(``--reload``, development).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import django
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.servers.basehttp import get_internal_wsgi_application

from django_scgi import __version__, checks, conf, launch, logconfig, systemd

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    # Imported where they are used, after the launcher has patched the stdlib.
    from django_scgi.server import Listener, SCGIServer
    from django_scgi.workers import Handoff, Supervisor

logger = logging.getLogger(__name__)

# What a failed bind() means, in a sentence each, by OSError.errno (None for an error
# that does not come from the system).
BIND_ERRORS: dict[int | None, str] = {
    errno.EADDRINUSE: "{address} is already in use by another process.",
    errno.EACCES: (
        "Permission denied to listen on {address} (ports below 1024 need root or "
        "CAP_NET_BIND_SERVICE; a unix socket needs a writable directory)."
    ),
    errno.EPERM: "Not permitted to listen on {address}.",
    errno.EADDRNOTAVAIL: "{address} is not an address of this machine.",
    errno.ENOENT: "The directory for {address} does not exist.",
    errno.ENOTDIR: "A part of the path of {address} is not a directory.",
    errno.EAFNOSUPPORT: "This machine does not support the address family of {address}.",
    errno.EBADF: "{address} is not an open file descriptor.",
}


class Command(BaseCommand):
    help = ("Serve this Django project over SCGI (for Apache, nginx or lighttpd in front), "
            "or over FastCGI with --protocol fastcgi.")

    default_addr = conf.DEFAULT_HOST
    default_port = conf.DEFAULT_PORT
    # (level, explicit) for django_scgi.logconfig, set in handle().
    logging_wanted: tuple[str, bool] | None = None
    # Checks run in handle(), once, like runserver does.
    requires_system_checks: ClassVar[list[str]] = []
    suppressed_base_arguments: ClassVar[set[str]] = {
        "--traceback", "--no-color", "--force-color",
    }

    @property
    def server_cls(self) -> type[SCGIServer]:
        from django_scgi.server import SCGIServer

        return SCGIServer

    def get_version(self) -> str:
        """``runscgi --version``: this package's version, then Django's."""
        return f"django-scgi {__version__} (Django {django.get_version()})"

    def add_arguments(self, parser: CommandParser) -> None:
        for option in conf.OPTIONS:
            help_text = option_help(option)
            if option.positional:
                parser.add_argument(option.name, nargs="*", metavar=option.metavar,
                                    help=help_text)
            elif option.flag_is_boolean:
                parser.add_argument(option.flag, dest=option.name, default=None,
                                    action="store_true", help=help_text)
                parser.add_argument(*option.off_flags, dest=option.name,
                                    action="store_false", help=f"Turn {option.flag} off.")
            else:
                parser.add_argument(option.flag, dest=option.name, default=None,
                                    metavar=option.metavar, help=help_text)
        parser.add_argument(
            "--fd", dest="fd", action="append", metavar="N",
            help="Serve on the listening socket inherited as file descriptor N (a process "
            "manager or launcher owns it); the same as the address fd:N. Repeatable.",
        )

    def run_from_argv(self, argv: list[str]) -> None:
        # From the command line: make sure gevent patched the stdlib before Django was
        # imported, by running this same command line again through the launcher.
        if not launch.is_patched_early() and not launch.was_relaunched():
            launch.relaunch()
        super().run_from_argv(argv)

    def get_handler(self, **options: Any) -> WSGIApplication:
        """The WSGI callable to serve: the project's WSGI_APPLICATION."""
        handler: WSGIApplication = get_internal_wsgi_application()
        return handler

    def serving_handler(self, config: conf.ServerConfig) -> WSGIApplication:
        """``get_handler()``, with static files in front as runserver has them; then
        Django's cached STATIC_URL/MEDIA_URL are dropped, so that the first request
        computes them with its own script prefix (django_scgi.static)."""
        from django_scgi import static

        handler: WSGIApplication = self.get_handler()
        if self.logging_wanted is not None:
            logconfig.configure(*self.logging_wanted)
        if static.wants_static_handler(config.static, config.insecure):
            handler = static.MountedStaticFilesHandler(handler)
        static.forget_prefixed_settings()
        return handler

    def handle(self, *args: Any, **options: Any) -> None:
        if not launch.is_patched_early():
            raise CommandError(
                "gevent could not patch the standard library before Django was imported. "
                "Start the server from the command line (manage.py runscgi, "
                "python -m django runscgi or django-admin runscgi)."
            )
        from django_scgi import workers

        handoff = workers.handoff_from_environ()
        config = self.resolve_config(options)
        self.configure_logging(config, options)
        if handoff is not None:
            self.run_worker(handoff, config)
            return
        if config.reload:
            self.run_with_reloader(config)
            return
        self.check(display_num_errors=False)
        listeners = self.open_listeners(config)
        self.warn_if_local_peers_can_pose_as_front_end(config, listeners)
        if config.workers > 1:
            self.run_supervisor(config, listeners)
        else:
            self.run_single(config, listeners)
        self.stdout.write("Stopped.")

    # -- the four ways to run --

    def run_single(self, config: conf.ServerConfig, listeners: list[Listener]) -> None:
        """One process serves; SIGHUP is logged and ignored."""
        if config.max_requests:
            logger.warning("--max-requests applies to workers (--workers 2 or more); one "
                           "process is never replaced.")
        server = self.server_cls(
            self.serving_handler(config), listeners, config, on_ready=self.on_ready,
            on_stopping=self.on_stopping, on_sighup=self.on_sighup_single,
        )
        with self.database_admission(config):
            server.serve_forever()

    def run_supervisor(self, config: conf.ServerConfig, listeners: list[Listener]) -> None:
        """Start ``config.workers`` worker processes over ``listeners`` and watch them.

        The supervisor never imports the WSGI application: every worker is a new
        interpreter running this command line, so a reload loads fresh code.
        """
        from django.db import connections

        from django_scgi import workers

        connections.close_all()  # the supervisor holds no database connection
        command, env, cwd = self.worker_command()
        supervisor = workers.Supervisor(
            listeners, config, command, env=env, cwd=cwd, on_ready=self.on_ready,
            on_stopping=self.on_stopping, on_reloading=lambda _: systemd.reloading(),
            on_reloaded=lambda s: systemd.ready(self.status_text(s)),
        )
        try:
            supervisor.run()
        except workers.WorkerStartError as error:
            raise CommandError(str(error)) from None

    def run_worker(self, handoff: Handoff, config: conf.ServerConfig) -> None:
        """A worker of a supervisor: fresh imports, then serve the inherited listeners."""
        from django_scgi import workers

        # The checks import the URLconf and views: new code that is broken fails here,
        # before this worker says ready, and a reload keeps the old workers.
        self.check(display_num_errors=False)
        with self.database_admission(config):
            workers.serve_worker(self.serving_handler(config), handoff, config,
                                 server_cls=self.server_cls)

    def run_with_reloader(self, config: conf.ServerConfig) -> None:
        """Django's autoreloader: a watching parent restarts a serving child on edits.

        The child is started with ``get_child_arguments()`` (``python manage.py …`` or
        ``python -m django …``) and goes through the launcher like any start, so it is
        patched before Django loads. It serves on a non-main thread: no signal handlers
        of ours; the autoreloader's SIGTERM handler ends it.
        """
        from django.utils import autoreload

        if config.workers > 1:
            self.stderr.write(f"--reload serves with one process; ignoring {config.workers} "
                              "workers.")
        autoreload.run_with_reloader(self.serve_reloading, config)

    def serve_reloading(self, config: conf.ServerConfig) -> None:
        # An error in the checks (a broken model, a bad view) leaves the autoreloader
        # watching, as runserver does, so the fix restarts the server.
        self.check(display_num_errors=False)
        try:
            listeners = self.open_listeners(config)
        except CommandError as error:
            self.stderr.write(f"CommandError: {error}")
            os._exit(1)  # a thread cannot end the process otherwise
        # A code change ends this process with sys.exit(3): leave no socket file behind.
        def remove_socket_files() -> None:
            for listener in listeners:
                listener.remove_socket_file()

        atexit.register(remove_socket_files)
        server = self.server_cls(self.serving_handler(config), listeners, config,
                                 on_ready=self.on_ready)
        server.serve_forever()

    @contextlib.contextmanager
    def database_admission(self, config: conf.ServerConfig) -> Iterator[None]:
        """Admission and reuse of database connections while serving; all closed after.

        Runs once the server stopped (SIGTERM, SIGINT, a worker replaced or retired):
        no connection of this process outlives it.
        """
        from django_scgi import dbpool

        dbpool.install(dbpool.Settings(config.db_max_connections, config.db_wait_timeout,
                                       config.workers))
        try:
            yield
        finally:
            dbpool.close_all()

    # -- hooks --

    def on_ready(self, server: SCGIServer | Supervisor) -> None:
        """The listeners accept (every worker, with a supervisor): banner, READY=1."""
        self.print_banner(server)
        systemd.ready(self.status_text(server))

    def on_stopping(self, server: SCGIServer | Supervisor) -> None:
        systemd.stopping()

    def on_sighup_single(self, server: SCGIServer) -> None:
        logger.warning(
            "SIGHUP ignored: one process cannot load new code without a gap. Restart it "
            "to load new code; with --workers 2 or more, SIGHUP replaces the workers one "
            "at a time without dropping a request."
        )

    @staticmethod
    def status_text(server: SCGIServer | Supervisor) -> str:
        workers = len(getattr(server, "slots", ())) or 1
        return f"Serving on {', '.join(server.addresses)} with {workers} process(es)"

    def worker_command(self) -> tuple[list[str], dict[str, str], str]:
        """The command line, environment and directory that start a worker.

        The same command line through the launcher, as ``launch.relaunch()`` builds it.
        The directory is ``$PWD`` when it names the working directory (a ``current``
        symlink a deploy switches is followed, so a reload loads the new release).
        """
        command = launch.relaunch_command()
        env = dict(os.environ)
        added = launch.path_to_add(launch.import_root(), sys.path, os.getcwd())
        if added:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [added, env.get("PYTHONPATH")]))
            env[launch.ADDED_PATH_MARK] = added
        return command, env, logical_cwd()

    def resolve_config(self, options: dict[str, Any]) -> conf.ServerConfig:
        cli = {option.name: options.get(option.name) for option in conf.OPTIONS}
        cli["bind"] = self.addresses_to_use(options)
        defaults = {"bind": f"{self.default_addr}:{self.default_port}",
                    "log_level": logconfig.VERBOSITY_LEVELS.get(verbosity(options), "DEBUG")}
        try:
            return conf.resolve(cli, defaults=defaults)
        except conf.ConfigError as error:
            raise CommandError(str(error)) from None

    def configure_logging(self, config: conf.ServerConfig, options: dict[str, Any]) -> None:
        """Our log lines visible in a project whose LOGGING does not route them
        (django_scgi.logconfig); the level as asked. Done again once the handler is
        loaded: the project's wsgi.py calls django.setup(), which applies LOGGING anew."""
        from django.conf import settings

        explicit = (options.get("log_level") is not None or verbosity(options) != 1
                    or getattr(settings, conf.OPTIONS_BY_NAME["log_level"].setting, None)
                    is not None)
        self.logging_wanted = (config.log_level, explicit)
        logconfig.configure(config.log_level, explicit)

    @staticmethod
    def addresses_to_use(options: dict[str, Any]) -> list[str] | None:
        """Addresses from the command line, else systemd's sockets, else None (setting).

        Precedence: positional addresses and ``--fd`` > sockets passed by systemd socket
        activation > a listening socket as fd 0 (FastCGI's launch convention) >
        ``SCGI_BIND`` > the default.
        """
        explicit = [*(options.get("bind") or []), *(f"fd:{n}" for n in options.get("fd") or [])]
        activated = systemd.listen_fds()
        if explicit:
            unused = [fd for fd, _ in activated if f"fd:{fd}" not in explicit]
            if unused:
                logger.warning("Not using the socket(s) %s passed by systemd: addresses "
                               "were given on the command line.", unused)
            return explicit
        if activated:
            logger.info("Using the socket(s) passed by systemd: %s.",
                        ", ".join(f"fd:{fd} ({name})" for fd, name in activated))
            return [f"fd:{fd}" for fd, _ in activated]
        from django_scgi.server.listeners import listening_on_stdin

        if listening_on_stdin():
            logger.info("Using the listening socket passed as file descriptor 0.")
            return ["fd:0"]
        return None

    @staticmethod
    def warn_if_local_peers_can_pose_as_front_end(config: conf.ServerConfig,
                                                  listeners: list[Listener]) -> None:
        """The start-up form of check W004, over the listeners really opened (addresses
        from the command line and systemd included)."""
        import socket

        from django.conf import settings

        hosts = [listener.socket.getsockname()[0] for listener in listeners
                 if listener.socket.family in (socket.AF_INET, socket.AF_INET6)]
        message = checks.local_front_end_risk(hosts, config.allow_from, settings)
        if message:
            logger.warning("%s %s (%s)", message, checks.LOCAL_FRONT_END_HINT,
                           checks.LOCAL_PEER_CAN_BE_FRONT_END)

    def open_listeners(self, config: conf.ServerConfig) -> list[Listener]:
        from django_scgi.server import ListenerError, open_listener

        listeners: list[Listener] = []
        try:
            for address in config.bind:
                try:
                    listeners.append(open_listener(address, socket_mode=config.socket_mode,
                                                   backlog=config.backlog,
                                                   defer_accept=config.defer_accept))
                except ListenerError as error:
                    raise CommandError(error.strerror) from None
                except OSError as error:
                    raise CommandError(bind_error_sentence(address, error)) from None
        except CommandError:
            for listener in listeners:
                listener.close()
            raise
        return listeners

    def print_banner(self, server: SCGIServer | Supervisor) -> None:
        """The start-up lines (printed, not logged: they are for the person who started it)."""
        import gevent
        from django.conf import settings

        self.stdout.write(
            f"django-scgi {__version__} (Django {django.get_version()}, gevent "
            f"{gevent.__version__}, Python {sys.version.split()[0]}), "
            f"settings {settings.SETTINGS_MODULE!r}"
        )
        config = getattr(server, "config", None)
        protocol = "FastCGI" if getattr(config, "protocol", "scgi") == "fastcgi" else "SCGI"
        self.stdout.write(f"Serving {protocol} on " + ", ".join(server.addresses))
        if slots := getattr(server, "slots", None):  # a Supervisor
            self.stdout.write(f"{len(slots)} worker processes; SIGHUP replaces them "
                              "one at a time.")
        self.stdout.write("Quit with CONTROL-C or SIGTERM.")
        self.stdout.flush()


def option_help(option: conf.Option) -> str:
    """The option's help from the table, with its default and its setting; argparse
    formats help with %, so a literal % is doubled."""
    text = f"{option.help} Default: {option.default_text}. Setting: {option.setting}."
    return text.replace("%", "%%")


def verbosity(options: dict[str, Any]) -> int:
    """Django's -v/--verbosity (1 when not given)."""
    value = options.get("verbosity")
    return 1 if value is None else int(value)


def bind_error_sentence(address: conf.Address, error: OSError) -> str:
    template = BIND_ERRORS.get(error.errno)
    if template is None:
        return f"Cannot listen on {address}: {error.strerror or error}."
    return template.format(address=address)


def logical_cwd() -> str:
    """``$PWD`` when it names the working directory (keeps symlinks), else ``os.getcwd()``."""
    pwd = os.environ.get("PWD")
    try:
        if pwd and os.path.isabs(pwd) and os.path.samefile(pwd, "."):
            return pwd
    except OSError:
        pass
    return os.getcwd()
