"""A fresh ``startproject`` behind real front-ends: the traps of issue 22.

* nginx on a port other than 80: Debian's ``scgi_params`` send ``HTTP_HOST $host``;
  deploy/nginx.conf's recipe adds ``scgi_param HTTP_HOST $host:$server_port`` and nginx
  then sends the variable twice. A browser-style admin login (with ``Origin``) must pass
  Django's CSRF check: runscgi takes the later copy (host:port), not a joined value.
* At a sub-path, the admin links ``/app/static/…`` as under any WSGI server, although
  runscgi runs the system checks (which read STATIC_URL) before the first request.
* With DEBUG on, static files are served as ``runserver`` serves them, at a sub-path too;
  ``--nostatic`` and ``--insecure`` mean what they mean for runserver.
"""

from __future__ import annotations

import shutil
from urllib.parse import urlencode

import frontends
import pytest
from frontends import Backend, Deployment
from helpers import ADMIN_PASSWORD, ADMIN_USER, FreshProject, cookie_value, csrf_token

from django_scgi import client

pytestmark = pytest.mark.frontend

CSS = "/static/admin/css/base.css"
SETTINGS_TAIL = """
import os
DEBUG = os.environ.get("FRESH_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return FreshProject(tmp_path_factory.mktemp("fresh") / "site", settings_tail=SETTINGS_TAIL)


@pytest.fixture(scope="module")
def backend(project):
    server = project.serve(f"{frontends.HOST}:0")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def offload_dir():
    directory = frontends.make_run_dir("fresh-files-")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def deploy(kind: str, backend, offload_dir, mount: str = "/app"):
    frontends.require(kind.split("-")[0])
    run_dir = frontends.make_run_dir(f"fresh-{kind}-")
    try:
        frontend = frontends.FRONT_ENDS[kind](
            run_dir, mount=mount, backend=Backend(backend.address), offload_dir=offload_dir,
        ).start()
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return Deployment(frontend, lambda: backend.output), run_dir


@pytest.fixture(scope="module", params=["apache", "nginx", "nginx-port-in-host"])
def deployment(request, backend, offload_dir):
    started, run_dir = deploy(request.param, backend, offload_dir)
    yield started
    started.frontend.stop()
    shutil.rmtree(run_dir, ignore_errors=True)


def login(deployment: Deployment) -> frontends.Reply:
    """What a browser does: GET the form, POST it back with its cookie and an Origin."""
    origin = f"http://{frontends.HOST}:{deployment.port}"
    form = deployment.get("/admin/login/?next=/app/admin/")
    assert form.status == 200, form.describe()
    csrf_cookie = cookie_value(form.header_list("Set-Cookie"), "csrftoken")
    assert csrf_cookie, form.describe()
    body = urlencode({"csrfmiddlewaretoken": csrf_token(form.body), "username": ADMIN_USER,
                      "password": ADMIN_PASSWORD, "next": "/app/admin/"}).encode()
    return deployment.request("POST", "/admin/login/?next=/app/admin/", body=body, headers=[
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", f"csrftoken={csrf_cookie}"),
        ("Origin", origin),
        ("Referer", f"{origin}/app/admin/login/?next=/app/admin/"),
    ])


def test_admin_login_through_nginx_on_a_port(backend, offload_dir):
    """The recipe's doubled HTTP_HOST: the later copy (with the port) is the Host."""
    started, run_dir = deploy("nginx-port-in-host", backend, offload_dir)
    try:
        mark = len(backend.lines)
        reply = login(started)
        assert reply.status == 302, reply.describe() + "\n" + "\n".join(backend.lines[mark:])
        assert reply.header("Location") == "/app/admin/"
        session = cookie_value(reply.header_list("Set-Cookie"), "sessionid")
        assert session
        index = started.get("/admin/", headers=[("Cookie", f"sessionid={session}")])
        assert index.status == 200 and b"Site administration" in index.body, index.describe()
        assert not [line for line in backend.lines[mark:] if "DisallowedHost" in line]
    finally:
        started.frontend.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def test_admin_css_link_keeps_the_mount(deployment):
    page = deployment.get("/admin/login/")
    assert page.status == 200, page.describe()
    assert f'href="/app{CSS}"'.encode() in page.body, page.body[:1500]
    assert f'href="{CSS}"'.encode() not in page.body


def test_static_file_served_below_the_mount_with_debug(deployment):
    reply = deployment.get(CSS)
    assert reply.status == 200, reply.describe()
    assert reply.header("Content-Type", "").startswith("text/css")
    assert b"body" in reply.body


# --- runserver's opt-outs, straight over SCGI ---------------------------------------------


def static_status(server, path: str = CSS) -> int:
    return client.request(server.address, path).status


@pytest.mark.parametrize(("args", "debug", "served"), [
    ((), "1", True),
    (("--nostatic",), "1", False),
    (("--no-static",), "1", False),
    ((), "0", False),
    (("--insecure",), "0", True),
    (("--insecure", "--nostatic"), "0", False),
], ids=["debug", "nostatic", "no-static", "no-debug", "insecure", "insecure-nostatic"])
def test_static_serving_follows_runserver(project, args, debug, served):
    server = project.serve(f"{frontends.HOST}:0", *args, env={"FRESH_DEBUG": debug})
    try:
        assert static_status(server) == (200 if served else 404), server.output
        assert static_status(server, "/static/admin/css/nope.css") == 404
        # Everything else still reaches the project.
        assert client.request(server.address, "/admin/login/").status == 200
    finally:
        server.stop()

