"""nginx and Apache in front of the servers, as a user would configure them.

One front-end process tree each, started once per run, with one listening port per
backend: SCGI backends get ``scgi_pass`` (nginx, Debian's ``scgi_params``) and
``mod_proxy_scgi`` (Apache); gunicorn gets ``proxy_pass`` and ``mod_proxy_http``.
Each front-end is one worker process (nginx ``worker_processes 1``; Apache event MPM
with one child of 64 threads), its access log off, pinned to the load generator's core.

Backend connections are the front-ends' defaults: nginx opens one per request for both
SCGI and HTTP (``proxy_http_version 1.0``); Apache's mod_proxy_http reuses connections
to gunicorn (its default), which SCGI cannot do.
FastCGI backends (issue 23) get what a user who wants connection reuse configures:
nginx ``fastcgi_pass`` to an ``upstream`` with ``keepalive`` and ``fastcgi_keep_conn on``
(Debian's ``fastcgi_params``), Apache ``mod_proxy_fcgi`` with ``enablereuse=on``; the
front-end then sends request after request over a few kept connections (to a backend
that honours FCGI_KEEP_CONN).
Backends that route on PATH_INFO alone (uWSGI) need it from the front-end: nginx gets
``scgi_param PATH_INFO $document_uri`` and Apache ``proxy-scgi-pathinfo``, for every
SCGI backend alike; for ``/`` it makes no difference.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from procs import Proc, wait_port

APACHE_MODULES = "/usr/lib/apache2/modules"


@dataclass(frozen=True)
class Route:
    listen: int       # front-end port
    backend: int      # backend port on 127.0.0.1
    protocol: str     # "scgi", "fastcgi" or "http"


# Idle kept connections per FastCGI upstream: as many as wrk keeps requests in flight
# (-c32), so that under load every request goes over a kept connection.
NGINX_KEEPALIVE = 32


def nginx_config(prefix: Path, routes: list[Route]) -> str:
    servers = []
    for route in routes:
        if route.protocol == "fastcgi":
            servers.append(f"""
    upstream fastcgi_{route.backend} {{
        server 127.0.0.1:{route.backend};
        keepalive {NGINX_KEEPALIVE};
    }}""")
            # SCRIPT_NAME/PATH_INFO: the same shape as for SCGI (uWSGI routes on PATH_INFO).
            location = ("include /etc/nginx/fastcgi_params;\n"
                        "            fastcgi_param SCRIPT_NAME \"\";\n"
                        "            fastcgi_param PATH_INFO $document_uri;\n"
                        "            fastcgi_keep_conn on;\n"
                        f"            fastcgi_pass fastcgi_{route.backend};")
        elif route.protocol == "scgi":
            # PATH_INFO for uWSGI, which routes on it alone (same lines for every backend).
            location = ("include /etc/nginx/scgi_params;\n"
                        "            scgi_param SCRIPT_NAME \"\";\n"
                        "            scgi_param PATH_INFO $document_uri;\n"
                        f"            scgi_pass 127.0.0.1:{route.backend};")
        else:
            location = f"proxy_pass http://127.0.0.1:{route.backend};"
        servers.append(f"""
    server {{
        listen 127.0.0.1:{route.listen} backlog=4096;
        server_name localhost;
        location / {{
            {location}
        }}
    }}""")
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}worker_processes 1;
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/nginx-error.log warn;
worker_rlimit_nofile 20000;
events {{
    worker_connections 16384;
}}
http {{
    access_log off;
    client_max_body_size 0;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    scgi_temp_path {prefix}/scgi;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    keepalive_requests 1000000;
{''.join(servers)}
}}
"""


def apache_config(prefix: Path, routes: list[Route]) -> str:
    modules = [name for name in ("mpm_event", "authz_core", "proxy", "proxy_scgi", "proxy_http",
                                 "proxy_fcgi", "setenvif", "unixd")
               if os.path.exists(f"{APACHE_MODULES}/mod_{name}.so")]  # unixd is built in
    lines = [f"ServerRoot {prefix}", f"PidFile {prefix}/apache.pid",
             f"DefaultRuntimeDir {prefix}", f"ErrorLog {prefix}/apache-error.log",
             "LogLevel warn", "ServerName localhost"]
    lines += [f"LoadModule {name}_module {APACHE_MODULES}/mod_{name}.so" for name in modules]
    if os.geteuid() == 0:
        lines += ["User www-data", "Group www-data"]
    lines += [
        "StartServers 1", "ServerLimit 1", "ThreadLimit 64", "ThreadsPerChild 64",
        "MaxRequestWorkers 64", "MinSpareThreads 1", "MaxSpareThreads 64",
        "MaxConnectionsPerChild 0", "KeepAlive On", "MaxKeepAliveRequests 0",
        "ListenBacklog 4096",
    ]
    for route in routes:
        lines.append(f"Listen 127.0.0.1:{route.listen}")
    for route in routes:
        scheme = {"scgi": "scgi", "fastcgi": "fcgi"}.get(route.protocol, "http")
        pathinfo = ('    SetEnvIf Request_URI "^" proxy-scgi-pathinfo=1\n'
                    if route.protocol == "scgi" else "")
        reuse = " enablereuse=on" if route.protocol == "fastcgi" else ""
        lines.append(
            f"<VirtualHost 127.0.0.1:{route.listen}>\n"
            f"{pathinfo}"
            f"    ProxyPass / {scheme}://127.0.0.1:{route.backend}/{reuse}\n"
            f"</VirtualHost>")
    return "\n".join(lines) + "\n"


class FrontEnd:
    """A running front-end; ``cpu()`` is the CPU time of its whole process tree."""

    def __init__(self, kind: str, workdir: Path, routes: list[Route], cpu: int | None,
                 env: dict[str, str]) -> None:
        self.kind = kind
        self.routes = routes
        prefix = workdir / kind
        prefix.mkdir(parents=True, exist_ok=True)
        os.chmod(prefix, 0o755)
        config = prefix / f"{kind}.conf"
        if kind == "nginx":
            config.write_text(nginx_config(prefix, routes))
            argv = [_binary("nginx"), "-c", str(config), "-p", str(prefix)]
            stop = signal.SIGQUIT
        else:
            config.write_text(apache_config(prefix, routes))
            argv = [_binary("apache2"), "-f", str(config), "-DFOREGROUND"]
            stop = signal.SIGTERM
        env = {k: v for k, v in env.items() if not k.startswith("APACHE_")}
        self.proc = Proc(kind, argv, env=env, cwd=prefix, log_path=prefix / "stdout.log",
                         cpu=cpu, stop_signal=stop)

    def wait(self, timeout: float = 20.0) -> bool:
        return all(wait_port(route.listen, timeout, self.proc) for route in self.routes)

    def cpu(self) -> float:
        return self.proc.cpu()

    def sleeps(self) -> int:
        return self.proc.sleeps()

    def error_log(self) -> str:
        name = "nginx-error.log" if self.kind == "nginx" else "apache-error.log"
        path = self.proc.log_path.parent / name
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""

    def stop(self) -> None:
        self.proc.stop()


def _binary(name: str) -> str:
    for directory in ("/usr/sbin", "/usr/bin", "/sbin"):
        path = os.path.join(directory, name)
        if os.access(path, os.X_OK):
            return path
    found = subprocess.run(["which", name], capture_output=True, text=True).stdout.strip()
    return found or name
