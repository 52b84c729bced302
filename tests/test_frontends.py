"""End to end: the demo project served by ``runscgi`` behind real Apache, nginx and lighttpd.

Every front-end runs the recommended config users copy from ``deploy/`` (see
``frontends.py``), in front of one real ``runscgi`` listening on TCP and on a unix
socket, with the project mounted at ``/app/`` and at ``/``: 3 front-ends × 2 transports
× 2 mounts, each started once for the whole module. The backend has no setting about the
mount: each front-end's own variables are enough (issue 3, item 3). A second backend
with ``FORCE_SCRIPT_NAME=/app`` checks that the prefix may instead be configured in
Django alone.

Missing front-ends skip with "FRONT-END MISSING" and are listed in a banner at the end.
"""

from __future__ import annotations

import functools
import hashlib
import random
import shutil
import socket
import textwrap
import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import frontends
import pytest
from django.utils.encoding import escape_uri_path
from frontends import Deployment
from helpers import REPO

pytestmark = pytest.mark.frontend

MiB = 1024 * 1024
SAMPLE = REPO / "testproject" / "files" / "sample.txt"
MOUNTS = {"app": "/app", "root": ""}
DEPLOYMENTS = [
    (kind, transport, mount)
    for kind in ("apache", "nginx", "lighttpd")
    for transport in ("tcp", "unix")
    for mount in ("app", "root")
]
# How a view hands a file to each front-end (django_scgi.offload).
OFFLOAD_VIA = {"apache": "x-sendfile", "lighttpd": "x-sendfile", "nginx": "x-accel-redirect"}
DJANGO_404_TEXT = b"The requested resource was not found on this server."
DJANGO_500_TEXT = b"<h1>Server Error (500)</h1>"
HELLO = b"Hello from django-scgi\n"

# Percent-encoded UTF-8, an encoded space and "?", "+" and an encoded "+" in the query.
ENCODED_TARGET = "/info/caf%C3%A9/%E2%82%AC%20x/sp%20ace+plus%3F"
ENCODED_QUERY = "q=%C3%A9&r=a%2Bb"
ENCODED_PATH_INFO = "/info/café/€ x/sp ace+plus?"


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def offload_dir():
    """The protected files: a copy of testproject/files that the workers can read."""
    directory = frontends.make_run_dir("fe-files-")
    shutil.copy(SAMPLE, directory / SAMPLE.name)
    (directory / SAMPLE.name).chmod(0o644)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def certificate():
    directory = frontends.make_run_dir("fe-tls-")
    try:
        yield frontends.make_certificate(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class BackendProcess(frontends.TwoListenerBackend):
    """One runscgi on a TCP port and a unix socket; stopped by PID at module end."""

    def __init__(self, offload_dir: Path, tmp_dir: Path, **env: str) -> None:
        super().__init__(tmp_dir, [], "scgi.sock", ("SCGI_BIND", "DJANGO_FORCE_SCRIPT_NAME"),
                         {"PROTECTED_FILES_DIR": str(offload_dir), **env})


@pytest.fixture(scope="module")
def backend(offload_dir, tmp_path_factory):
    process = BackendProcess(offload_dir, tmp_path_factory.mktemp("backend"))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def forced_backend(offload_dir, tmp_path_factory):
    """A runscgi whose project sets FORCE_SCRIPT_NAME=/app (testproject reads the env)."""
    process = BackendProcess(offload_dir, tmp_path_factory.mktemp("forced"),
                             DJANGO_FORCE_SCRIPT_NAME="/app")
    yield process
    process.stop()


def start_deployment(kind: str, backend_process: BackendProcess, transport: str, mount: str,
                     offload_dir: Path, certificate) -> tuple[Deployment, Path]:
    frontends.require(kind.split("-")[0])
    run_dir = frontends.make_run_dir(f"fe-{kind}-")
    try:
        frontend = frontends.FRONT_ENDS[kind](
            run_dir, mount=mount, backend=backend_process.by_transport[transport],
            offload_dir=offload_dir, certificate=certificate,
        ).start()
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return Deployment(frontend, backend_process.output_tail), run_dir


def _deployment_id(param) -> str:
    return "-".join(param)


@pytest.fixture(scope="module", params=DEPLOYMENTS, ids=_deployment_id)
def deployment(request, backend, offload_dir, certificate):
    kind, transport, mount = request.param
    started, run_dir = start_deployment(kind, backend, transport, MOUNTS[mount], offload_dir,
                                        certificate)
    yield started
    started.frontend.stop()
    shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="module", params=["apache", "nginx", "nginx-stock", "lighttpd"])
def forced_deployment(request, forced_backend, offload_dir):
    started, run_dir = start_deployment(request.param, forced_backend, "tcp", "/app",
                                        offload_dir, None)
    yield started
    started.frontend.stop()
    shutil.rmtree(run_dir, ignore_errors=True)


@functools.cache
def payload(size: int) -> bytes:
    return random.Random(size).randbytes(size)


# --- helpers ----------------------------------------------------------------------------


def expected_paths(mount: str, path_info: str, query: str = "") -> dict[str, str]:
    """What /info/ reports for a request of ``mount + path_info`` (query as sent)."""
    path = mount + path_info
    return {
        "script_name": mount,
        "path": path,
        "path_info": path_info,
        "reverse": mount + "/info/",
        "full_path": escape_uri_path(path) + (f"?{query}" if query else ""),
    }


def paths_of(info: dict) -> dict[str, str]:
    return {key: info[key] for key in ("script_name", "path", "path_info", "reverse", "full_path")}


def resolved_location(deployment: Deployment, reply: frontends.Reply) -> str:
    """The path a client lands on after following ``reply``'s Location."""
    location = reply.header("Location")
    assert location, reply.describe()
    absolute = urljoin(f"http://{frontends.HOST}:{deployment.port}/", location)
    parts = urlsplit(absolute)
    assert parts.netloc in (f"{frontends.HOST}:{deployment.port}", frontends.HOST), location
    return parts.path


def split_raw(data: bytes) -> tuple[int, bytes, bytes]:
    head, separator, body = data.partition(b"\r\n\r\n")
    assert separator, data[:500]
    return int(head.split(b" ", 2)[1]), head, body


# --- requests and paths -------------------------------------------------------------------


def test_get_with_query_string(deployment):
    query = "a=1&b=x%20y&a=2&c=%C3%A9"
    info = deployment.get_json(f"/info/?{query}")
    assert info["method"] == "GET"
    assert info["remote_addr"] == frontends.HOST
    # Debian's nginx scgi_params send HTTP_HOST=$host, which has no port.
    with_port = f"{frontends.HOST}:{deployment.port}"
    hosts = (with_port, frontends.HOST) if deployment.kind == "nginx" else (with_port,)
    assert info["host"] in hosts
    assert info["query"] == {"a": ["1", "2"], "b": ["x y"], "c": ["é"]}
    assert paths_of(info) == expected_paths(deployment.mount, "/info/", query)


def test_absolute_form_request_target(deployment):
    """Apache then sends an absolute REQUEST_URI: the path must not come from it."""
    target = f"http://{frontends.HOST}:{deployment.port}{deployment.mount}/info/abs?x=1"
    reply = frontends.parse_reply(deployment.raw(b"GET " + target.encode() + b" HTTP/1.1"))
    assert paths_of(reply.json()) == expected_paths(deployment.mount, "/info/abs", "x=1")


def test_paths_below_the_mount(deployment):
    """request.path, path_info, SCRIPT_NAME, reverse(), get_full_path(): no Django setting."""
    info = deployment.get_json("/info/some/path?x=1")
    assert paths_of(info) == expected_paths(deployment.mount, "/info/some/path", "x=1")


def test_percent_encoded_non_ascii_path(deployment):
    info = deployment.get_json(f"{ENCODED_TARGET}?{ENCODED_QUERY}")
    assert paths_of(info) == expected_paths(deployment.mount, ENCODED_PATH_INFO, ENCODED_QUERY)
    assert info["query"] == {"q": ["é"], "r": ["a+b"]}


def test_raw_utf8_bytes_in_the_request_line(deployment):
    target = (deployment.mount + "/info/café/raw?x=é").encode("utf-8")
    reply = frontends.parse_reply(deployment.raw(b"GET " + target + b" HTTP/1.1"))
    info = reply.json()
    # get_full_path() is left out: Django re-encodes a raw (not percent-encoded) query
    # string as if it were latin-1 text, under any WSGI server.
    assert (info["script_name"], info["path"], info["path_info"]) == (
        deployment.mount, deployment.mount + "/info/café/raw", "/info/café/raw")
    assert info["query"] == {"x": ["é"]}


def test_dot_segments_and_double_slashes_are_resolved(deployment):
    info = deployment.get_json("/info/a/../b/./c//d/%2e%2e/e")
    assert paths_of(info) == expected_paths(deployment.mount, "/info/b/c/e")


def test_encoded_slash(deployment):
    """%2F: Apache answers 404 itself (AllowEncodedSlashes Off); the others decode it."""
    reply = deployment.get("/info/a%2Fb/c")
    if deployment.kind == "apache":
        assert reply.status == 404 and not reply.from_django, reply.describe()
    else:
        assert paths_of(reply.json()) == expected_paths(deployment.mount, "/info/a/b/c")


def test_mount_boundaries(deployment):
    if deployment.mount:
        bare = frontends.request(deployment.port, "GET", "/app")
        if deployment.kind == "lighttpd":
            # lighttpd hands "/app" to the project as its root (SCRIPT_NAME=/app, no PATH_INFO).
            assert (bare.status, bare.body) == (200, HELLO), bare.describe()
        else:
            assert bare.status == 301, bare.describe()
            assert resolved_location(deployment, bare) == "/app/"
        # "/application" is not below "/app": the front-end answers, not the project.
        outside = frontends.request(deployment.port, "GET", "/application/x")
        assert outside.status in (403, 404) and not outside.from_django, outside.describe()
    else:
        home = frontends.request(deployment.port, "GET", "/")
        assert (home.status, home.body) == (200, HELLO), home.describe()
        outside = frontends.request(deployment.port, "GET", "/application/x")
        assert outside.status == 404 and outside.from_django, outside.describe()
    assert deployment.get("/").body == HELLO


@pytest.mark.parametrize("size", [0, MiB, 20 * MiB], ids=["0B", "1MiB", "20MiB"])
def test_upload_sha256(deployment, size):
    body = payload(size)
    reply = deployment.request("POST", "/upload/", body=body,
                               headers=[("Content-Type", "application/octet-stream")])
    assert reply.json() == {"bytes": size, "sha256": hashlib.sha256(body).hexdigest()}


def test_https_indicator(deployment):
    plain = deployment.get_json("/info/x")
    assert (plain["is_secure"], plain["url_scheme"]) == (False, "http")
    if deployment.frontend.secure_port is None:
        pytest.skip(f"{frontends.MISSING}: openssl not installed (TLS test certificate for "
                    f"{deployment.kind}) — {frontends.INSTALL_HINT}")
    secure = deployment.get_json("/info/x", secure=True)
    assert (secure["is_secure"], secure["url_scheme"]) == (True, "https")
    assert paths_of(secure) == expected_paths(deployment.mount, "/info/x")


def test_repeated_cookie_headers(deployment):
    # Apache joins them with ", ", nginx 1.22 sends duplicate keys, lighttpd joins
    # with "; ": Django must see every cookie behind each.
    info = deployment.get_json("/info/", headers=[("Cookie", "a=1"), ("Cookie", "b=2")])
    assert info["cookies"] == {"a": "1", "b": "2"}


def test_authorization_header(deployment):
    value = "Basic dXNlcjpwYXNzd29yZA=="
    info = deployment.get_json("/info/", headers=[("Authorization", value)])
    assert info["authorization"] == value


# --- responses --------------------------------------------------------------------------


def test_several_set_cookie_headers(deployment):
    reply = deployment.get("/cookies/")
    assert reply.status == 200
    cookies = [value.split(";")[0] for value in reply.header_list("Set-Cookie")]
    assert cookies == ["first=1", "second=2", "third=3"]


def test_redirect_302(deployment):
    reply = deployment.get("/redirect/")
    assert reply.status == 302, reply.describe()
    assert resolved_location(deployment, reply) == deployment.mount + "/"


def test_404_page_from_django(deployment):
    reply = deployment.get("/no-such-page/")
    assert reply.status == 404 and reply.from_django, reply.describe()
    assert DJANGO_404_TEXT in reply.body


def test_500_page_from_django(deployment):
    reply = deployment.get("/error/")
    assert reply.status == 500 and reply.from_django, reply.describe()
    assert DJANGO_500_TEXT in reply.body


def test_a_burst_of_requests_each_get_their_own_whole_response(deployment):
    """64 requests sent at once, each framed as when it comes alone.

    A burst fills runscgi's backlog, and it then holds finished TCP connections to
    close several together (``Workers.close``): each client must still get its own
    response, whole, and the front-end must still see each response end with its last
    bytes (Apache otherwise re-frames it as chunked).
    """
    if deployment.frontend.backend.transport != "tcp":
        pytest.skip("finished connections are held only on TCP listeners")

    def framing(reply: frontends.Reply) -> tuple:
        return reply.header("Content-Length") is not None, reply.header("Transfer-Encoding")

    alone = deployment.get("/info/?n=alone")
    for _ in range(3):
        socks = []
        for number in range(64):
            sock = socket.create_connection((frontends.HOST, deployment.port), timeout=20)
            sock.sendall(f"GET {deployment.mount}/info/?n={number} HTTP/1.1\r\n"
                         f"Host: {frontends.HOST}:{deployment.port}\r\n"
                         "Connection: close\r\n\r\n".encode())
            socks.append(sock)
        for number, sock in enumerate(socks):
            with sock:
                reply = frontends.parse_reply(read_to_end(sock))
            assert reply.status == 200, reply.describe()
            assert reply.json()["full_path"].endswith(f"/info/?n={number}"), reply.describe()
            assert framing(reply) == framing(alone), reply.describe()


def read_to_end(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_head_has_no_body(deployment):
    data = deployment.raw(b"HEAD " + deployment.mount.encode() + b"/ HTTP/1.1")
    status, head, body = split_raw(data)
    assert status == 200, data
    assert b"text/plain" in head.lower()
    assert body == b""


def test_streaming_reaches_the_client_before_the_view_finishes(deployment):
    """Chunks 1 s apart; the first must arrive well before the view made the last one.

    No front-end setting for nginx: runscgi marks streaming responses with
    ``X-Accel-Buffering: no``. lighttpd: ``server.stream-response-body = 2`` in the
    deploy file. Apache streams by itself.
    """
    first_at, body, reply = frontends.timed_chunks(
        deployment.port, deployment.mount + "/stream/?n=3&delay=1")
    assert reply.status == 200, reply.describe()
    stamps = [float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines()]
    assert len(stamps) == 3, body
    assert first_at < stamps[-1] - 0.5, (
        f"the first chunk reached the client at {first_at:.3f}, the view made the last "
        f"one at {stamps[-1]:.3f}: the front-end held the stream back")


def test_response_is_not_held_back_by_the_applications_cleanup(deployment):
    """/slow-cleanup/ answers at once, then its close() takes 2 s.

    Apache ends an SCGI response at the backend's FIN: if that came after close(),
    Apache would send the client a chunked response and end it 2 s later.
    """
    started = time.monotonic()
    reply = deployment.request("GET", "/slow-cleanup/?s=2")
    took = time.monotonic() - started
    assert reply.status == 200 and reply.body == b"answered\n", reply.describe()
    assert took < 1.0, f"the response took {took:.2f} s: the front-end waited for close()"


# --- files ------------------------------------------------------------------------------


def test_file_offload(deployment):
    """The view sends only a header; the front-end sends the file (issue 3, item 5)."""
    via = OFFLOAD_VIA[deployment.kind]
    reply = deployment.get(f"/offload/?via={via}")
    assert reply.status == 200, reply.describe()
    assert reply.body == SAMPLE.read_bytes()
    assert reply.header("X-Sendfile") is None and reply.header("X-Accel-Redirect") is None


def test_file_response_without_offload(deployment):
    reply = deployment.get("/file/")
    assert reply.status == 200, reply.describe()
    assert reply.body == SAMPLE.read_bytes()


# --- the prefix configured in Django only -----------------------------------------------


def test_force_script_name_as_the_one_place(forced_deployment):
    """FORCE_SCRIPT_NAME=/app behind each front-end at /app/, including nginx's stock
    ``include scgi_params`` location, which says nothing about the mount."""
    deployment = forced_deployment
    info = deployment.get_json("/info/some/path?x=1")
    assert paths_of(info) == expected_paths("/app", "/info/some/path", "x=1")
    info = deployment.get_json(f"{ENCODED_TARGET}?{ENCODED_QUERY}")
    assert paths_of(info) == expected_paths("/app", ENCODED_PATH_INFO, ENCODED_QUERY)
    assert deployment.get("/").body == HELLO
    assert resolved_location(deployment, deployment.get("/redirect/")) == "/app/"


# --- the same Apache file in a container -----------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_apache_file_at_server_level_with_variables_from_the_environment(
        transport, backend, offload_dir):
    """How the httpd Docker image uses deploy/apache.conf: no vhost, no Define,
    ``docker run -e SCGI_MOUNT=/app/ -e SCGI_BACKEND=… -e SCGI_OFFLOAD_DIR=…``."""
    deployment, run_dir = start_deployment("apache-env", backend, transport, "/app",
                                           offload_dir, None)
    try:
        info = deployment.get_json("/info/some/path?x=1")
        assert paths_of(info) == expected_paths("/app", "/info/some/path", "x=1")
        bare = frontends.request(deployment.port, "GET", "/app")
        assert bare.status == 301 and resolved_location(deployment, bare) == "/app/"
        assert deployment.get("/offload/?via=x-sendfile").body == SAMPLE.read_bytes()
    finally:
        deployment.frontend.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


# --- the docs show what the tests run -----------------------------------------------------


# Each deploy file and the docs page that shows it.
DEPLOY_FILE_PAGES = {
    "apache.conf": "apache.rst", "apache-balancer.conf": "apache.rst",
    "nginx.conf": "nginx.rst", "nginx-upstream.conf": "nginx.rst",
    "lighttpd.conf": "lighttpd.rst",
    "apache-static.conf": "static-files.rst", "nginx-static.conf": "static-files.rst",
}


@pytest.mark.parametrize("name", sorted(DEPLOY_FILE_PAGES))
def test_deployment_docs_contain_each_deploy_file_verbatim(name):
    page = DEPLOY_FILE_PAGES[name]
    docs = (REPO / "docs" / page).read_text()
    text = (REPO / "deploy" / name).read_text()
    # An RST literal block: every non-empty line indented by the same four spaces.
    assert textwrap.indent(text, "    ") in docs, (
        f"docs/{page} must show deploy/{name} verbatim (indented 4 spaces)")
