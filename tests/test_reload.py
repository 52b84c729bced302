"""``runscgi --reload``: Django's autoreloader restarts the server when code changes.

A real ``manage.py runscgi --reload`` of a throw-away copy of the demo project; the test
edits a view in the copy and waits for the new answer. Kept in its own module: Django's
autoreloader runs the server on a non-main thread, where no signal handler can go.
"""

from __future__ import annotations

import json
import signal
import sys
import time

import psutil
import pytest
from helpers import set_version

from django_scgi import client

pytestmark = pytest.mark.timeout(60)


def answer(address: str) -> str | None:
    try:
        response = client.request(address, "/version/", timeout=5)
    except client.ClientError:
        return None  # between two children: the socket is not there for a moment
    return response.body.decode().split()[0] if response.status == 200 else None


def wait_for_answer(address: str, expected: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = answer(address)
        if seen == expected:
            return
        time.sleep(0.2)
    raise AssertionError(f"still {seen!r} instead of {expected!r} after {timeout}s")


@pytest.mark.parametrize("how", ["manage.py", "python -m django"])
def test_editing_a_view_restarts_the_server(project_copy, start_server, short_tmp, how):
    socket_path = short_tmp / "s.sock"
    address = f"unix:{socket_path}"
    command = None
    env = None
    if how == "python -m django":
        command = [sys.executable, "-m", "django", "runscgi"]
        env = {"PYTHONPATH": str(project_copy)}
    server = start_server(address, "--reload", cwd=project_copy, command=command, env=env)
    assert answer(address) == "v1"
    children = psutil.Process(server.pid).children()
    assert len(children) == 1  # the autoreloader's serving child

    set_version(project_copy, "v2")
    wait_for_answer(address, "v2")
    assert server.output.count("Serving SCGI on") == 2
    # The restarted child was patched before Django loaded, like any start.
    report = json.loads(client.request(address, "/db/?sleep=0").body)
    assert report["local_class"].startswith("gevent")
    assert report["pid"] not in {server.pid, children[0].pid}

    serving = psutil.Process(server.pid).children()
    server.signal(signal.SIGTERM)
    assert server.wait(10) == 0, server.output
    _, alive = psutil.wait_procs(serving, timeout=5)
    assert not alive  # the autoreloader takes its child down with it


def test_scgi_reload_setting_and_no_reload_flag(project_copy, start_server, short_tmp):
    settings = project_copy / "testproject" / "settings.py"
    settings.write_text(settings.read_text() + "\nSCGI_RELOAD = True\n")
    reloading = start_server(f"unix:{short_tmp / 'a.sock'}", cwd=project_copy)
    assert len(psutil.Process(reloading.pid).children()) == 1  # the serving child
    plain = start_server(f"unix:{short_tmp / 'b.sock'}", "--no-reload", cwd=project_copy)
    assert psutil.Process(plain.pid).children() == []
