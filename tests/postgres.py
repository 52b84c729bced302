"""A throw-away PostgreSQL cluster for the database tests.

``initdb`` in a temp dir with Debian's binaries (``/usr/lib/postgresql/*/bin``), run as
the ``postgres`` account when the tests run as root (PostgreSQL refuses to run as
root), listening on 127.0.0.1 on a free high port and on a unix socket in the temp
dir. ``max_connections`` is small on purpose, so a burst of requests can exceed it.
Started with ``pg_ctl start``, stopped with ``pg_ctl stop`` and, failing that, by the
postmaster's PID. A missing PostgreSQL makes the tests skip with a reason starting with
``DATABASE MISSING``.

The application connects as ``scgi``, an ordinary role (so the reserved superuser slots
stay free); the tests watch the cluster as the superuser ``postgres`` through psql.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

MISSING = "DATABASE MISSING"
HOST = "127.0.0.1"
# Small enough that a burst of 3x or 10x it is cheap; the reserved superuser slots
# leave room for the tests' own psql while the application holds all of its slots.
MAX_CONNECTIONS = 20
SUPERUSER_RESERVED = 3
APP_USER = "scgi"
APP_DATABASE = "scgi"
START_TIMEOUT = 60


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/N/bin`` that has initdb, or one on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda path: int(Path(path).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class PostgresCluster:
    """One cluster in its own temp dir; ``start()``, ``stop()``, ``restart()``, ``psql()``."""

    def __init__(self, bindir: Path, log_statements: bool = True) -> None:
        self.bindir = bindir
        self.log_statements = log_statements
        self.root = Path(tempfile.mkdtemp(prefix="scgi-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.user = self._account()
        if self.user is not None:
            # The cluster's files belong to the account that runs it.
            record = pwd.getpwnam(self.user)
            os.chown(self.root, record.pw_uid, record.pw_gid)

    @staticmethod
    def _account() -> str | None:
        """``postgres`` when we are root (initdb and postgres refuse root), else None."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip(f"{MISSING}: running as root and there is no postgres account")
        return "postgres"

    def _run(self, *args: str, timeout: float = START_TIMEOUT) -> str:
        done = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]], user=self.user, cwd=self.root,
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
            check=False,
        )
        if done.returncode:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}):\n{done.stdout}"
                               f"{done.stderr}\n{self.log_text()}")
        return done.stdout

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def init(self) -> None:
        # trust on 127.0.0.1 and the private socket dir: a throw-away cluster.
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")

    def start(self) -> None:
        options = " ".join([
            f"-p {self.port}", f"-k {self.socket_dir}", f"-c listen_addresses={HOST}",
            f"-c max_connections={MAX_CONNECTIONS}",
            f"-c superuser_reserved_connections={SUPERUSER_RESERVED}",
            # Speed over durability: nothing here outlives the test session.
            "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
            # Every statement, with the backend's PID: tests read what a connection ran.
            "-c log_statement=" + ("all" if self.log_statements else "none"),
            "-c log_line_prefix='%p '",
        ])
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", str(START_TIMEOUT), "start")

    def stop(self) -> None:
        """``pg_ctl stop -m fast``; the postmaster's PID gets SIGQUIT if that fails."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", timeout=30)
        except (RuntimeError, subprocess.TimeoutExpired):
            try:
                os.kill(pid, signal.SIGQUIT)
            except ProcessLookupError:
                pass

    def restart(self) -> None:
        """Stop (every backend is ended, every client sees its connection break), start."""
        self.stop()
        self.start()

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` as the superuser over the unix socket; unaligned rows of ``|``."""
        return self._run("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                         "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres",
                         "-d", database, "-c", sql, timeout=30).strip()

    def create_app_database(self) -> None:
        self.psql(f"CREATE ROLE {APP_USER} LOGIN")
        self.psql(f"CREATE DATABASE {APP_DATABASE} OWNER {APP_USER}")

    def app_backends(self, state: str | None = None, query_like: str | None = None) -> int:
        """Backends of the application's role, optionally in ``state`` / running a query."""
        where = [f"usename = '{APP_USER}'"]
        if state:
            where.append(f"state = '{state}'")
        if query_like:
            where.append(f"query LIKE '{query_like}'")
        return int(self.psql("SELECT count(*) FROM pg_stat_activity WHERE "
                             + " AND ".join(where)))

    def wait_app_backends(self, count: int, timeout: float = 15.0, **filters: str) -> int:
        """Poll until the application has ``count`` backends (or ``timeout``); the last count."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.app_backends(**filters)
            if seen == count or time.monotonic() > deadline:
                return seen
            time.sleep(0.1)

    def statements(self, backend_pid: int) -> list[str]:
        """The statements backend ``backend_pid`` ran so far (from the server's log)."""
        marker = f"{backend_pid} LOG:  statement: "
        return [line.split("statement: ", 1)[1] for line in self.log_text().splitlines()
                if line.startswith(marker)]

    def backend_exists(self, backend_pid: int) -> bool:
        return self.psql(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {backend_pid}") == "1"

    def settings_env(self) -> dict[str, str]:
        """The environment that points ``testproject.settings_postgres`` at this cluster."""
        return {
            "DJANGO_SETTINGS_MODULE": "testproject.settings_postgres",
            "DJANGO_PG_HOST": HOST, "DJANGO_PG_PORT": str(self.port),
            "DJANGO_PG_NAME": APP_DATABASE, "DJANGO_PG_USER": APP_USER,
        }

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def get_json(address: str, path: str, timeout: float = 60.0) -> dict:
    """GET ``path`` from runscgi at ``address``; the JSON body of a 200 (else fail)."""
    import json

    from django_scgi import client

    response = client.request(address, path, timeout=timeout)
    assert response.status == 200, response.body[:2000]
    return dict(json.loads(response.body))


def burst(address: str, path: str, count: int, timeout: float = 120.0) -> list:
    """``count`` requests at once, one thread each; their ``client.Response``s."""
    from concurrent.futures import ThreadPoolExecutor

    from django_scgi import client

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: client.request(address, path, timeout=timeout),
                             range(count)))


def most_at_once(cluster: PostgresCluster, run, **filters: str) -> int:
    """Run ``run()`` in a thread; the most application backends seen at once meanwhile."""
    from concurrent.futures import ThreadPoolExecutor

    seen = 0
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(run)
        while not future.done():
            seen = max(seen, cluster.app_backends(**filters))
            time.sleep(0.05)
        future.result()
    return seen


def start_cluster(log_statements: bool = True) -> PostgresCluster:
    """A started cluster with the application's role and database, or a skip.

    Also used by the benchmark (bench/database.py), without the statement log.
    """
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(f"{MISSING}: PostgreSQL's initdb is not installed (Debian package "
                    "postgresql; ./dev test installs it as root)")
    cluster = PostgresCluster(bindir, log_statements)
    try:
        cluster.init()
        cluster.start()
        cluster.create_app_database()
    except BaseException:
        cluster.remove()
        raise
    return cluster
