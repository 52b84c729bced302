"""The capsule of testproject through real Gemini front-ends, over real TLS.

Molly Brown (Debian's package, config from deploy/molly-brown.conf) reaches runscgi over
a unix socket; Xitzin (deploy/xitzin_capsule.py: Xitzin's own Gemini server and SCGI
client) over TCP and over a unix socket. A Gemini request is written by Python's ssl
module, with a throw-away client certificate where the test needs one. The same runscgi
keeps answering HTTP front-ends with CGI heads.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import REPO, ServerProcess
from frontends import (
    Backend,
    MollyBrown,
    Xitzin,
    gemini_connection,
    gemini_request,
    make_certificate,
    make_run_dir,
    make_socket_dir,
    missing_reason,
)

from django_scgi import client
from django_scgi.protocol import encode_request

pytestmark = [pytest.mark.frontend, pytest.mark.timeout(120)]

FRONT_ENDS = {"molly-unix": (MollyBrown, "unix"), "xitzin-tcp": (Xitzin, "tcp"),
              "xitzin-unix": (Xitzin, "unix")}


@pytest.fixture(scope="module")
def run_dir():
    path = make_run_dir("gemini-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def certificates(run_dir):
    """(the front-ends' server certificate, a client certificate), made by openssl."""
    made = []
    for name in ("server", "client"):
        directory = run_dir / name
        directory.mkdir()
        certificate = make_certificate(directory)
        if certificate is None:
            pytest.skip("FRONT-END MISSING: openssl not installed — run ./dev test as root")
        made.append(certificate)
    return tuple(made)


@pytest.fixture(scope="module")
def gate(run_dir):
    """The directory the capsule's streaming page waits in (testproject/capsule.py)."""
    path = run_dir / "gate"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def backends(run_dir, gate):
    """One runscgi on TCP and one on a unix socket, started on first use."""
    started: dict[str, ServerProcess] = {}
    socket_dir = make_socket_dir()
    env = {key: value for key, value in os.environ.items() if key != "SCGI_BIND"}
    env.update(DJANGO_SETTINGS_MODULE="testproject.settings", PYTHONUNBUFFERED="1",
               DJANGO_DB_PATH=str(run_dir / "db.sqlite3"), CAPSULE_STREAM_GATE=str(gate))

    def backend(transport: str) -> ServerProcess:
        if transport not in started:
            address = "127.0.0.1:0" if transport == "tcp" else f"unix:{socket_dir}/s.sock"
            started[transport] = ServerProcess([address], env, REPO, None).wait_started()
        return started[transport]

    yield backend
    for server in started.values():
        server.stop()
    shutil.rmtree(socket_dir, ignore_errors=True)


@pytest.fixture(scope="module", params=sorted(FRONT_ENDS))
def deployment(request, backends, certificates):
    kind, transport = FRONT_ENDS[request.param]
    reason = missing_reason(kind.kind)
    if reason:
        pytest.skip(reason)
    server = backends(transport)
    mount = "/app" if kind is MollyBrown else "/api"
    run_dir = Path(tempfile.mkdtemp(prefix=f"{kind.kind}-", dir="/tmp"))
    front = kind(run_dir, mount=mount, backend=Backend(server.address),
                 certificate=certificates[0]).start()
    yield front, server
    front.stop()
    shutil.rmtree(run_dir, ignore_errors=True)


def ask(deployment, path, **kwargs):
    front, _ = deployment
    return gemini_request(front.port, front.url(path), **kwargs)


# --- pages and input ------------------------------------------------------------------------


def test_index_is_gemtext_with_links_under_the_mount(deployment):
    front, _ = deployment
    reply = ask(deployment, "/capsule/")
    assert (reply.code, reply.meta) == (20, "text/gemini")
    assert reply.text.startswith("# django-scgi capsule\n")
    assert f"=> {front.mount}/capsule/hello/ Say hello" in reply.text


def test_a_gemini_request_is_a_secure_get_below_the_mount(deployment):
    front, _ = deployment
    reply = ask(deployment, "/capsule/whoami/?caf%C3%A9%20au%20lait")
    assert (reply.code, reply.meta) == (20, "application/json")
    seen = json.loads(reply.body)
    host = f"localhost:{front.port}"
    assert seen == {
        "method": "GET", "scheme": "gemini", "is_secure": True, "is_gemini": True,
        "script_name": front.mount, "path": f"{front.mount}/capsule/whoami/",
        "path_info": "/capsule/whoami/",
        "absolute": f"gemini://{host}{front.mount}/capsule/whoami/?caf%C3%A9%20au%20lait",
        "reverse": f"{front.mount}/capsule/", "input": "caf\xe9 au lait",
        "get": {"caf\xe9 au lait": [""]}, "certificate": None, "host": host,
    }


def test_input_is_asked_for_then_read_unquoted(deployment):
    assert (ask(deployment, "/capsule/hello/").head) == b"10 What is your name?\r\n"
    reply = ask(deployment, "/capsule/hello/?Ann%20Lee%20%2B%201")
    assert reply.code == 20 and reply.text == "# Hello, Ann Lee + 1!\n"
    assert ask(deployment, "/capsule/secret/").head == b"11 Your secret?\r\n"
    assert ask(deployment, "/capsule/secret/?hunter2").text == "Your secret has 7 characters.\n"


# --- not found, redirects, errors -----------------------------------------------------------


def test_not_found_and_gone(deployment):
    missing = ask(deployment, "/capsule/missing/")
    assert (missing.head, missing.body) == (b"51 Not Found\r\n", b"")  # no HTML page
    assert ask(deployment, "/capsule/nothing-here/").head == b"51 Not Found\r\n"
    assert ask(deployment, "/capsule/gone/").head == b"52 Gone\r\n"


def test_redirects_are_absolute_gemini_urls_that_keep_the_mount(deployment):
    front, _ = deployment
    base = f"gemini://localhost:{front.port}{front.mount}"
    moved = ask(deployment, "/capsule/moved/")
    assert (moved.head, moved.body) == (f"31 {base}/capsule/\r\n".encode(), b"")
    assert ask(deployment, "/capsule/elsewhere/").head == f"30 {base}/capsule/hello/\r\n".encode()
    # CommonMiddleware's APPEND_SLASH, a permanent redirect:
    assert ask(deployment, "/capsule").head == f"31 {base}/capsule/\r\n".encode()


def test_errors_and_slow_down(deployment):
    _, server = deployment
    broken = ask(deployment, "/capsule/broken/")
    assert (broken.head, broken.body) == (b"42 Internal Server Error\r\n", b"")
    assert ask(deployment, "/capsule/busy/").head == b"44 7\r\n"
    # A crash past Django's handler: the server's own answer, in Gemini form.
    early = ask(deployment, "/stream-error-early/")
    assert (early.head, early.body) == (b"42 Internal Server Error\r\n", b"")
    assert server.wait_for_output("stream broke before the first chunk")


# --- client certificates --------------------------------------------------------------------


def test_client_certificate_identity(deployment, certificates):
    mine = certificates[1]
    assert ask(deployment, "/capsule/me/").head == b"60 Please present a client certificate\r\n"
    reply = ask(deployment, "/capsule/me/", client_certificate=mine)
    assert reply.code == 20 and reply.text == f"# You are {mine.sha256}\n"
    # Django's 403: "certificate required" without one, "not authorised" with one.
    assert ask(deployment, "/capsule/members/").head == b"60 Client certificate required\r\n"
    assert ask(deployment, "/capsule/members/", client_certificate=mine).head == \
        b"61 Certificate not authorised\r\n"


# --- streaming ------------------------------------------------------------------------------


def test_streaming_page(deployment, gate):
    """The page waits for the gate between its chunks: through Molly Brown the first chunk
    arrives before the gate opens (it streams); Xitzin hands over the whole answer once
    runscgi has finished it (its SCGI client reads until close), so it gets both."""
    front, _ = deployment
    release = gate / "release"
    release.unlink(missing_ok=True)
    if isinstance(front, MollyBrown):
        with gemini_connection(front.port, front.url("/capsule/stream/")) as tls:
            received = b""
            while b"first chunk\n" not in received:
                chunk = tls.recv(65536)
                assert chunk, received
                received += chunk
            assert b"second chunk" not in received
            release.touch()
            while chunk := tls.recv(65536):
                received += chunk
        assert received == b"20 text/gemini\r\n# Streaming\n\nfirst chunk\nsecond chunk\n"
    else:
        release.touch()
        reply = ask(deployment, "/capsule/stream/")
        assert (reply.head, reply.text) == (b"20 text/gemini\r\n",
                                            "# Streaming\n\nfirst chunk\nsecond chunk\n")


# --- the front-ends' own quirks and the shared listener ----------------------------------------


def test_a_path_that_only_starts_like_the_mount_is_not_below_it(deployment):
    front, _ = deployment
    # Molly Brown matches its mount as a string prefix: it sends "/application" to the
    # "/app" backend (PATH_INFO "lication"), and runscgi routes it outside the mount.
    # Xitzin does not forward it at all. Either way: not found.
    reply = gemini_request(front.port, f"gemini://localhost:{front.port}{front.mount}lication")
    assert reply.code == 51
    if isinstance(front, MollyBrown):
        assert reply.head == b"51 Not Found\r\n"  # Django's answer, not Molly Brown's


def test_the_same_listener_answers_http_front_ends_with_cgi_heads(deployment):
    _, server = deployment
    response = client.request(server.address, "/capsule/")
    assert response.status == 200
    assert ("Content-Type", "text/gemini") in response.headers
    with client.connect(server.address, 10) as sock:
        sock.sendall(encode_request(client.build_environ("/capsule/missing/")))
        raw = b"".join(iter(lambda: sock.recv(65536), b""))
    assert raw.startswith(b"Status: 404 Not Found\r\n")


def test_refusal_of_a_malformed_gemini_request_is_a_gemini_answer(deployment):
    """A Gemini request the parser refuses (no SCGI=1): "59", never a CGI head."""
    _, server = deployment
    block = b"SERVER_PROTOCOL\x00GEMINI\x00CONTENT_LENGTH\x000\x00PATH_INFO\x00/\x00"
    with client.connect(server.address, 10) as sock:
        sock.sendall(b"%d:%b," % (len(block), block))
        raw = b"".join(iter(lambda: sock.recv(65536), b""))
    assert raw == b"59 Bad Request\r\n"
