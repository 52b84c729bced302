"""The production recipes of docs/static-files.rst, through real front-ends.

A fresh ``startproject`` with ``DEBUG = False`` and ``STATIC_ROOT`` set runs
``collectstatic``; then, mounted at ``/app/``:

* Apache with deploy/apache-static.conf (``Alias`` + ``ProxyPass … !``) and nginx with
  deploy/nginx-static.conf (``location /app/static/ { alias …; }``) serve the collected
  files themselves: runscgi never sees those requests;
* WhiteNoise's middleware serves them from runscgi, behind the plain deploy/nginx.conf.

In every case the admin page links ``/app/static/…`` and that URL answers with the file.
"""

from __future__ import annotations

import shutil

import frontends
import pytest
from frontends import Backend, Deployment
from helpers import FreshProject

pytestmark = pytest.mark.frontend

CSS = "/static/admin/css/base.css"
SETTINGS_TAIL = """
import os
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
STATIC_ROOT = os.environ["FRESH_STATIC_ROOT"]
"""
WHITENOISE_TAIL = SETTINGS_TAIL + """
MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")
"""


@pytest.fixture(scope="module")
def static_root():
    """STATIC_ROOT where the front-ends' workers can read (pytest's tmp dirs are 0700)."""
    directory = frontends.make_run_dir("static-root-")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def collected_project(directory, static_root, tail: str) -> FreshProject:
    env = {"FRESH_STATIC_ROOT": str(static_root)}
    project = FreshProject(directory, settings_tail=tail, env=env)
    project.manage("collectstatic", "--noinput", "-v", "0", env=env)
    assert (static_root / "admin" / "css" / "base.css").is_file()
    return project


@pytest.fixture(scope="module")
def backend(tmp_path_factory, static_root):
    project = collected_project(tmp_path_factory.mktemp("static") / "site", static_root,
                                SETTINGS_TAIL)
    server = project.serve("127.0.0.1:0", env={"FRESH_STATIC_ROOT": str(static_root)})
    yield server
    server.stop()


def start(kind: type[frontends.FrontEnd], server, **kwargs) -> tuple[Deployment, object]:
    frontends.require(kind.kind)
    run_dir = frontends.make_run_dir(f"static-{kind.kind}-")
    try:
        frontend = kind(run_dir, mount="/app", backend=Backend(server.address),
                        offload_dir=run_dir, **kwargs).start()
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return Deployment(frontend, lambda: server.output), run_dir


def assert_admin_links_and_serves(deployment: Deployment, server) -> list[str]:
    """The admin page links /app/static/…, and that URL answers with the CSS file.
    Returns the runscgi output lines the CSS request added."""
    page = deployment.get("/admin/login/")
    assert page.status == 200, page.describe()
    assert f'href="/app{CSS}"'.encode() in page.body
    mark = len(server.lines)
    css = deployment.get(CSS)
    assert css.status == 200, css.describe()
    assert css.header("Content-Type", "").startswith("text/css"), css.describe()
    assert b"body" in css.body
    # A file Django does not have is a 404 either way.
    assert deployment.get("/static/admin/css/no-such-file.css").status == 404
    return server.lines[mark:]


@pytest.mark.parametrize("kind", [frontends.ApacheWithStatic, frontends.NginxWithStatic],
                         ids=["apache-alias", "nginx-location"])
def test_front_end_serves_static_root(kind, backend, static_root):
    deployment, run_dir = start(kind, backend, static_root=static_root)
    try:
        lines = assert_admin_links_and_serves(deployment, backend)
        assert not [line for line in lines if "base.css" in line], lines
        # Apache and nginx answered, not Django (its SecurityMiddleware adds this).
        assert not deployment.get(CSS).from_django
    finally:
        deployment.frontend.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def test_whitenoise_serves_static_root_through_runscgi(tmp_path, static_root):
    root = static_root / "whitenoise"
    root.mkdir()
    project = collected_project(tmp_path / "site", root, WHITENOISE_TAIL)
    server = project.serve("127.0.0.1:0", env={"FRESH_STATIC_ROOT": str(root)})
    try:
        deployment, run_dir = start(frontends.Nginx, server)
        try:
            lines = assert_admin_links_and_serves(deployment, server)
            assert server.wait_for_output("GET /app/static/admin/css/base.css")
            assert [line for line in lines + server.lines if "base.css" in line]
        finally:
            deployment.frontend.stop()
            shutil.rmtree(run_dir, ignore_errors=True)
    finally:
        server.stop()
