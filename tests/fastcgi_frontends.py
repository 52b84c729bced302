"""Real front-ends speaking FastCGI to ``runscgi --protocol fastcgi``, for tests.

The classes of ``frontends.py`` (config in a temp dir, ports from the OS, stopped by
PID, "FRONT-END MISSING" skips) with the FastCGI files users copy from ``deploy/``:
``nginx-fastcgi.conf`` (+ ``nginx-fastcgi-upstream.conf`` for kept-alive connections),
``apache-fastcgi.conf`` (``enablereuse=on``), ``lighttpd-fastcgi.conf`` and
``caddy-fastcgi.caddy``. ``cgi_fcgi`` runs libfcgi's ``cgi-fcgi`` as a bare client.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest
from frontends import (
    APACHE_MODULES,
    DEPLOY,
    HOST,
    INSTALL_HINT,
    MISSING,
    Apache,
    FrontEnd,
    Lighttpd,
    Nginx,
    apache_modules_dir,
    apache_quote,
    find_binary,
    nginx_conf_dir,
    render,
)


class FastCGINginx(Nginx):
    """nginx with deploy/nginx-fastcgi.conf; ``keepalive``: through the upstream block of
    deploy/nginx-fastcgi-upstream.conf, so connections are reused."""

    deploy_file = DEPLOY / "nginx-fastcgi.conf"
    stock_files = ("fastcgi_params", "mime.types")
    upstream_name = "django_fastcgi"

    def __init__(self, *args, keepalive: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.keepalive = keepalive
        if nginx_conf_dir() is None or not (nginx_conf_dir() / "fastcgi_params").is_file():
            pytest.skip(f"{MISSING}: nginx's fastcgi_params file not found — {INSTALL_HINT}")

    def server_address(self) -> str:
        backend = self.backend
        return backend.address if backend.transport == "unix" else "{}:{}".format(
            *backend.host_port)

    def deploy_values(self) -> dict[str, str]:
        return {**super().deploy_values(), "SCGI_SCRIPT_NAME": self.mount,
                "SCGI_BACKEND": self.upstream_name if self.keepalive else self.server_address()}

    def http_config(self) -> str:
        if not self.keepalive:
            return ""
        (self.run_dir / "django-fastcgi-upstream.conf").write_text(render(
            (DEPLOY / "nginx-fastcgi-upstream.conf").read_text(),
            {"SCGI_FASTCGI_SERVER": self.server_address()}))
        return "    include django-fastcgi-upstream.conf;"


class FastCGIApache(Apache):
    """Apache with mod_proxy_fcgi and deploy/apache-fastcgi.conf (``enablereuse=on``)."""

    modules = (*(name for name in APACHE_MODULES if name != "proxy_scgi"), "proxy_fcgi")
    deploy_file = DEPLOY / "apache-fastcgi.conf"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        modules = apache_modules_dir()
        if modules is None or not os.path.isfile(os.path.join(modules, "mod_proxy_fcgi.so")):
            pytest.skip(f"{MISSING}: apache2 has no mod_proxy_fcgi.so — {INSTALL_HINT}")

    def deploy_values(self) -> dict[str, str]:
        return {"SCGI_MOUNT": self.mount_with_slash, "SCGI_BACKEND": self.backend_url()}

    def backend_url(self) -> str:
        if self.backend.transport == "unix":
            return f"unix:{self.backend.path}|fcgi://localhost"
        host, port = self.backend.host_port
        return f"fcgi://{host}:{port}"


class FastCGIAuthorizerApache(Apache):
    """Apache serving ``files_dir`` at /protected-files/ with deploy/apache-fastcgi-authorizer.conf:
    mod_authnz_fcgi asks runscgi (FCGI_AUTHORIZER) before it serves a file."""

    modules = ("mpm_event", "authz_core", "authn_core", "authz_user", "alias", "authnz_fcgi")
    deploy_file = DEPLOY / "apache-fastcgi-authorizer.conf"
    files_url = "/protected-files/"

    def __init__(self, *args, files_dir: Path, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.files_dir = files_dir
        modules = apache_modules_dir()
        if modules is None or not os.path.isfile(os.path.join(modules, "mod_authnz_fcgi.so")):
            pytest.skip(f"{MISSING}: apache2 has no mod_authnz_fcgi.so — {INSTALL_HINT}")

    def deploy_values(self) -> dict[str, str]:
        host, port = self.backend.host_port
        return {"SCGI_FILES_URL": self.files_url, "SCGI_FILES_DIR": str(self.files_dir),
                "SCGI_AUTHORIZER": f"fcgi://{host}:{port}/"}

    @property
    def serves_secure(self) -> bool:
        return False

    def app_lines(self) -> list[str]:
        # At server level, as the file says (its provider may not be in a vhost).
        return [*(f"Define {name} {apache_quote(value)}"
                  for name, value in self.deploy_values().items()),
                f"Listen {HOST}:{self.port}", f"Include {apache_quote(str(self.deploy_file))}"]


class FastCGILighttpd(Lighttpd):
    deploy_file = DEPLOY / "lighttpd-fastcgi.conf"


class Caddy(FrontEnd):
    """``caddy run`` with a Caddyfile importing deploy/caddy-fastcgi.caddy; its
    ``{$SCGI_…}`` values come from Caddy's environment, as in production."""

    kind = "caddy"
    error_log_name = "output.log"  # Caddy logs to its standard error

    @property
    def serves_secure(self) -> bool:
        return False

    def write_config(self) -> Path:
        path = self.run_dir / "Caddyfile"
        path.write_text(
            "{\n\tadmin off\n\tauto_https off\n}\n"
            f"http://{HOST}:{self.port} {{\n"
            f"\timport {DEPLOY / 'caddy-fastcgi.caddy'}\n"
            "}\n")
        return path

    def backend_value(self) -> str:
        if self.backend.transport == "unix":
            return f"unix/{self.backend.path}"
        return "{}:{}".format(*self.backend.host_port)

    def environment(self) -> dict[str, str]:
        home = str(self.run_dir)  # Caddy keeps its state under these
        return {**os.environ, "HOME": home, "XDG_DATA_HOME": home, "XDG_CONFIG_HOME": home,
                "SCGI_MOUNT": self.mount_with_slash, "SCGI_BACKEND": self.backend_value()}

    def command(self) -> list[str]:
        return [self.binary, "run", "--config", str(self.config_path), "--adapter", "caddyfile"]


FASTCGI_FRONT_ENDS: dict[str, type[FrontEnd]] = {
    "nginx": FastCGINginx, "apache": FastCGIApache, "lighttpd": FastCGILighttpd,
    "caddy": Caddy,
}


def cgi_fcgi(address: str, variables: Mapping[str, str], body: bytes = b"",
             timeout: float = 30.0) -> bytes:
    """One request with libfcgi's ``cgi-fcgi -bind -connect``: CGI variables in its
    environment, the body on its stdin; what it printed (the CGI response)."""
    binary = find_binary("cgi-fcgi")
    if binary is None:
        pytest.skip(f"{MISSING}: cgi-fcgi not installed (libfcgi-bin) — {INSTALL_HINT}")
    env = {"PATH": os.environ.get("PATH", ""), **variables}
    result = subprocess.run([binary, "-bind", "-connect", address], input=body, env=env,
                            capture_output=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout
