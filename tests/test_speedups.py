"""The optional C head parser (django_scgi/_speedups.c) against the Python one.

(The other C modules: _syscalls.c is tested with connection.py's other ways of making
the same calls in test_connection.py, _greenlocks.c in test_greenlocks.py.)

The C function takes only complete, plainly valid heads and answers None for the
rest, so the properties are: whatever it returns equals what the Python code
returns for the same bytes, and it does take the heads real front-ends send (else
it would be dead weight). The installation must have built it wherever a C
compiler is available; ``DJANGO_SCGI_PURE_PYTHON=1`` switches it off.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest
from frontend_dumps import DUMPS, cgi_from_dump
from fuzz_inputs import FUZZ, any_input, limits
from helpers import REPO, netstring
from hypothesis import given
from hypothesis import strategies as st

from django_scgi import cgi_head, client, protocol

try:
    from django_scgi import _speedups as speedups
except ImportError:
    speedups = None


def python_parse_head(data: bytes, **limit):
    """protocol.parse_head with the C function switched off: its outcome or error type."""
    saved, protocol._c_parse_head = protocol._c_parse_head, None
    try:
        return protocol.parse_head(data, **limit)
    except protocol.ProtocolError as error:
        return type(error)
    finally:
        protocol._c_parse_head = saved


def c_parse_head(data: bytes, max_header_size: int = 65536, max_headers: int = 1000):
    return speedups.parse_head(data, max_header_size, max_headers)


def test_built_wherever_a_compiler_is():
    if not (shutil.which(sysconfig.get_config_var("CC").split()[0] or "cc")
            and os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))):
        pytest.skip("no C compiler or no Python headers here: the Python parser serves")
    probe = subprocess.run(
        [sys.executable, "-c",
         "import django_scgi._speedups, django_scgi._syscalls"],
        cwd=REPO, capture_output=True, text=True, timeout=30, check=False,
    )
    assert probe.returncode == 0, f"the C modules were not built: {probe.stderr}"


needs_speedups = pytest.mark.skipif(speedups is None, reason="the C parser is not built")


@needs_speedups
@FUZZ
@given(data=any_input, limit=limits)
def test_c_agrees_with_python_wherever_it_answers(data, limit):
    answer = c_parse_head(data, limit["max_header_size"], limit["max_headers"])
    if answer is not None:
        expected = python_parse_head(data, max_header_size=limit["max_header_size"],
                                     max_headers=limit["max_headers"])
        assert answer == expected
        assert list(answer[0]) == list(expected[0])  # the front-end's order, too


@needs_speedups
@pytest.mark.parametrize("case", sorted(DUMPS))
def test_real_front_end_heads_take_the_c_path(case):
    cgi = cgi_from_dump(DUMPS[case])
    data = protocol.encode_request(cgi, b"")
    answer = c_parse_head(data)
    assert answer is not None, "a real front-end's head fell back to Python"
    assert answer == python_parse_head(data)


@needs_speedups
def test_repeated_names_are_left_to_python():
    # nginx < 1.23 repeats a header; Python joins the values, C does not try.
    data = netstring(USUAL + b"HTTP_X\x00a\x00HTTP_X\x00b\x00")
    assert c_parse_head(data) is None
    assert python_parse_head(data)[0]["HTTP_X"] == "a, b"


USUAL = b"CONTENT_LENGTH\x000\x00SCGI\x001\x00"


@needs_speedups
@pytest.mark.parametrize("data", [
    b"", b"1", b"30:", b"01:x,", b"9999999999999999999:", netstring(USUAL)[:-1],
    netstring(USUAL, b";"), netstring(USUAL[:-1]), netstring(USUAL + b"X\x00"),
    b"0" + netstring(USUAL), netstring(b""), netstring(b"\x00\x00"),
    netstring(b"CONTENT_LENGTH\x00" + b"9" * 19 + b"\x00SCGI\x001\x00"),
    netstring(b"CONTENT_LENGTH\x00-1\x00SCGI\x001\x00"),
    netstring(b"CONTENT_LENGTH\x00\xb2\x00SCGI\x001\x00"),
    netstring(b"CONTENT_LENGTH\x000\x00SCGI\x002\x00"),
    netstring(b"CONTENT_LENGTH\x000\x00"),
    netstring(b"SCGI\x001\x00CONTENT_LENGTH\x000\x00"),
    netstring(USUAL + b"\x00x\x00"),
    netstring(USUAL + b"SCGI\x001\x00"),
])
def test_anything_unusual_is_left_to_python(data):
    assert c_parse_head(data) is None
    assert c_parse_head(netstring(USUAL)) is not None  # the control: the usual head


@needs_speedups
@given(st.binary(max_size=64), st.integers(-1, 2**62), st.integers(-1, 10))
def test_never_crashes_on_any_bytes_and_limits(data, max_header_size, max_headers):
    answer = c_parse_head(netstring(USUAL + data), max_header_size, max_headers)
    assert answer is None or answer == python_parse_head(
        netstring(USUAL + data), max_header_size=max(max_header_size, 0),
        max_headers=max(max_headers, 0))
    answer = c_parse_head(b"20:" + data, max_header_size, max_headers)
    assert answer is None or isinstance(answer, tuple)


@needs_speedups
def test_body_size_limit_still_applies_to_a_c_parsed_head():
    data = protocol.encode_request({"SCGI": "1"}, b"12345")
    with pytest.raises(protocol.BodyTooLarge):
        protocol.parse_head(data, max_body_size=4)
    assert protocol.parse_head(data, max_body_size=5)[1] == 5


def test_switched_off_by_the_environment():
    code = ("from django_scgi import cgi_head, connection, protocol; "
            "print(protocol._c_parse_head, cgi_head._c_encode_head, cgi_head._c_declared_length, "
            "connection._c_accept, connection._c_unread_bytes, connection._c_send_more)")
    probe = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=30,
        check=False, env={**os.environ, "DJANGO_SCGI_PURE_PYTHON": "1"},
    )
    assert probe.stdout.split() == ["None"] * 6, probe.stderr


@pytest.mark.parametrize("pure_python", ["", "1"], ids=["c", "python"])
def test_a_server_answers_the_same_either_way(start_server, pure_python):
    # The same requests, served with and without the C parser: a usual GET, a POST
    # whose body came with the head, a repeated header (Python joins it either way).
    server = start_server(env={"DJANGO_SCGI_PURE_PYTHON": pure_python})
    address = server.addresses[0]
    info = client.request(address, "/info/x?a=1", headers={"Cookie": "k=v"})
    assert info.status == 200
    assert json.loads(info.body)["path"] == "/info/x" and json.loads(info.body)["cookies"] == {
        "k": "v"}
    echo = client.request(address, "/echo/", method="POST", body=b"abc" * 100)
    assert (echo.status, echo.body) == (200, b"abc" * 100)
    cgi = client.build_environ("/info/", "GET", {"Cookie": "a=1"})
    data = protocol.encode_request(cgi, b"")[:-1]  # then a second Cookie, nginx < 1.23 style
    block = data[data.index(b":") + 1:] + b"HTTP_COOKIE\0b=2\0"
    with client.connect(address, 10) as sock:
        sock.sendall(b"%d:%s," % (len(block), block))
        response = client.parse_response(b"".join(iter(lambda: sock.recv(65536), b"")))
    assert json.loads(response.body)["cookies"] == {"a": "1", "b": "2"}


# --- the response head ----------------------------------------------------------------

LATIN1_AND_BEYOND = st.characters(min_codepoint=0, max_codepoint=0x2FF)
header_names = st.sampled_from([
    "Content-Type", "Set-Cookie", "Connection", "CONNECTION", "TE", "te", "Keep-Alive",
    "Transfer-Encoding", "Upgrade", "Trailer", "Proxy-Connection", "X-A", "", "X Bad", "a:b",
    "N\xe4me", "\u212aeep-Alive", "Keep-Alive2", "Connectio\r",
]) | st.text(LATIN1_AND_BEYOND, max_size=8)
header_values = st.sampled_from([
    "text/plain", " padded\t", "\t", "a\r\nInjected: 1", "", "caf\xe9", "\x00",
]) | st.text(LATIN1_AND_BEYOND, max_size=12)


def python_encode_head(status: str, headers):
    saved, cgi_head._c_encode_head = cgi_head._c_encode_head, None
    try:
        return protocol.encode_response_head(status, headers)
    except ValueError:
        return ValueError
    finally:
        cgi_head._c_encode_head = saved


@needs_speedups
@FUZZ
@given(headers=st.lists(st.tuples(header_names, header_values), max_size=6))
def test_c_head_encoder_agrees_with_python_wherever_it_answers(headers):
    answer = speedups.encode_head(b"Status: 200 OK\r\n", headers)
    if answer is not None:
        assert answer == python_encode_head("200 OK", headers)


@needs_speedups
def test_django_response_headers_take_the_c_path():
    headers = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", "23"),
               ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "same-origin"),
               ("Cross-Origin-Opener-Policy", "same-origin"), ("Vary", "Cookie"),
               ("Set-Cookie", " sessionid=abc; HttpOnly; Path=/"), ("Connection", "close")]
    answer = speedups.encode_head(b"Status: 200 OK\r\n", headers)
    assert answer is not None
    assert answer == python_encode_head("200 OK", headers)
    assert b"Set-Cookie: sessionid=abc" in answer and b"Connection" not in answer


@needs_speedups
@pytest.mark.parametrize("headers", [
    [("X-A", "a\r\nb")], [("X A", "1")], [("", "1")], [("X-\u0100", "1")], [("X", "\u0100")],
    [("X", b"1")], [["X", "1"]], [("X", "1", "2")],
])
def test_unusual_headers_are_left_to_python(headers):
    assert speedups.encode_head(b"Status: 200 OK\r\n", headers) is None
    assert speedups.encode_head(b"Status: 200 OK\r\n", tuple(headers)) is None  # a list only


def python_declared_length(headers):
    saved, cgi_head._c_declared_length = cgi_head._c_declared_length, None
    try:
        return protocol.declared_length(headers)
    finally:
        cgi_head._c_declared_length = saved


content_length_names = st.sampled_from(
    ["Content-Length", "content-length", "CONTENT-LENGTH", "Content-Lengt", "Content-Length2",
     "Content_Length", "Cont\xe9nt-Length", "Content-\u212aength"]) | header_names
length_values = st.sampled_from(
    ["0", "23", " 23\t", "023", "", " ", "2 3", "-1", "+1", "1e3", "\u0661", "9" * 18, "9" * 19]
) | header_values


@needs_speedups
@FUZZ
@given(headers=st.lists(st.tuples(content_length_names, length_values), max_size=4))
def test_c_declared_length_agrees_with_python_wherever_it_answers(headers):
    answer = speedups.declared_length(headers)
    if answer is not None:
        assert answer == python_declared_length(headers)


@pytest.mark.parametrize("headers, length", [
    ([("Content-Type", "text/plain"), ("Content-Length", "23")], 23),
    ([("content-length", " 7\t")], 7),
    ([("Content-Type", "text/plain")], -1),
    ([("Content-Length", "5"), ("content-length", "5")], -1),  # repeated: nothing inferred
    ([("Content-Length", "5x")], -1),
    ([("Content-Length", "9" * 19)], -1),
])
def test_declared_length(headers, length):
    assert python_declared_length(headers) == length
    if speedups is not None:
        assert speedups.declared_length(headers) == length  # Django's kind: the C path


@needs_speedups
def test_declared_length_leaves_anything_unusual_to_python():
    assert speedups.declared_length((("Content-Length", "1"),)) is None  # a list only
    assert speedups.declared_length([("Content-Length", "\u0661")]) is None
    assert protocol.declared_length([("Content-Length", "\u0661")]) == -1
