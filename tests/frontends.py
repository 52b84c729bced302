"""Real web front-ends (Apache httpd, nginx, lighttpd) in front of ``runscgi``, for tests.

Each front-end runs in the foreground from a config written to its own temp dir, on
127.0.0.1 ports the OS handed out, with its own pid file and error log, and is stopped
by PID. The configs the tests write are thin wrappers (ports, pid file, logs, TLS test
certificate) around the files users copy: ``deploy/apache.conf`` and
``deploy/lighttpd.conf`` are included as they are, ``deploy/nginx.conf`` gets its
``${NAME}`` placeholders filled in the way ``envsubst`` would. ``ApacheBalancer`` and
``NginxUpstream`` do the same with ``deploy/apache-balancer.conf`` and
``deploy/nginx-upstream.conf`` over several runscgi; ``ApacheFromFile`` runs a whole
httpd.conf written for the httpd Docker image (``deploy/docker/httpd.conf``).

``MollyBrown`` and ``Xitzin`` are Gemini front-ends (``deploy/molly-brown.conf``,
``deploy/xitzin_capsule.py``), asked with ``gemini_request`` over real TLS.

A front-end that is not installed makes its tests skip with a reason starting with
``FRONT-END MISSING``; ``conftest.pytest_terminal_summary`` prints those in a banner.
"""

from __future__ import annotations

import dataclasses
import grp
import hashlib
import http.client
import importlib.util
import io
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from django_scgi.client import Response

try:
    import psutil
except ImportError:  # a test extra; without it children are not swept after a SIGKILL
    psutil = None

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
MISSING = "FRONT-END MISSING"
INSTALL_HINT = "run ./dev test as root to install it"
HOST = "127.0.0.1"

BINARIES = {"apache": "apache2", "nginx": "nginx", "lighttpd": "lighttpd",
            "molly-brown": "molly-brown", "caddy": "caddy"}
# Debian's path first; the others are where other distributions put httpd's modules.
APACHE_MODULE_DIRS = ("/usr/lib/apache2/modules", "/usr/lib64/httpd/modules",
                      "/usr/lib/httpd/modules", "/usr/local/apache2/modules")
APACHE_MODULES = ("mpm_event", "authz_core", "alias", "proxy", "proxy_scgi", "ssl")
MIME_TYPES = "/etc/mime.types"  # Debian's media-types; Apache's TypesConfig default
# What the front-end's own workers run as when the tests run as root (Debian's user).
WORKER_ACCOUNTS = (("www-data", "www-data"), ("nobody", "nogroup"), ("nobody", "nobody"))

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


class FrontEndError(AssertionError):
    """A front-end did not start; the message carries its error log."""


# --- what is installed ----------------------------------------------------------------


def find_binary(name: str) -> str | None:
    """``name`` on PATH or in an sbin directory (not on a normal user's PATH)."""
    found = shutil.which(name)
    if found:
        return found
    for directory in ("/usr/sbin", "/usr/local/sbin", "/sbin"):
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def apache_modules_dir() -> str | None:
    for directory in APACHE_MODULE_DIRS:
        if os.path.isfile(os.path.join(directory, "mod_proxy_scgi.so")):
            return directory
    return None


def missing_reason(kind: str) -> str | None:
    """Why front-end ``kind`` cannot run here, or None when it can."""
    if kind == "xitzin":  # a Python package (the test extras), not a binary
        if importlib.util.find_spec("xitzin") is None:
            return f"{MISSING}: the xitzin package is not installed — pip install -e '.[test]'"
        return None
    binary = BINARIES[kind]
    if find_binary(binary) is None:
        return f"{MISSING}: {binary} not installed — {INSTALL_HINT}"
    if kind == "apache" and apache_modules_dir() is None:
        return f"{MISSING}: apache2 has no mod_proxy_scgi.so — {INSTALL_HINT}"
    if kind == "nginx" and nginx_conf_dir() is None:
        return f"{MISSING}: nginx's scgi_params file not found — {INSTALL_HINT}"
    return None


def require(kind: str) -> str:
    """The binary of front-end ``kind``; skips the test loudly when it is missing."""
    reason = missing_reason(kind)
    if reason:
        pytest.skip(reason)
    if kind == "xitzin":
        return sys.executable
    return find_binary(BINARIES[kind])


def nginx_conf_dir() -> Path | None:
    """The directory holding nginx's stock ``scgi_params`` (Debian: /etc/nginx)."""
    binary = find_binary("nginx")
    candidates = []
    if binary:
        result = subprocess.run([binary, "-V"], check=False, capture_output=True, text=True,
                                timeout=10)
        match = re.search(r"--conf-path=(\S+)", result.stderr + result.stdout)
        if match:
            candidates.append(Path(match.group(1)).parent)
    candidates += [Path("/etc/nginx"), Path("/usr/local/nginx/conf")]
    for directory in candidates:
        if (directory / "scgi_params").is_file():
            return directory
    return None


# --- ports, users, directories -------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 the OS just handed out.

    All are held at once while they are picked (so they differ), then released for the
    front-end to bind.
    """
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def worker_account() -> tuple[str, str] | None:
    """(user, group) for the front-ends' workers when we are root; None otherwise.

    Apache refuses to serve as root, so as root every front-end drops to this account,
    as it does in production; unprivileged, they all run as ourselves.
    """
    if os.geteuid() != 0:
        return None
    for user, group in WORKER_ACCOUNTS:
        try:
            pwd.getpwnam(user)
            grp.getgrnam(group)
        except KeyError:
            continue
        return user, group
    return None


def make_run_dir(prefix: str) -> Path:
    """A temp dir the front-end's workers can traverse (they read files below it)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def make_socket_dir() -> Path:
    """A short dir for runscgi's unix socket that the front-end's workers can reach.

    As root this is the production recipe: the directory belongs to the workers' group
    with the setgid bit, so the socket runscgi creates there (mode 660, the default)
    gets that group and the workers may connect; nobody else can.
    """
    path = Path(tempfile.mkdtemp(prefix="scgi-", dir="/tmp"))
    account = worker_account()
    if account:
        os.chown(path, 0, grp.getgrnam(account[1]).gr_gid)
        path.chmod(0o2750)
    return path


def give_to_workers(path: Path) -> None:
    """Let the workers write in ``path`` (temp files of buffered request bodies)."""
    account = worker_account()
    if account:
        os.chown(path, pwd.getpwnam(account[0]).pw_uid, grp.getgrnam(account[1]).gr_gid)


# --- TLS test certificate --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    @property
    def sha256(self) -> str:
        """The SHA-256 of the DER certificate, hex: what Gemini servers identify it by."""
        der = ssl.PEM_cert_to_DER_cert(self.cert.read_text())
        return hashlib.sha256(der).hexdigest()


def make_certificate(directory: Path) -> Certificate | None:
    """A throw-away self-signed certificate for 127.0.0.1; None without ``openssl``.

    Also a Gemini client certificate (``Certificate.sha256``, ``client_side_context``).
    """
    openssl = find_binary("openssl")
    if openssl is None:
        return None
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )
    key.chmod(0o600)
    return Certificate(cert, key)


# --- backends ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Backend:
    """Where runscgi listens, as its start-up banner printed it."""

    address: str  # "127.0.0.1:PORT" or "unix:/tmp/scgi-…/scgi.sock"

    @property
    def transport(self) -> str:
        return "unix" if self.address.startswith("unix:") else "tcp"

    @property
    def path(self) -> str:
        return self.address[len("unix:"):]

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.address.rpartition(":")
        return host, int(port)


class TwoListenerBackend:
    """A runscgi of the demo project on a TCP port and a unix socket, stopped by PID.

    ``args`` come before the two addresses (``--protocol fastcgi``, say); ``env`` is laid
    over the test run's environment, from which ``dropped`` names are removed first.
    """

    def __init__(self, tmp_dir: Path, args: list[str], socket_name: str,
                 dropped: Iterable[str], env: Mapping[str, str]) -> None:
        from helpers import REPO, ServerProcess

        self.socket_dir = make_socket_dir()
        environ = {key: value for key, value in os.environ.items() if key not in set(dropped)}
        environ.update({"DJANGO_SETTINGS_MODULE": "testproject.settings",
                        "DJANGO_DB_PATH": str(tmp_dir / "db.sqlite3"),
                        "PYTHONUNBUFFERED": "1", **env})
        addresses = [f"{HOST}:0", f"unix:{self.socket_dir}/{socket_name}"]
        self.server = ServerProcess([*args, *addresses], environ, REPO, None)
        try:
            self.server.wait_started()
        except BaseException:
            self.stop()
            raise
        self.by_transport = {Backend(a).transport: Backend(a) for a in self.server.addresses}

    def output_tail(self) -> str:
        return "\n".join(self.server.lines[-100:])

    def stop(self) -> None:
        try:
            self.server.stop()
        finally:
            shutil.rmtree(self.socket_dir, ignore_errors=True)


# --- rendering --------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"\$\{(SCGI_[A-Z0-9_]+)\}")


def render(text: str, values: Mapping[str, str]) -> str:
    """Fill ``${SCGI_…}`` placeholders as envsubst would; every one must have a value."""
    names = set(PLACEHOLDER.findall(text))
    missing = names - set(values)
    if missing:
        raise KeyError(f"no value for placeholders {sorted(missing)}")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def apache_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lighttpd_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- front-ends -------------------------------------------------------------------------


class FrontEnd:
    """One front-end process. Subclasses write the config and know the command line.

    ``mount`` is the project's prefix as Django writes SCRIPT_NAME: "/app" or "" (root).
    ``port`` serves plain HTTP; ``secure_port`` serves requests the front-end marks as
    HTTPS (real TLS for Apache and nginx; see Lighttpd for lighttpd), or is None.
    """

    kind = ""
    error_log_name = "error.log"

    def __init__(self, run_dir: Path, *, mount: str, backend: Backend, offload_dir: Path,
                 certificate: Certificate | None = None) -> None:
        self.run_dir = run_dir
        self.mount = mount
        self.backend = backend
        self.offload_dir = offload_dir
        self.certificate = certificate
        self.binary = require(self.kind)
        ports = free_ports(2)
        self.port = ports[0]
        self.secure_port: int | None = ports[1] if self.serves_secure else None
        self.proc: subprocess.Popen | None = None
        self.config_path: Path | None = None
        self._output = run_dir / "output.log"

    @property
    def serves_secure(self) -> bool:
        return self.certificate is not None

    @property
    def secure_context(self) -> ssl.SSLContext | None:
        return self.certificate.client_context() if self.certificate else None

    @property
    def mount_with_slash(self) -> str:
        return self.mount + "/"

    # -- to be provided by subclasses --

    def write_config(self) -> Path:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        """The front-end's environment; None: ours."""
        return None

    # -- life cycle --

    def start(self) -> FrontEnd:
        self.config_path = self.write_config()
        with open(self._output, "wb") as output:
            self.proc = subprocess.Popen(
                self.command(), cwd=self.run_dir, env=self.environment(), stdin=subprocess.DEVNULL,
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        """Until the plain port answers an HTTP request and the other one accepts."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise FrontEndError(f"{self.kind} exited with {self.proc.returncode}:\n"
                                    + self.logs_text())
            if _answers_http(self.port) and (not self.secure_port or _accepts(self.secure_port)):
                return
            if time.monotonic() > deadline:
                raise FrontEndError(f"{self.kind} did not answer in {START_TIMEOUT}s:\n"
                                    + self.logs_text())
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM to our process, then SIGKILL; its children are checked by PID too."""
        proc = self.proc
        if proc is None:
            return
        children = _children(proc.pid)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(STOP_TIMEOUT)
        for child in children:
            _reap_child(child)

    # -- diagnostics --

    def error_log(self) -> str:
        return _read_text(self.run_dir / self.error_log_name)

    def logs_text(self) -> str:
        return (f"--- {self.kind} error log ---\n{self.error_log()}\n"
                f"--- {self.kind} stdout/stderr ---\n{_read_text(self._output)}\n"
                f"--- config {self.config_path} ---\n"
                + (_read_text(self.config_path) if self.config_path else ""))

    def diagnostics(self) -> list[tuple[str, str]]:
        return [(f"{self.kind} error log", self.error_log()),
                (f"{self.kind} output", _read_text(self._output))]


class Apache(FrontEnd):
    """``apache2 -f <conf> -DFOREGROUND``, event MPM, two vhosts including deploy/apache.conf.

    The deploy file's variables come from ``Define`` lines, and it is included inside
    ``<VirtualHost>`` (plain and TLS), as on a Debian server.
    """

    kind = "apache"
    modules = APACHE_MODULES
    deploy_file = DEPLOY / "apache.conf"

    def deploy_values(self) -> dict[str, str]:
        return {"SCGI_MOUNT": self.mount_with_slash, "SCGI_BACKEND": self.backend_url(),
                "SCGI_OFFLOAD_DIR": str(self.offload_dir)}

    def app_lines(self) -> list[str]:
        """Variables, Listen and the deploy file included in one vhost per port."""
        include = f"    Include {apache_quote(str(self.deploy_file))}"
        lines = [f"Define {name} {apache_quote(value)}"
                 for name, value in self.deploy_values().items()]
        lines += [f"Listen {HOST}:{self.port}",
                  f"<VirtualHost {HOST}:{self.port}>", include, "</VirtualHost>"]
        if self.secure_port:
            lines += [
                f"Listen {HOST}:{self.secure_port} https",
                f"<VirtualHost {HOST}:{self.secure_port}>",
                "    SSLEngine on",
                f"    SSLCertificateFile {apache_quote(str(self.certificate.cert))}",
                f"    SSLCertificateKeyFile {apache_quote(str(self.certificate.key))}",
                include,
                "</VirtualHost>",
            ]
        return lines

    def write_config(self) -> Path:
        modules = apache_modules_dir()
        run = self.run_dir
        account = worker_account()
        lines = [
            f"ServerRoot {apache_quote(str(run))}",
            f"DefaultRuntimeDir {apache_quote(str(run))}",
            f"PidFile {apache_quote(str(run / 'httpd.pid'))}",
            f"ErrorLog {apache_quote(str(run / self.error_log_name))}",
            "LogLevel warn",
            f"Mutex file:{run} default",
            *(f"LoadModule {name}_module {modules}/mod_{name}.so" for name in self.modules),
            "StartServers 1",
            "ServerLimit 2",
            "ThreadLimit 32",
            "ThreadsPerChild 32",
            "MaxRequestWorkers 64",
            "MinSpareThreads 8",
            "MaxSpareThreads 64",
            *([f"User {account[0]}", f"Group {account[1]}"] if account else []),
            "ServerName localhost",
            # As in Debian's apache2.conf and the httpd image's httpd.conf.
            "<Directory />",
            "    AllowOverride None",
            "    Require all denied",
            "</Directory>",
            *self.app_lines(),
        ]
        path = run / "httpd.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def backend_url(self) -> str:
        if self.backend.transport == "unix":
            return f"unix:{self.backend.path}|scgi://localhost"
        host, port = self.backend.host_port
        return f"scgi://{host}:{port}"

    def command(self) -> list[str]:
        return [self.binary, "-f", str(self.config_path), "-DFOREGROUND"]


class ApacheWithStatic(Apache):
    """deploy/apache-static.conf included before deploy/apache.conf: Apache serves
    ``static_root`` (collectstatic's STATIC_ROOT) at ``<mount>/static/``."""

    # mod_mime gives the files their Content-Type (Debian enables it by default).
    modules = (*APACHE_MODULES, "mime")

    def __init__(self, run_dir: Path, *, static_root: Path, **kwargs) -> None:
        super().__init__(run_dir, **kwargs)
        self.static_root = static_root

    def deploy_values(self) -> dict[str, str]:
        return {**super().deploy_values(), "SCGI_STATIC_URL": self.mount + "/static/",
                "SCGI_STATIC_ROOT": str(self.static_root)}

    def app_lines(self) -> list[str]:
        lines = super().app_lines()
        static = f"    Include {apache_quote(str(DEPLOY / 'apache-static.conf'))}"
        index = lines.index(f"    Include {apache_quote(str(DEPLOY / 'apache.conf'))}")
        types = [f"TypesConfig {MIME_TYPES}"] if os.path.isfile(MIME_TYPES) else []
        return [*types, *lines[:index], static, *lines[index:]]


class ApacheFromEnvironment(Apache):
    """The container way: deploy/apache.conf at server level (as in the httpd image's
    httpd.conf, which has no vhost), its variables from httpd's environment."""

    @property
    def serves_secure(self) -> bool:
        return False

    def app_lines(self) -> list[str]:
        return [f"Listen {HOST}:{self.port}",
                f"Include {apache_quote(str(DEPLOY / 'apache.conf'))}"]

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.deploy_values()}


def scgi_url(backend: Backend) -> str:
    """A TCP backend as mod_proxy_scgi's URL, without a trailing slash."""
    host, port = backend.host_port
    return f"scgi://{host}:{port}"


class ApacheBalancer(Apache):
    """deploy/apache-balancer.conf in one vhost over several runscgi (TCP members).

    ``members`` fill ``SCGI_MEMBER_1`` … in order, from ``Define`` lines.
    """

    modules = (*APACHE_MODULES, "slotmem_shm", "proxy_balancer", "lbmethod_byrequests",
               "lbmethod_bybusyness")
    deploy_file = DEPLOY / "apache-balancer.conf"

    def __init__(self, run_dir: Path, *, mount: str, members: list[Backend],
                 offload_dir: Path) -> None:
        super().__init__(run_dir, mount=mount, backend=members[0], offload_dir=offload_dir)
        self.members = members

    def deploy_values(self) -> dict[str, str]:
        values = {"SCGI_MOUNT": self.mount_with_slash, "SCGI_OFFLOAD_DIR": str(self.offload_dir)}
        for number, member in enumerate(self.members, 1):
            values[f"SCGI_MEMBER_{number}"] = scgi_url(member)
        return values

    def app_lines(self) -> list[str]:
        return [*(f"Define {name} {apache_quote(value)}"
                  for name, value in self.deploy_values().items()),
                f"Listen {HOST}:{self.port}",
                f"<VirtualHost {HOST}:{self.port}>",
                f"    Include {apache_quote(str(self.deploy_file))}",
                "</VirtualHost>"]


class ApacheFromFile(Apache):
    """A whole httpd.conf written for another machine, run by Debian's apache2 here.

    For ``deploy/docker/httpd.conf``, written for the httpd:2.4 image: its ``ServerRoot``
    becomes the run dir, with ``modules`` linking to Debian's modules, ``logs`` for the
    pid file and ``files`` (paths below ServerRoot → host paths, e.g. what a container's
    volumes put in ``conf/``) linked in place; each ``Listen PORT`` becomes a port from
    the OS on 127.0.0.1 (``<VirtualHost *:PORT>`` follows); ``User``/``Group`` are dropped
    unless we are root. ``variables`` are httpd's environment (its ``${NAME}``s).
    """

    def __init__(self, run_dir: Path, *, config: Path, files: Mapping[str, Path],
                 variables: Mapping[str, str]) -> None:
        self.run_dir = run_dir
        self.source = config
        self.files = dict(files)
        self.variables = dict(variables)
        self.binary = require(self.kind)
        listened = [int(port) for port in re.findall(r"(?im)^\s*Listen\s+(?:\S*:)?(\d+)",
                                                     config.read_text())]
        self.ports = dict(zip(listened, free_ports(len(listened))))
        self.port = self.ports[listened[0]]
        self.secure_port = None
        self.proc = None
        self.config_path = None
        self._output = run_dir / "output.log"

    def write_config(self) -> Path:
        run = self.run_dir
        (run / "modules").symlink_to(apache_modules_dir())
        (run / "logs").mkdir()
        for relative, target in self.files.items():
            link = run / relative
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target)
        lines = [self._translate(line) for line in self.source.read_text().splitlines()]
        path = run / "httpd.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _translate(self, line: str) -> str:
        words = line.split()
        directive = words[0].lower() if words else ""
        if directive == "serverroot":
            return f"ServerRoot {apache_quote(str(self.run_dir))}"
        if directive == "listen":
            port = int(words[1].rpartition(":")[2])
            return f"Listen {HOST}:{self.ports[port]}"
        if directive in ("user", "group") and worker_account() is None:
            return f"# (not root) {line}"
        return re.sub(r"<VirtualHost \*:(\d+)>",
                      lambda match: f"<VirtualHost *:{self.ports[int(match.group(1))]}>", line)

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.variables}

    def error_log(self) -> str:
        # The file logs to /proc/self/fd/2, as in a container: that is our output file.
        return _read_text(self._output)


class Nginx(FrontEnd):
    """``nginx -p <dir> -c <conf> -e <log> -g 'daemon off;'`` with deploy/nginx.conf rendered."""

    kind = "nginx"
    deploy_file = DEPLOY / "nginx.conf"
    # Stock files the deploy file may include, copied next to the config as /etc/nginx has them.
    stock_files = ("scgi_params", "mime.types")

    def deploy_values(self) -> dict[str, str]:
        backend = self.backend.address if self.backend.transport == "unix" else (
            "{}:{}".format(*self.backend.host_port))
        return {"SCGI_MOUNT": self.mount_with_slash, "SCGI_BACKEND": backend,
                "SCGI_OFFLOAD_DIR": str(self.offload_dir)}

    def app_config(self) -> str:
        """What goes inside each server block: the deploy file, filled in."""
        return render(self.deploy_file.read_text(), self.deploy_values())

    def http_config(self) -> str:
        """Extra lines for the ``http { }`` block (none by default)."""
        return ""

    def write_config(self) -> Path:
        run = self.run_dir
        # The conf dir mimics /etc/nginx: `include scgi_params;` finds the stock file.
        conf_dir = nginx_conf_dir()
        for name in self.stock_files:
            if (conf_dir / name).is_file():
                shutil.copy(conf_dir / name, run / name)
        mime = "include mime.types;" if (run / "mime.types").is_file() else ""
        (run / "django-scgi.conf").write_text(self.app_config())
        temp = run / "temp"
        temp.mkdir(exist_ok=True)
        account = worker_account()
        servers = [f"""
    server {{
        listen {HOST}:{self.port};
        server_name localhost;
        include django-scgi.conf;
    }}"""]
        if self.secure_port:
            servers.append(f"""
    server {{
        listen {HOST}:{self.secure_port} ssl;
        server_name localhost;
        ssl_certificate {self.certificate.cert};
        ssl_certificate_key {self.certificate.key};
        include django-scgi.conf;
    }}""")
        text = f"""
{f"user {account[0]} {account[1]};" if account else ""}
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/{self.error_log_name} warn;
events {{ worker_connections 512; }}
http {{
    {mime}
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
{self.http_config()}
{"".join(servers)}
}}
"""
        path = run / "nginx.conf"
        path.write_text(text)
        return path

    def command(self) -> list[str]:
        return [self.binary, "-p", str(self.run_dir), "-c", str(self.config_path),
                "-e", str(self.run_dir / self.error_log_name), "-g", "daemon off;"]


class NginxUpstream(Nginx):
    """deploy/nginx-upstream.conf in the http block over several runscgi (TCP members),
    deploy/nginx.conf in the server block with ``SCGI_BACKEND=django_scgi``."""

    upstream_name = "django_scgi"

    def __init__(self, run_dir: Path, *, mount: str, members: list[Backend],
                 offload_dir: Path) -> None:
        super().__init__(run_dir, mount=mount, backend=members[0], offload_dir=offload_dir)
        self.members = members

    def deploy_values(self) -> dict[str, str]:
        return {**super().deploy_values(), "SCGI_BACKEND": self.upstream_name}

    def http_config(self) -> str:
        values = {f"SCGI_MEMBER_{number}": "{}:{}".format(*member.host_port)
                  for number, member in enumerate(self.members, 1)}
        (self.run_dir / "django-scgi-upstream.conf").write_text(
            render((DEPLOY / "nginx-upstream.conf").read_text(), values))
        return "    include django-scgi-upstream.conf;"


class NginxWithStatic(Nginx):
    """deploy/nginx-static.conf beside deploy/nginx.conf: nginx serves ``static_root``
    (collectstatic's STATIC_ROOT) at ``<mount>/static/``."""

    def __init__(self, run_dir: Path, *, static_root: Path, **kwargs) -> None:
        super().__init__(run_dir, **kwargs)
        self.static_root = static_root

    def app_config(self) -> str:
        values = {"SCGI_STATIC_URL": self.mount + "/static/",
                  "SCGI_STATIC_ROOT": str(self.static_root)}
        return super().app_config() + render((DEPLOY / "nginx-static.conf").read_text(), values)


class NginxPortInHost(Nginx):
    """deploy/nginx.conf with its recipe for a non-default port switched on: the
    commented ``scgi_param HTTP_HOST $host:$server_port;`` line, uncommented."""

    RECIPE = "scgi_param HTTP_HOST $host:$server_port;"

    def app_config(self) -> str:
        text = super().app_config()
        commented = "# " + self.RECIPE
        assert text.count(commented) == 1, f"deploy/nginx.conf lost the line {commented!r}"
        return text.replace(commented, self.RECIPE)


class StockNginx(Nginx):
    """nginx with the plain ``include scgi_params;`` location and no SCRIPT_NAME hint.

    Not a recommended config: the case where FORCE_SCRIPT_NAME is the one place that
    knows the prefix.
    """

    def app_config(self) -> str:
        values = self.deploy_values()
        return (f"location {values['SCGI_MOUNT']} {{\n"
                f"    include scgi_params;\n"
                f"    scgi_pass {values['SCGI_BACKEND']};\n"
                f"}}\n")


class Lighttpd(FrontEnd):
    """``lighttpd -D -f <conf>`` including deploy/lighttpd.conf.

    Debian ships lighttpd's TLS module as a separate package, so the "secure" port is a
    second plain port where mod_setenv adds ``HTTPS=on`` -- the variable lighttpd sends
    over TLS (docs/frontend-variables.rst §2.3). It is always available.
    """

    kind = "lighttpd"
    deploy_file = DEPLOY / "lighttpd.conf"

    @property
    def serves_secure(self) -> bool:
        return True

    @property
    def secure_context(self) -> ssl.SSLContext | None:
        return None

    def backend_array(self) -> str:
        if self.backend.transport == "unix":
            return f'( "socket" => {lighttpd_string(self.backend.path)} )'
        host, port = self.backend.host_port
        return f'( "host" => {lighttpd_string(host)}, "port" => {port} )'

    def write_config(self) -> Path:
        run = self.run_dir
        docroot, uploads = run / "htdocs", run / "uploads"
        docroot.mkdir(exist_ok=True)
        uploads.mkdir(exist_ok=True)
        give_to_workers(uploads)
        # lighttpd opens its error log after dropping to server.username.
        error_log = run / self.error_log_name
        error_log.touch()
        give_to_workers(error_log)
        account = worker_account()
        lines = [
            f"server.document-root = {lighttpd_string(str(docroot))}",
            f'server.bind = "{HOST}"',
            f"server.port = {self.port}",
            f"server.errorlog = {lighttpd_string(str(run / self.error_log_name))}",
            f"server.pid-file = {lighttpd_string(str(run / 'lighttpd.pid'))}",
            f"server.upload-dirs = ( {lighttpd_string(str(uploads))} )",
            *([f'server.username = "{account[0]}"', f'server.groupname = "{account[1]}"']
              if account else []),
            'server.modules += ( "mod_setenv" )',
            f'$SERVER["socket"] == "{HOST}:{self.secure_port}" {{',
            '    setenv.add-environment = ( "HTTPS" => "on" )',
            "}",
            f"var.scgi_mount = {lighttpd_string(self.mount or '/')}",
            f"var.scgi_backend = {self.backend_array()}",
            f"var.scgi_offload_dir = {lighttpd_string(str(self.offload_dir))}",
            f"include {lighttpd_string(str(self.deploy_file))}",
        ]
        path = run / "lighttpd.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def command(self) -> list[str]:
        return [self.binary, "-D", "-f", str(self.config_path)]


# --- Gemini front-ends ------------------------------------------------------------------


class GeminiFrontEnd(FrontEnd):
    """A Gemini server in front of runscgi: TLS on ``port``, Django below ``mount``.

    ``certificate`` is the server's own (Gemini clients trust on first use; the tests do
    not verify it). ``url(path)`` is the URL a client asks for a path below the mount.
    """

    hostname = "localhost"

    def __init__(self, run_dir: Path, *, mount: str, backend: Backend,
                 certificate: Certificate) -> None:
        super().__init__(run_dir, mount=mount, backend=backend, offload_dir=run_dir,
                         certificate=certificate)

    @property
    def serves_secure(self) -> bool:
        return False  # ``port`` itself is TLS: there is no second port

    def url(self, path: str = "/") -> str:
        return f"gemini://{self.hostname}:{self.port}{self.mount}{path}"

    def _wait_ready(self) -> None:
        # Twice the HTTP front-ends' bound: Xitzin imports a TLS stack in Python first.
        deadline = time.monotonic() + 2 * START_TIMEOUT
        while not _accepts(self.port):
            if self.proc.poll() is not None:
                raise FrontEndError(f"{self.kind} exited with {self.proc.returncode}:\n"
                                    + self.logs_text())
            if time.monotonic() > deadline:
                raise FrontEndError(f"{self.kind} did not listen in {2 * START_TIMEOUT}s:\n"
                                    + self.logs_text())
            time.sleep(0.05)


class MollyBrown(GeminiFrontEnd):
    """Debian's ``molly-brown -c <conf>``, the config made from deploy/molly-brown.conf.

    Molly Brown reaches SCGI backends over unix sockets only; it listens on every
    interface of ``port``.
    """

    kind = "molly-brown"

    def write_config(self) -> Path:
        docs = self.run_dir / "docs"
        docs.mkdir(exist_ok=True)
        (docs / "index.gmi").write_text("# Molly Brown's own page\n")
        values = {
            "SCGI_GEMINI_HOSTNAME": self.hostname, "SCGI_GEMINI_PORT": str(self.port),
            "SCGI_GEMINI_CERT": str(self.certificate.cert),
            "SCGI_GEMINI_KEY": str(self.certificate.key), "SCGI_GEMINI_DOCBASE": str(docs),
            "SCGI_GEMINI_LOGDIR": str(self.run_dir), "SCGI_MOUNT": self.mount,
            "SCGI_SOCKET": self.backend.path,
        }
        path = self.run_dir / "molly-brown.conf"
        path.write_text(render((DEPLOY / "molly-brown.conf").read_text(), values))
        return path

    def command(self) -> list[str]:
        return [self.binary, "-c", str(self.config_path)]


class Xitzin(GeminiFrontEnd):
    """deploy/xitzin_capsule.py: Xitzin's own Gemini server and SCGI client (TCP or unix)."""

    kind = "xitzin"
    error_log_name = "output.log"

    def write_config(self) -> Path:
        return DEPLOY / "xitzin_capsule.py"

    def command(self) -> list[str]:
        return [self.binary, str(self.config_path)]

    def environment(self) -> dict[str, str]:
        return {**os.environ, "SCGI_BACKEND": self.backend.address, "SCGI_MOUNT": self.mount,
                "GEMINI_HOST": HOST, "GEMINI_PORT": str(self.port),
                "GEMINI_CERT": str(self.certificate.cert),
                "GEMINI_KEY": str(self.certificate.key)}


FRONT_ENDS: dict[str, type[FrontEnd]] = {
    "apache": Apache, "nginx": Nginx, "lighttpd": Lighttpd, "nginx-stock": StockNginx,
    "apache-env": ApacheFromEnvironment, "nginx-port-in-host": NginxPortInHost,
}


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _answers_http(port: int) -> bool:
    """Any HTTP response at all (a 404 for the probe path is fine)."""
    try:
        request(port, "HEAD", "/.frontend-ready-probe", timeout=2.0)
        return True
    except (OSError, http.client.HTTPException):
        return False


def _children(pid: int) -> list:
    if psutil is None:
        return []
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _reap_child(child) -> None:
    """Wait for a child of a stopped front-end; SIGKILL it by PID if it lingers."""
    try:
        child.wait(STOP_TIMEOUT)
    except psutil.TimeoutExpired:
        try:
            child.kill()
        except psutil.Error:
            pass
    except psutil.Error:
        pass


def _read_text(path: Path, limit: int = 20000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"({error})"
    return text if len(text) <= limit else "…" + text[-limit:]


# --- HTTP client ------------------------------------------------------------------------


@dataclasses.dataclass
class Reply(Response):
    """An HTTP response from a front-end: the SCGI client's Response, plus helpers."""

    def json(self) -> dict:
        assert self.status == 200, self.describe()
        return json.loads(self.body)

    @property
    def from_django(self) -> bool:
        """Django's SecurityMiddleware set this header: the answer came from the project."""
        return self.header("Cross-Origin-Opener-Policy") == "same-origin"

    def describe(self) -> str:
        head = "\n".join(f"{name}: {value}" for name, value in self.headers)
        return f"{self.status} {self.reason}\n{head}\n\n{self.body[:2000]!r}"


def _connection(port: int, context: ssl.SSLContext | None, timeout: float):
    if context is not None:
        return http.client.HTTPSConnection(HOST, port, timeout=timeout, context=context)
    return http.client.HTTPConnection(HOST, port, timeout=timeout)


def request(port: int, method: str, target: str, *, body: bytes | None = None,
            headers: Iterable[tuple[str, str]] = (), context: ssl.SSLContext | None = None,
            timeout: float = 60.0) -> Reply:
    """One request on a fresh connection; repeated header names are sent repeatedly."""
    conn = _connection(port, context, timeout)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, response.reason, response.getheaders(), data)
    finally:
        conn.close()


def timed_chunks(port: int, target: str, timeout: float = 30.0) -> tuple[float, bytes, Reply]:
    """GET ``target``; (wall-clock time the first body bytes arrived, whole body, reply)."""
    conn = _connection(port, None, timeout)
    try:
        conn.request("GET", target)
        response = conn.getresponse()
        first_at, pieces = None, []
        while piece := response.read1(65536):
            if first_at is None:
                first_at = time.time()
            pieces.append(piece)
        body = b"".join(pieces)
        return first_at, body, Reply(response.status, response.reason, response.getheaders(), body)
    finally:
        conn.close()


def raw_exchange(port: int, data: bytes, timeout: float = 30.0) -> bytes:
    """Send raw request bytes (ending with Connection: close); all bytes until close."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


class _BytesSocket:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, *args, **kwargs):
        return io.BytesIO(self._data)


def parse_reply(data: bytes, method: str = "GET") -> Reply:
    """A raw HTTP/1.x response (as read by ``raw_exchange``) as a Reply."""
    response = http.client.HTTPResponse(_BytesSocket(data), method=method)
    response.begin()
    body = response.read()
    return Reply(response.status, response.reason, response.getheaders(), body)


# --- a front-end in front of a runscgi ----------------------------------------------------


@dataclasses.dataclass
class Deployment:
    """A started front-end serving the project at ``mount`` ("/app" or "" for the root)."""

    frontend: FrontEnd
    backend_output: object  # a callable returning runscgi's output so far

    @property
    def kind(self) -> str:
        return self.frontend.kind

    @property
    def mount(self) -> str:
        return self.frontend.mount

    @property
    def port(self) -> int:
        return self.frontend.port

    def request(self, method: str, path: str, *, secure: bool = False, **kwargs) -> Reply:
        """``path`` below the mount ("/info/"); ``secure``: through the HTTPS port."""
        if secure:
            return request(self.frontend.secure_port, method, self.mount + path,
                           context=self.frontend.secure_context, **kwargs)
        return request(self.port, method, self.mount + path, **kwargs)

    def get(self, path: str, **kwargs) -> Reply:
        return self.request("GET", path, **kwargs)

    def get_json(self, path: str, **kwargs) -> dict:
        return self.get(path, **kwargs).json()

    def raw(self, request_line: bytes, headers: Iterable[bytes] = ()) -> bytes:
        """A request with the exact bytes of ``request_line``; the raw response."""
        head = [request_line, f"Host: {HOST}:{self.port}".encode(), b"Connection: close",
                *headers]
        return raw_exchange(self.port, b"\r\n".join(head) + b"\r\n\r\n")

    def frontend_diagnostics(self) -> list[tuple[str, str]]:
        output = self.backend_output()
        return [*self.frontend.diagnostics(), ("runscgi output (last 100 lines)", output)]


# --- Gemini client -----------------------------------------------------------------------


@dataclasses.dataclass
class GeminiReply:
    """A Gemini answer: ``code`` and ``meta`` from the head, then the body bytes."""

    head: bytes
    body: bytes

    @property
    def code(self) -> int:
        return int(self.head[:2])

    @property
    def meta(self) -> str:
        return self.head[3:-2].decode("utf-8")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def gemini_connection(port: int, url: str, *, client_certificate: Certificate | None = None,
                      timeout: float = 30.0) -> ssl.SSLSocket:
    """A TLS connection to a Gemini server on 127.0.0.1 that has sent the request ``url``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # Gemini trusts on first use; not under test
    if client_certificate is not None:
        context.load_cert_chain(str(client_certificate.cert), str(client_certificate.key))
    sock = socket.create_connection((HOST, port), timeout=timeout)
    try:
        tls = context.wrap_socket(sock, server_hostname="localhost")
        tls.sendall(url.encode("utf-8") + b"\r\n")
    except BaseException:
        sock.close()
        raise
    return tls


def gemini_request(port: int, url: str, *, client_certificate: Certificate | None = None,
                   timeout: float = 30.0) -> GeminiReply:
    """Ask for ``url``, read the whole answer (until the server closes) and split it."""
    with gemini_connection(port, url, client_certificate=client_certificate,
                           timeout=timeout) as tls:
        data = b""
        while chunk := _recv_tls(tls):
            data += chunk
    end = data.find(b"\r\n")
    assert end >= 0, f"no Gemini head in {data[:200]!r}"
    return GeminiReply(data[: end + 2], data[end + 2 :])


def _recv_tls(tls: ssl.SSLSocket) -> bytes:
    try:
        return tls.recv(65536)
    except ssl.SSLEOFError:  # a server that closes without close_notify
        return b""
