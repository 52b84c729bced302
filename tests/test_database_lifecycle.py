"""Database connections over a server's life (issue 19, item 3), on a real PostgreSQL.

Persistent connections (CONN_MAX_AGE) are reused across requests and greenlets;
CONN_HEALTH_CHECKS is honoured on reuse; nothing is left "idle in transaction"; a
database restart fails only the requests that were using it; no connection outlives
the server or a replaced worker.
"""

from __future__ import annotations

import signal
import threading
import time

import pytest
from postgres import burst, get_json

from django_scgi import client

pytestmark = pytest.mark.timeout(240)


def start(start_server, postgres, *args: str, **env: str):
    # Backends of the previous test's server may still be exiting: counts start at 0.
    assert postgres.wait_app_backends(0) == 0
    return start_server("127.0.0.1:0", *args, env={**postgres.settings_env(), **env})


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_persistent_connections_are_reused_across_requests(postgres, start_server, driver):
    server = start(start_server, postgres, DJANGO_CONN_MAX_AGE="60", DJANGO_PG_DRIVER=driver)
    # Each request runs in a new greenlet: without reuse each would open its own.
    pids = {get_json(server.address, "/pg-pid/")["backend_pid"] for _ in range(10)}
    assert len(pids) == 1
    assert all(r.status == 200 for r in burst(server.address, "/pg-sleep/?s=0.2", 8))
    opened = postgres.app_backends()
    assert 1 <= opened <= 8
    assert all(r.status == 200 for r in burst(server.address, "/pg-sleep/?s=0.2", 8))
    assert postgres.app_backends() == opened  # the second burst opened none


def test_without_conn_max_age_each_request_closes_its_connection(postgres, start_server):
    server = start(start_server, postgres)
    first = get_json(server.address, "/pg-pid/")["backend_pid"]
    second = get_json(server.address, "/pg-pid/")["backend_pid"]
    assert first != second
    assert postgres.wait_app_backends(0) == 0


@pytest.mark.parametrize("checks", [True, False], ids=["health-checks", "no-health-checks"])
def test_conn_health_checks_is_honoured_on_reuse(postgres, start_server, checks):
    server = start(start_server, postgres, DJANGO_CONN_MAX_AGE="60",
                   DJANGO_CONN_HEALTH_CHECKS="1" if checks else "0")
    pid = get_json(server.address, "/pg-pid/")["backend_pid"]
    assert get_json(server.address, "/pg-pid/")["backend_pid"] == pid
    probes = [s for s in postgres.statements(pid) if s.strip() == "SELECT 1"]
    assert len(probes) == (1 if checks else 0), postgres.statements(pid)


@pytest.mark.parametrize("max_age", ["0", "60"])
def test_request_ending_inside_a_transaction_is_rolled_back(postgres, start_server, max_age):
    server = start(start_server, postgres, DJANGO_CONN_MAX_AGE=max_age)
    first = get_json(server.address, "/pg-open-transaction/")["backend_pid"]
    assert postgres.app_backends(state="idle in transaction") == 0
    if max_age != "0":
        assert "ROLLBACK" in postgres.statements(first)
        # The same connection serves the next request, outside any transaction.
        assert get_json(server.address, "/pg-pid/")["backend_pid"] == first
    assert postgres.app_backends(state="idle in transaction") == 0


@pytest.mark.parametrize("max_age,driver", [("0", "psycopg"), ("60", "psycopg"),
                                            ("60", "psycopg2")])
def test_database_restart_fails_only_the_requests_using_it(postgres, start_server, max_age,
                                                           driver):
    server = start(start_server, postgres, DJANGO_CONN_MAX_AGE=max_age, DJANGO_PG_DRIVER=driver)
    # Persistent connections: several idle ones, all broken by the restart.
    assert all(r.status == 200 for r in burst(server.address, "/pg-sleep/?s=0.3", 5))
    long: list = []
    running = threading.Thread(
        target=lambda: long.append(client.request(server.address, "/pg-sleep/?s=30",
                                                  timeout=60)))
    running.start()
    try:
        assert postgres.wait_app_backends(1, state="active") == 1
        postgres.restart()
    finally:
        running.join(60)
    assert long and long[0].status == 500
    # Every later request reconnects, one after another and at once.
    for _ in range(6):
        assert client.request(server.address, "/pg-pid/", timeout=30).status == 200
    statuses = [r.status for r in burst(server.address, "/pg-pid/", 10)]
    assert statuses == [200] * 10


@pytest.mark.parametrize("signum,env", [
    (signal.SIGTERM, {"DJANGO_CONN_MAX_AGE": "60"}),
    (signal.SIGINT, {"DJANGO_CONN_MAX_AGE": "60"}),
    (signal.SIGTERM, {"DJANGO_PG_POOL": "2:4"}),
], ids=["SIGTERM", "SIGINT", "SIGTERM-djangos-pool"])
def test_no_connection_outlives_the_server(postgres, start_server, signum, env):
    server = start(start_server, postgres, **env)
    assert all(r.status == 200 for r in burst(server.address, "/pg-sleep/?s=0.2", 6))
    assert postgres.app_backends() >= 1  # idle, kept for reuse
    server.signal(signum)
    assert server.wait(30) == 0
    assert postgres.wait_app_backends(0) == 0


def test_sighup_replacement_closes_the_old_workers_connections(postgres, start_server):
    server = start(start_server, postgres, "--workers", "2", DJANGO_CONN_MAX_AGE="60")
    old = {get_json(server.address, "/pg-pid/")["backend_pid"] for _ in range(10)}
    assert all(postgres.backend_exists(pid) for pid in old)
    server.signal(signal.SIGHUP)
    assert server.wait_for_output("Reload finished", 60), server.output[-3000:]
    deadline = time.monotonic() + 15
    while any(postgres.backend_exists(pid) for pid in old) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(postgres.backend_exists(pid) for pid in old)
    assert client.request(server.address, "/pg-pid/", timeout=30).status == 200
