"""runscgi on a real PostgreSQL: cooperative drivers (issue 19, item 1).

The cluster is started by the ``postgres`` fixture (tests/postgres.py). Concurrency is
read from PostgreSQL itself: how many backends of the application run ``pg_sleep`` at
the same moment, not from wall time.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from postgres import get_json, most_at_once

pytestmark = pytest.mark.timeout(180)

DRIVERS = ["psycopg", "psycopg2"]


def max_concurrent_sleeps(cluster, run) -> int:
    return most_at_once(cluster, run, state="active", query_like="SELECT pg_sleep%")


@pytest.mark.parametrize("driver", DRIVERS)
def test_slow_queries_of_concurrent_requests_overlap(postgres, start_server, driver):
    assert postgres.wait_app_backends(0) == 0
    server = start_server("127.0.0.1:0", env={**postgres.settings_env(),
                                              "DJANGO_PG_DRIVER": driver})
    requests = 6
    answers: list[dict] = []

    def burst() -> None:
        with ThreadPoolExecutor(requests) as pool:
            answers.extend(pool.map(lambda _: get_json(server.address, "/pg-sleep/?s=2"),
                                    range(requests)))

    seen = max_concurrent_sleeps(postgres, burst)
    assert {answer["driver"] for answer in answers} == {driver}
    if driver == "psycopg":  # the C build, whose own wait would block the process
        assert {answer["impl"] for answer in answers} == {"binary"}
    # One process: a blocking driver would show one query at a time.
    assert len({answer["pid"] for answer in answers}) == 1
    assert seen >= requests - 1, f"at most {seen} of {requests} queries ran at once"


# psycopg imported before gevent patched (as any code may do): psycopg 3's C build then
# keeps its C wait, which blocks the process, until install_psycopg() replaces it.
PSYCOPG_IMPORTED_FIRST = """
import sys
import psycopg
from psycopg import waiting
from gevent import monkey
monkey.patch_all()
import gevent
from django_scgi import database

print("impl", psycopg.pq.__impl__, "before", database.psycopg_wait_name(), flush=True)
if sys.argv[2] == "install":
    database.install_psycopg()
print("after", database.psycopg_wait_name(), flush=True)

def sleep():
    with psycopg.connect(sys.argv[1], autocommit=True) as conn:
        conn.execute("SELECT pg_sleep(2)")

gevent.joinall([gevent.spawn(sleep) for _ in range(4)], raise_error=True)
"""


@pytest.mark.parametrize("install", [True, False], ids=["installed", "not-installed"])
def test_psycopg_binary_build_waits_through_gevent(postgres, install):
    """With the C build, install_psycopg() turns the blocking C wait into a gevent one."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("psycopg_binary") is None:
        pytest.fail("psycopg[binary] (a test extra) is not installed")
    dsn = (f"host={postgres.settings_env()['DJANGO_PG_HOST']} port={postgres.port} "
           "dbname=scgi user=scgi")
    out: list[str] = []

    def run() -> None:
        done = subprocess.run(
            [sys.executable, "-c", PSYCOPG_IMPORTED_FIRST, dsn,
             "install" if install else "leave"],
            capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        out.extend(done.stdout.split())

    seen = max_concurrent_sleeps(postgres, run)
    assert out[:4] == ["impl", "binary", "before", "wait_c"]
    if install:
        assert out[5] == "wait_poll"
        assert seen >= 3, f"at most {seen} of 4 queries ran at once"
    else:  # the reason install_psycopg() exists
        assert seen == 1
