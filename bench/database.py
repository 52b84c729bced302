"""The database figures (issue 19): a view that runs one indexed SELECT, on PostgreSQL.

A throw-away cluster (``tests/postgres.py``: initdb in a temp dir, ``max_connections``
20, no statement log) with a table of 1,000 rows; the demo project's ``/pg-item/``
view selects one row by primary key. Each server serves it behind nginx:

``db_nginx``
    req/s and the server's CPU µs per request with wrk at 16 connections, below the
    database's limit, so no server is refused a connection.
``db_burst``
    wrk at 10x ``max_connections`` (200 connections) for the same time: errors (goal 0)
    and p99 latency. A server that opens a connection per request in flight runs out of
    database slots here; runscgi admits what the database takes and queues the rest.
``db_callgrind``
    k instructions per ``/pg-item/`` request: the server alone under callgrind, as
    ``deterministic.callgrind_server`` measures ``/`` (instrumentation switched on after
    the warm-up, counters zeroed, ``--callgrind-requests`` sequential spaced direct
    requests, dumped; gunicorn over HTTP direct). Every user-space instruction of the
    server process counts: Django, the driver (libpq included), and with
    ``CONN_MAX_AGE = 0`` the connection that each request opens and closes; PostgreSQL's
    own work is in its processes and does not. Then ``/`` (hello) the same way in the
    same process (``by_path``), so "the database view minus hello" is what the query
    costs the server, set-up and teardown of its connection included.

Every server runs with Django's default ``CONN_MAX_AGE = 0`` (a connection per request);
runscgi also with ``CONN_MAX_AGE = 60`` (``runscgi-persistent``), where it reuses
connections across requests. runscgi runs with psycopg 3 (its binary build) and with
psycopg2, the driver the anchors use. gunicorn ``-k gevent`` and uWSGI ``--gevent`` get
psycogreen's wait callback through ``bench/pg_app.py``, as their users do it.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("db_nginx", "db_burst", "db_callgrind")
PATH = "/pg-item/"
CONCURRENCY = 16
ROWS = 1000
# name in the results -> (catalog server, driver, CONN_MAX_AGE, WSGI application for the
# anchors).
SERVERS = {
    "runscgi": ("runscgi", "psycopg", "0", None),
    "runscgi-psycopg2": ("runscgi", "psycopg2", "0", None),
    "runscgi-persistent": ("runscgi", "psycopg", "60", None),
    "gunicorn": ("gunicorn", "psycopg2", "0", "pg_app:application"),
    "uwsgi-gevent": ("uwsgi-gevent", "psycopg2", "0", "pg_app:application"),
}


def available() -> str | None:
    """Why the database figures cannot be taken here, or None."""
    sys.path.insert(0, str(ROOT / "tests"))
    import postgres

    return None if postgres.find_bindir() else "PostgreSQL (initdb) is not installed"


def run_phase(bench, log) -> None:
    """Start a cluster, measure every server of ``SERVERS`` that this run includes."""
    sys.path.insert(0, str(ROOT / "tests"))
    import postgres

    cluster = postgres.start_cluster(log_statements=False)
    try:
        cluster.psql(f"CREATE TABLE bench_item (id int PRIMARY KEY, name text);"
                     f"INSERT INTO bench_item SELECT n, 'item ' || n FROM "
                     f"generate_series(1, {ROWS}) n; ALTER TABLE bench_item OWNER TO "
                     f"{postgres.APP_USER}; ANALYZE bench_item", database=postgres.APP_DATABASE)
        wanted = [name for name, (server, *_) in SERVERS.items()
                  if server in bench.args.servers]
        timed = {"db_nginx", "db_burst"} & set(bench.args.metrics)
        for rep in range(bench.args.reps if timed else 0):
            for name in wanted:
                one_server(bench, cluster, postgres, name, rep, log)
        if "db_callgrind" in bench.args.metrics:
            workdir = bench.out / "database"
            workdir.mkdir(exist_ok=True)
            for name in wanted:
                callgrind_server(bench, cluster, name, workdir)
                log(f"{name}: {cluster.app_backends()} connection(s) left after callgrind")
    finally:
        cluster.remove()


def one_server(bench, cluster, postgres, name: str, rep: int, log) -> None:
    import measure

    server, _, _, app = SERVERS[name]
    target = bench.start_server(server, env=_env(cluster, name), app_spec=app)
    if target is None:
        for metric in METRICS:
            bench.records.append({"metric": metric, "server": name, "rep": rep, "errors": 1,
                                  "exception": "did not start"})
        return
    frontend = bench.frontends["nginx"]
    url = bench.frontend_url("nginx", server, PATH)
    load = {"duration": bench.args.duration, "warmup": bench.args.warmup,
            "cpu": bench.load_cpu}
    try:
        if "db_nginx" in bench.args.metrics:
            bench.record("db_nginx", name, rep, measure.wrk_load, url, target, frontend,
                         concurrency=CONCURRENCY, **load)
        if "db_burst" in bench.args.metrics:
            bench.record("db_burst", name, rep, measure.wrk_load, url, target, frontend,
                         concurrency=10 * postgres.MAX_CONNECTIONS, **load)
    finally:
        target.proc.stop()
    log(f"{name}: {cluster.app_backends()} connection(s) left after it stopped")


def _env(cluster, name: str) -> dict[str, str]:
    """What points ``name``'s server at the cluster with its driver and CONN_MAX_AGE."""
    _, driver, max_age, _ = SERVERS[name]
    return {**cluster.settings_env(), "DJANGO_PG_DRIVER": driver,
            "DJANGO_CONN_MAX_AGE": max_age}


def callgrind_server(bench, cluster, name: str, workdir: Path) -> None:
    """``db_callgrind`` for ``name``: /pg-item/, then / in the same process."""
    import catalog
    import deterministic
    import measure

    server_name, _, _, app = SERVERS[name]
    server = catalog.SERVERS[server_name]
    port = bench.port(server_name)

    def factory(proc):
        return measure.Target(proc, port, server.protocol)

    bench.record("db_callgrind", name, 0, deterministic.callgrind_server, server, factory,
                 workdir, requests=bench.args.callgrind_requests, warmup=100,
                 env={**bench.env, **_env(cluster, name)}, cwd=ROOT, cpu=bench.server_cpu,
                 argv=bench.server_argv(server_name, app_spec=app), port=port, path=PATH,
                 compare=("/",), label=name)
