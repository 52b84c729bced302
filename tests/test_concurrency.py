"""Concurrency with every way of starting the server (django_scgi/launch.py patches first).

gevent has to patch the standard library before Django is imported, or every greenlet
shares one database connection (or, unpatched, requests run one after another).
``runscgi`` re-executes its own command line through ``django_scgi.launch``; these tests
prove that works, keeping the PID, for an unmodified ``manage.py``, ``python -m django``,
``django-admin`` and a project fresh from ``startproject``.

The client side is plain threads and blocking sockets (``django_scgi.client``): nothing
in this process is patched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import REPO

from django_scgi import client

pytestmark = pytest.mark.timeout(90)

# django-admin of the Python running the tests (a venv's bin/ is not on PATH unless the
# venv is activated; CI runs .venv/bin/python -m pytest).
DJANGO_ADMIN = str(Path(sys.executable).parent / "django-admin")

# Each way of starting the server: command line prefix, extra env, working directory.
# ``None`` for the directory means the repository root.
LAUNCHERS = {
    "manage.py": ([sys.executable, "manage.py", "runscgi"], {}, None),
    "python -m django": ([sys.executable, "-m", "django", "runscgi"], {}, None),
    # manage.py from elsewhere: django_scgi is importable only from manage.py's
    # directory (sys.path[0]), which a relaunch through ``-m`` does not get for free.
    "manage.py from another directory": (
        [sys.executable, str(REPO / "manage.py"), "runscgi"], {}, "TMP"),
    "django-admin": ([DJANGO_ADMIN, "runscgi"], {"PYTHONPATH": str(REPO)}, "TMP"),
    # django_scgi reachable only through --pythonpath, added at run time.
    "django-admin --pythonpath": (
        [DJANGO_ADMIN, "runscgi", "--pythonpath", str(REPO)], {}, "TMP"),
}


def burst(address: str, path: str, count: int, timeout: float = 15.0) -> list[client.Response]:
    """``count`` requests at once, each on its own thread and connection."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(client.request, address, path, timeout=timeout)
                   for _ in range(count)]
        return [future.result() for future in futures]


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


@pytest.fixture(params=list(LAUNCHERS))
def launched(request, start_server, tmp_path):
    """A server started the way ``request.param`` names."""
    command, env, cwd = LAUNCHERS[request.param]
    if command[0] == DJANGO_ADMIN and not os.access(DJANGO_ADMIN, os.X_OK):
        pytest.skip(f"{DJANGO_ADMIN} is missing: Django is not installed as a package here")
    if cwd == "TMP":
        cwd = tmp_path
    if "PYTHONPATH" not in env:
        # Nothing on PYTHONPATH that would find django_scgi by accident.
        env = {**env, "PYTHONPATH": ""}
    return start_server("127.0.0.1:0", command=command, env=env, cwd=cwd or REPO)


def test_many_slow_requests_run_at_once(launched):
    count, each = 200, 0.5
    started = time.monotonic()
    responses = burst(launched.address, f"/sleep/?s={each}", count)
    took = time.monotonic() - started
    assert [response.status for response in responses] == [200] * count
    assert all(response.body == b"slept\n" for response in responses)
    # One after another would take 100 s; at once it is the sleep plus overhead.
    assert took < 5.0, f"{count} requests of {each}s took {took:.1f}s"


def test_each_request_gets_its_own_database_connection(launched):
    count = 20
    started = time.monotonic()
    responses = burst(launched.address, "/db/?sleep=0.5", count)
    took = time.monotonic() - started
    assert [response.status for response in responses] == [200] * count
    reports = [json.loads(response.body) for response in responses]
    assert len({report["connection"] for report in reports}) == count
    storage = {report["local_class"] for report in reports}
    assert len(storage) == 1
    assert storage.pop().startswith("gevent"), reports[0]["local_class"]
    assert took < 4.0, f"{count} requests holding a connection 0.5s each took {took:.1f}s"


def test_relaunch_keeps_the_pid(launched):
    report = json.loads(client.request(launched.address, "/db/?sleep=0").body)
    assert report["pid"] == launched.pid
    # ... and that PID really was re-executed through the launcher.
    assert "django_scgi.launch" in cmdline(launched.pid)


# --- a project other than ours -----------------------------------------------------------------

PROBE_VIEWS = '''
import os
import time

from django.db import connection, connections
from django.http import JsonResponse


def probe(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        time.sleep(float(request.GET.get("sleep", "0")))
    storage = connections._connections._storage
    return JsonResponse({
        "connection": id(connection.connection),
        "local_class": f"{type(storage).__module__}.{type(storage).__qualname__}",
        "pid": os.getpid(),
    })
'''


@pytest.fixture
def fresh_project(tmp_path) -> Path:
    """``startproject mysite`` with django_scgi installed and a probe view; manage.py as made."""
    subprocess.run([sys.executable, "-m", "django", "startproject", "mysite"], cwd=tmp_path,
                   check=True, timeout=60, env={**os.environ, "PYTHONPATH": ""})
    root = tmp_path / "mysite"
    settings = root / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + '\nINSTALLED_APPS += ["django_scgi"]\n')
    (root / "mysite" / "probe.py").write_text(PROBE_VIEWS)
    urls = root / "mysite" / "urls.py"
    urls.write_text(urls.read_text() + textwrap.dedent("""
        from mysite.probe import probe

        urlpatterns.append(path("probe/", probe))
    """))
    return root


def test_fresh_startproject_with_unmodified_manage_py(fresh_project, start_server):
    manage = (fresh_project / "manage.py").read_bytes()
    env = {"DJANGO_SETTINGS_MODULE": "mysite.settings", "PYTHONPATH": str(REPO)}
    server = start_server("127.0.0.1:0", cwd=fresh_project, env=env)
    assert "settings 'mysite.settings'" in server.output

    login = client.request(server.address, "/admin/login/")
    assert login.status == 200
    assert b"csrfmiddlewaretoken" in login.body

    reports = [json.loads(response.body)
               for response in burst(server.address, "/probe/?sleep=0.5", 10)]
    assert len({report["connection"] for report in reports}) == 10
    assert all(report["local_class"].startswith("gevent") for report in reports)
    assert {report["pid"] for report in reports} == {server.pid}
    assert (fresh_project / "manage.py").read_bytes() == manage
