"""runscgi's own log lines in a project as ``startproject`` makes it (issue 22, item 6).

Django's default LOGGING routes nothing of ``django_scgi``: runscgi then adds a stderr
handler with time and level (django_scgi.logconfig). A project whose LOGGING routes
``django_scgi`` keeps exactly its own handlers; ``-v`` and ``--log-level`` set the level.
"""

from __future__ import annotations

import re

import pytest
from helpers import FreshProject

from django_scgi import client

pytestmark = pytest.mark.timeout(120)

# "2026-12-06 21:30:21,123 INFO django_scgi.server: Listening on …"
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
OWN_LOGGING = """
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"mine": {"format": "MINE %(levelname)s %(message)s"}},
    "handlers": {"mine": {"class": "logging.StreamHandler", "formatter": "mine"}},
    "loggers": {"django_scgi": {"handlers": ["mine"], "level": "WARNING"}},
}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return FreshProject(tmp_path_factory.mktemp("logs") / "site")


@pytest.fixture(scope="module")
def own_logging_project(tmp_path_factory):
    return FreshProject(tmp_path_factory.mktemp("own-logs") / "site", settings_tail=OWN_LOGGING)


def lines_matching(server, level: str, text: str) -> list[str]:
    pattern = re.compile(rf"{STAMP} {level} django_scgi\.[a-z.]+: {text}")
    return [line for line in server.lines if pattern.fullmatch(line)]


def stopped(server) -> None:
    assert server.stop() == 0, server.output


def test_default_project_shows_info_and_stamped_warnings(project):
    server = project.serve("127.0.0.1:0")
    with client.connect(server.address, 10) as sock:  # a peer that speaks HTTP: a warning
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        while sock.recv(4096):
            pass
    assert server.wait_for_output("spoke HTTP"), server.output
    stopped(server)
    assert lines_matching(server, "INFO", r"Listening on .*"), server.output
    assert lines_matching(server, "INFO", r"Stopped \(pid \d+\)\."), server.output
    assert lines_matching(server, "WARNING", r"Refused a malformed request .*spoke HTTP.*"), (
        server.output)


@pytest.mark.parametrize("args", [("-v", "0"), ("--log-level", "warning")])
def test_quieter_levels_hide_info(project, args):
    server = project.serve("127.0.0.1:0", *args)
    stopped(server)
    assert "Listening on" not in server.output
    assert server.output.count("Serving SCGI on") == 1  # the banner is printed, not logged


def test_debug_level(project):
    server = project.serve("127.0.0.1:0", "-v", "2")
    stopped(server)
    assert lines_matching(server, "INFO", r"Listening on .*"), server.output


def test_project_logging_is_left_alone(own_logging_project):
    server = own_logging_project.serve("127.0.0.1:0")
    with client.connect(server.address, 10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\n\r\n")
        while sock.recv(4096):
            pass
    assert server.wait_for_output("spoke HTTP"), server.output
    stopped(server)
    # Its WARNING level and its format: no INFO lines, no second (stamped) copy.
    assert "Listening on" not in server.output
    warnings = [line for line in server.lines if "spoke HTTP" in line]
    assert len(warnings) == 1 and warnings[0].startswith("MINE WARNING "), server.output


def test_explicit_level_applies_to_the_project_logging(own_logging_project):
    server = own_logging_project.serve("127.0.0.1:0", "--log-level", "INFO")
    stopped(server)
    assert any(line.startswith("MINE INFO Listening on") for line in server.lines), (
        server.output)
