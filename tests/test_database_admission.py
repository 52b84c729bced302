"""Admission instead of failure (issue 19, item 2), on a real PostgreSQL.

The cluster takes ``MAX_CONNECTIONS - SUPERUSER_RESERVED`` (17) connections from the
application's role; a burst of 3x and 10x ``MAX_CONNECTIONS`` requests that each run a
query must all succeed, never opening more than that. Past ``--db-wait-timeout`` a
request gets a 503 with Retry-After and one log line, never a 500.
"""

from __future__ import annotations

import threading

import pytest
from postgres import MAX_CONNECTIONS, SUPERUSER_RESERVED, burst, get_json, most_at_once

from django_scgi import client

pytestmark = pytest.mark.timeout(240)

APP_SLOTS = MAX_CONNECTIONS - SUPERUSER_RESERVED


def start(start_server, postgres, *args: str, **env: str):
    # Backends of the previous test's server may still be exiting: counts start at 0.
    assert postgres.wait_app_backends(0) == 0
    return start_server("127.0.0.1:0", *args, env={**postgres.settings_env(), **env})


@pytest.mark.parametrize("times,driver", [(3, "psycopg"), (3, "psycopg2"), (10, "psycopg")])
def test_burst_past_the_database_limit_all_succeed(postgres, start_server, times, driver):
    # The wait is long on purpose: this test is about errors (none), not waiting time.
    server = start(start_server, postgres, "--db-wait-timeout", "60", DJANGO_PG_DRIVER=driver)
    responses: list = []
    count = times * MAX_CONNECTIONS
    seen = most_at_once(postgres, lambda: responses.extend(
        burst(server.address, "/pg-sleep/?s=0.05", count)))
    statuses = [response.status for response in responses]
    assert statuses.count(200) == count, (
        [(r.status, r.body[:300]) for r in responses if r.status != 200],
        [line for line in server.lines if "GET" not in line][-40:])
    assert seen <= APP_SLOTS
    assert f"this process opens at most {APP_SLOTS} connection(s)" in server.output
    assert "too many clients" not in server.output


def test_limit_is_shared_across_workers(postgres, start_server):
    server = start(start_server, postgres, "--workers", "2", "--db-wait-timeout", "60")
    count = 3 * MAX_CONNECTIONS
    responses: list = []
    seen = most_at_once(postgres, lambda: responses.extend(
        burst(server.address, "/pg-sleep/?s=0.05", count)))
    assert [r.status for r in responses].count(200) == count, server.output[-3000:]
    assert seen <= APP_SLOTS
    assert f"opens at most {APP_SLOTS // 2} connection(s)" in server.output


def test_wait_past_the_timeout_is_a_503_with_retry_after(postgres, start_server):
    server = start(start_server, postgres, "--db-max-connections", "2",
                   "--db-wait-timeout", "0.5")
    holders = [threading.Thread(target=get_json, args=(server.address, "/pg-sleep/?s=4"))
               for _ in range(2)]
    for thread in holders:
        thread.start()
    assert postgres.wait_app_backends(2, state="active") == 2
    mark = len(server.lines)
    busy = client.request(server.address, "/pg-pid/", timeout=30)
    # A request that touches no database does not wait for one.
    free = client.request(server.address, "/no-db/", timeout=30)
    for thread in holders:
        thread.join(30)
    assert busy.status == 503, busy.body
    assert busy.header("Retry-After") == "1"
    assert free.status == 200
    assert postgres.wait_app_backends(0, state="active") == 0
    # The slots came back: the next request is served.
    assert client.request(server.address, "/pg-pid/", timeout=30).status == 200
    logged = [line for line in server.lines[mark:] if "503" in line and "django_scgi" in line]
    assert len(logged) == 1, server.lines[mark:]
    assert "Traceback" not in server.output
    assert "Internal Server Error" not in server.output


def test_djangos_pool_governs_and_is_not_counted_twice(postgres, start_server):
    """With OPTIONS pool, our limit (1 here) does not apply: the pool's max_size (4) does."""
    server = start(start_server, postgres, "--db-max-connections", "1",
                   DJANGO_PG_POOL="1:4")
    responses: list = []
    count = 3 * MAX_CONNECTIONS
    seen = most_at_once(postgres, lambda: responses.extend(
        burst(server.address, "/pg-sleep/?s=0.2", count)), state="active",
        query_like="SELECT pg_sleep%")
    assert [r.status for r in responses].count(200) == count, server.output[-3000:]
    assert 2 <= seen <= 4
    assert "opens at most" not in server.output


def test_djangos_pool_timeout_is_a_503_too(postgres, start_server):
    server = start(start_server, postgres, DJANGO_PG_POOL="1:1", DJANGO_PG_POOL_TIMEOUT="0.5")
    holder = threading.Thread(target=get_json, args=(server.address, "/pg-sleep/?s=3"))
    holder.start()
    try:
        assert postgres.wait_app_backends(1, state="active") == 1
        busy = client.request(server.address, "/pg-pid/", timeout=30)
    finally:
        holder.join(30)
    assert busy.status == 503, busy.body
    assert busy.header("Retry-After") == "1"
    assert "Traceback" not in server.output


def test_database_refusing_connections_is_waited_out(postgres, start_server):
    """A limit above what the database takes (other clients, other hosts): the server's
    "too many clients" is retried within the wait, not answered with a 500."""
    server = start(start_server, postgres, "--db-max-connections", "40",
                   "--db-wait-timeout", "60")
    count = 3 * MAX_CONNECTIONS
    responses = burst(server.address, "/pg-sleep/?s=0.2", count)
    assert [r.status for r in responses].count(200) == count, server.output[-3000:]
