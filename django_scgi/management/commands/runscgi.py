"""``manage.py runscgi``: a thin command line over ``conf`` and ``server``."""

from __future__ import annotations

import errno
import sys
from typing import Any

import django
from django.core.management.base import BaseCommand, CommandError
from django.core.servers.basehttp import get_internal_wsgi_application

from django_scgi import __version__, conf, launch

# What a failed bind() means, in a sentence each.
BIND_ERRORS = {
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
    help = "Serve this Django project over SCGI (for Apache, nginx or lighttpd in front)."

    default_addr = conf.DEFAULT_HOST
    default_port = conf.DEFAULT_PORT
    # Checks run in handle(), once, like runserver does.
    requires_system_checks: list[str] = []
    suppressed_base_arguments = {"--verbosity", "--traceback", "--no-color", "--force-color"}

    @property
    def server_cls(self):
        from django_scgi.server import SCGIServer

        return SCGIServer

    def add_arguments(self, parser) -> None:
        for option in conf.OPTIONS:
            if option.positional:
                parser.add_argument(option.name, nargs="*", metavar=option.metavar,
                                    help=option.help)
            elif option.flag_is_boolean:
                parser.add_argument(option.flag, dest=option.name, default=None,
                                    action="store_true", help=option.help)
                parser.add_argument("--no-" + option.flag[2:], dest=option.name,
                                    action="store_false", help=f"Turn {option.flag} off.")
            else:
                parser.add_argument(option.flag, dest=option.name, default=None,
                                    metavar=option.metavar, help=option.help)

    def run_from_argv(self, argv: list[str]) -> None:
        # From the command line: make sure gevent patched the stdlib before Django was
        # imported, by running this same command line again through the launcher.
        if not launch.is_patched_early() and not launch.was_relaunched():
            launch.relaunch()
        super().run_from_argv(argv)

    def get_handler(self, **options: Any):
        """The WSGI callable to serve: the project's WSGI_APPLICATION."""
        return get_internal_wsgi_application()

    def handle(self, *args: Any, **options: Any) -> None:
        if not launch.is_patched_early():
            raise CommandError(
                "gevent could not patch the standard library before Django was imported. "
                "Start the server from the command line (manage.py runscgi, "
                "python -m django runscgi or django-admin runscgi)."
            )
        config = self.resolve_config(options)
        self.check(display_num_errors=False)
        handler = self.get_handler(**options)
        server = self.server_cls(handler, self.open_listeners(config), config)
        # The banner says "ready": print it from a greenlet, which runs once
        # serve_forever() waits, i.e. after the SIGTERM/SIGINT handlers are installed
        # and the listeners accept. A process manager (or a test) that signals as soon
        # as it sees the banner must get a graceful stop, not a default-handler death
        # that leaves the unix socket file behind.
        import gevent

        gevent.spawn(self.print_banner, server)
        server.serve_forever()
        self.stdout.write("Stopped.")

    def resolve_config(self, options: dict[str, Any]) -> conf.ServerConfig:
        cli = {option.name: options.get(option.name) for option in conf.OPTIONS}
        if not cli["bind"]:
            cli["bind"] = None
        try:
            return conf.resolve(cli, defaults={"bind": f"{self.default_addr}:{self.default_port}"})
        except conf.ConfigError as error:
            raise CommandError(str(error)) from None

    def open_listeners(self, config: conf.ServerConfig):
        from django_scgi.server import ListenerError, open_listener

        listeners = []
        try:
            for address in config.bind:
                try:
                    listeners.append(open_listener(address, socket_mode=config.socket_mode,
                                                   backlog=config.backlog))
                except ListenerError as error:
                    raise CommandError(error.strerror) from None
                except OSError as error:
                    raise CommandError(bind_error_sentence(address, error)) from None
        except CommandError:
            for listener in listeners:
                listener.close()
            raise
        return listeners

    def print_banner(self, server) -> None:
        import gevent
        from django.conf import settings

        self.stdout.write(
            f"django-scgi {__version__} (Django {django.get_version()}, gevent "
            f"{gevent.__version__}, Python {sys.version.split()[0]}), "
            f"settings {settings.SETTINGS_MODULE!r}"
        )
        self.stdout.write("Serving SCGI on " + ", ".join(server.addresses))
        self.stdout.write("Quit with CONTROL-C or SIGTERM.")
        self.stdout.flush()


def bind_error_sentence(address: conf.Address, error: OSError) -> str:
    template = BIND_ERRORS.get(error.errno)
    if template is None:
        return f"Cannot listen on {address}: {error.strerror or error}."
    return template.format(address=address)
