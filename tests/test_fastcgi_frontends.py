"""End to end over FastCGI: the demo project behind real nginx, Apache, lighttpd and Caddy.

Each front-end runs the FastCGI file users copy from ``deploy/`` (``fastcgi_frontends``)
in front of one ``runscgi --protocol fastcgi`` listening on TCP and on a unix socket,
with the project at ``/app/`` and at ``/``. nginx goes through its upstream block with
``keepalive`` and ``fastcgi_keep_conn on``, Apache with ``enablereuse=on``: the server
itself counts the requests each connection carried (``django_scgi.requests_on_connection``)
to show that connections are reused. Caddy sends no mount point: the project behind it
at ``/app/`` sets ``FORCE_SCRIPT_NAME``. ``cgi-fcgi`` (libfcgi) is a bare client.

Missing front-ends skip with "FRONT-END MISSING" and are listed in a banner at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import textwrap
from pathlib import Path

import frontends
import pytest
from conftest import REPO
from fastcgi_frontends import FASTCGI_FRONT_ENDS, FastCGIAuthorizerApache, cgi_fcgi
from frontends import Deployment

from django_scgi import fastcgi_client
from django_scgi.client import parse_response

pytestmark = [pytest.mark.frontend, pytest.mark.timeout(180)]

MOUNTS = {"app": "/app", "root": ""}
DEPLOYMENTS = [(kind, transport, mount) for kind in ("nginx", "apache", "lighttpd", "caddy")
               for transport in ("tcp", "unix") for mount in ("app", "root")]
REUSING = {"nginx", "apache"}  # they ask for FCGI_KEEP_CONN; lighttpd and Caddy do not
HELLO = b"Hello from django-scgi\n"
SAMPLE = REPO / "testproject" / "files" / "sample.txt"
# How a view hands a file to the front-end (django_scgi.offload); Apache's mod_proxy_fcgi
# and Caddy have no such header.
OFFLOAD_VIA = {"nginx": "x-accel-redirect", "lighttpd": "x-sendfile"}


class FastCGIBackend(frontends.TwoListenerBackend):
    """``runscgi --protocol fastcgi`` on a TCP port and a unix socket, stopped by PID."""

    def __init__(self, tmp_dir: Path, **env: str) -> None:
        super().__init__(tmp_dir, ["--protocol", "fastcgi"], "fcgi.sock",
                         ("SCGI_BIND", "DJANGO_FORCE_SCRIPT_NAME", "SCGI_PROTOCOL"), env)


@pytest.fixture(scope="module")
def offload_dir():
    """Files the project hands to the front-end: a copy the workers can read."""
    directory = frontends.make_run_dir("fcgi-files-")
    shutil.copy(SAMPLE, directory / SAMPLE.name)
    (directory / SAMPLE.name).chmod(0o644)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def backends(tmp_path_factory, offload_dir):
    """"plain": the project alone; "forced": with FORCE_SCRIPT_NAME=/app (for Caddy)."""
    started = {}
    files = str(offload_dir)
    try:
        started["plain"] = FastCGIBackend(tmp_path_factory.mktemp("fcgi-plain"),
                                          PROTECTED_FILES_DIR=files)
        started["forced"] = FastCGIBackend(tmp_path_factory.mktemp("fcgi-forced"),
                                           DJANGO_FORCE_SCRIPT_NAME="/app",
                                           PROTECTED_FILES_DIR=files)
        yield started
    finally:
        for backend in started.values():
            backend.stop()


@pytest.fixture(scope="module")
def deployments(backends, offload_dir):
    """Started front-ends, cached by (kind, transport, mount) for the whole module."""
    started: dict[tuple[str, str, str], Deployment] = {}
    run_dirs: list[Path] = []

    def get(kind: str, transport: str, mount: str) -> Deployment:
        key = (kind, transport, mount)
        if key not in started:
            frontends.require(kind)
            which = "forced" if kind == "caddy" and mount == "app" else "plain"
            backend = backends[which]
            run_dir = frontends.make_run_dir(f"fcgi-{kind}-")
            run_dirs.append(run_dir)
            frontend = FASTCGI_FRONT_ENDS[kind](
                run_dir, mount=MOUNTS[mount], backend=backend.by_transport[transport],
                offload_dir=offload_dir).start()
            started[key] = Deployment(frontend, backend.output_tail)
        return started[key]

    yield get
    for deployment in started.values():
        deployment.frontend.stop()
    for run_dir in run_dirs:
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(params=DEPLOYMENTS, ids=["-".join(d) for d in DEPLOYMENTS])
def deployment(request, deployments):
    return deployments(*request.param)


# --- through every front-end --------------------------------------------------------------


def test_hello_and_prefix_routing(deployment):
    hello = deployment.get("/")
    assert (hello.status, hello.body) == (200, HELLO), hello.describe()
    info = deployment.get_json("/info/some/path?q=1")
    mount = deployment.mount
    assert info["script_name"] == mount
    assert info["path"] == f"{mount}/info/some/path"
    assert info["reverse"] == f"{mount}/info/"
    assert info["query"] == {"q": ["1"]}


def test_encoded_path(deployment):
    info = deployment.get_json("/info/caf%C3%A9/x%20y")
    assert info["path"] == f"{deployment.mount}/info/café/x y"


def test_upload_and_echo(deployment):
    body = os.urandom(2 * 1024 * 1024 + 3)
    reply = deployment.request("POST", "/upload/", body=body,
                               headers=[("Content-Type", "application/octet-stream")])
    assert reply.json() == {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    echo = deployment.request("POST", "/echo/", body=b"a=1&b=2",
                              headers=[("Content-Type", "application/x-www-form-urlencoded")])
    assert echo.body == b"a=1&b=2"


def test_streaming_is_passed_on_as_produced(deployment):
    first_at, body, reply = frontends.timed_chunks(
        deployment.port, f"{deployment.mount}/stream/?n=2&delay=3")
    assert reply.status == 200 and body.count(b"chunk") == 2
    made_at = float(body.split(b"\n")[0].rsplit(b" at ", 1)[1])
    assert first_at - made_at < 2.5  # before the view slept 3 s for the second chunk


def test_errors_and_not_found_come_from_django(deployment):
    assert deployment.get("/error/").status == 500
    missing = deployment.get("/no/such/page/")
    assert missing.status == 404 and missing.from_django


def test_connection_reuse_counted_by_the_server(deployment):
    counts = [deployment.get_json("/connection-requests/")["requests_on_connection"]
              for _ in range(30)]
    new_connections = counts.count(1)
    if deployment.kind in REUSING:
        # One nginx worker / a few Apache threads: a handful of connections carry all.
        assert new_connections <= 5, (counts, deployment.frontend_diagnostics())
        assert max(counts) >= 6, counts
    else:
        assert counts == [1] * 30  # one connection per request


def test_file_response(deployment):
    assert deployment.get("/file/").body == SAMPLE.read_bytes()


@pytest.mark.parametrize(("kind", "transport", "mount"),
                         [d for d in DEPLOYMENTS if d[0] in OFFLOAD_VIA])
def test_offload_to_the_front_end(deployments, kind, transport, mount):
    deployment = deployments(kind, transport, mount)
    offloaded = deployment.get(f"/offload/?via={OFFLOAD_VIA[kind]}")
    assert (offloaded.status, offloaded.body) == (200, SAMPLE.read_bytes()), offloaded.describe()


# --- cgi-fcgi (libfcgi) as the client -------------------------------------------------------


def test_cgi_fcgi(backends):
    backend = backends["plain"].by_transport["tcp"]
    variables = {"REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": "/echo/",
                 "REQUEST_URI": "/echo/", "QUERY_STRING": "", "SERVER_NAME": "localhost",
                 "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "localhost",
                 "CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": "11"}
    reply = parse_response(cgi_fcgi(backend.address, variables, b"hello world"))
    assert (reply.status, reply.body) == (200, b"hello world")
    get = {**variables, "REQUEST_METHOD": "GET", "PATH_INFO": "/info/x", "REQUEST_URI": "/info/x",
           "CONTENT_LENGTH": ""}
    info = json.loads(parse_response(cgi_fcgi(backend.address, get)).body)
    assert info["path"] == "/info/x"


# --- Apache mod_authnz_fcgi: the project decides whether Apache serves a file ------------


def test_authorizer_lets_apache_serve_only_what_the_project_allows(backends):
    backend = backends["plain"].by_transport["tcp"]
    run_dir = frontends.make_run_dir("fcgi-authz-")
    files = run_dir / "files"
    files.mkdir()
    (files / "report.txt").write_bytes(b"quarterly figures\n")
    (files / "report.txt").chmod(0o644)
    apache = FastCGIAuthorizerApache(run_dir, mount="", backend=backend, offload_dir=run_dir,
                                     files_dir=files)
    try:
        apache.start()
        url = "/protected-files/report.txt"
        # The signed cookie a login would set, from the project itself.
        login = fastcgi_client.request(backend.address, "/authz-login/?user=carol")
        cookie = login.header("Set-Cookie").split(";", 1)[0]
        allowed = frontends.request(apache.port, "GET", url, headers=[("Cookie", cookie)])
        assert (allowed.status, allowed.body) == (200, b"quarterly figures\n"), allowed.describe()
        refused = frontends.request(apache.port, "GET", url)
        assert refused.status == 403 and b"Not allowed." in refused.body
        forged = frontends.request(apache.port, "GET", url,
                                   headers=[("Cookie", cookie.replace("carol", "mallory"))])
        assert forged.status == 403
    finally:
        apache.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


# --- the docs show what the tests run -------------------------------------------------------


@pytest.mark.parametrize("name", ["nginx-fastcgi.conf", "nginx-fastcgi-upstream.conf",
                                  "apache-fastcgi.conf", "lighttpd-fastcgi.conf",
                                  "caddy-fastcgi.caddy", "apache-fastcgi-authorizer.conf"])
def test_fastcgi_docs_contain_each_deploy_file_verbatim(name):
    docs = (REPO / "docs" / "fastcgi.rst").read_text()
    text = (REPO / "deploy" / name).read_text()
    assert textwrap.indent(text, "    ") in docs, (
        f"docs/fastcgi.rst must show deploy/{name} verbatim (indented 4 spaces)")
