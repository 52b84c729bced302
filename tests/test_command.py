"""``runscgi`` as a command: options, settings, help, errors, the options docs, in-process use.

Real ``manage.py runscgi`` subprocesses of the demo project (conftest's ``start_server``
and ``run_manage``); the only in-process test is the one proving that in-process use is
refused.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest
from django.core.management import CommandError, call_command
from helpers import REPO

from django_scgi import client, conf
from django_scgi.protocol import encode_request

pytestmark = pytest.mark.timeout(60)

SETTINGS_PAGE = REPO / "docs" / "settings.rst"


def assert_one_sentence_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Non-zero exit, no traceback, and a single ``CommandError: …`` line that ends a sentence."""
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stdout
    assert len(lines) == 1, result.stdout
    line = lines[0]
    assert line.startswith("CommandError: "), line
    assert line.endswith("."), line
    for fragment in fragments:
        assert fragment in line
    return line


# --- settings and precedence ---------------------------------------------------------------


def test_scgi_bind_setting_used_without_an_address(start_server, short_tmp):
    path = short_tmp / "from-setting.sock"
    server = start_server(env={"SCGI_BIND": f"unix:{path}"})
    assert server.addresses == [f"unix:{path}"]
    assert client.request(server.address, "/").status == 200


def test_cli_address_wins_over_scgi_bind(start_server, short_tmp):
    path = short_tmp / "from-setting.sock"
    server = start_server("127.0.0.1:0", env={"SCGI_BIND": f"unix:{path}"})
    assert len(server.addresses) == 1
    assert re.fullmatch(r"127\.0\.0\.1:\d+", server.address)
    assert not path.exists()
    assert client.request(server.address, "/").status == 200


@pytest.fixture
def small_header_settings(tmp_path):
    """A settings module on PYTHONPATH that sets SCGI_MAX_HEADER_SIZE = 1024."""
    (tmp_path / "small_header_settings.py").write_text(textwrap.dedent("""
        from testproject.settings import *  # noqa: F401,F403

        SCGI_MAX_HEADER_SIZE = 1024
    """))
    return {"PYTHONPATH": f"{tmp_path}:{REPO}"}


def header_block_size(environ: dict[str, str]) -> int:
    """The netstring length ``client.request`` will send for ``environ``."""
    return int(encode_request(environ, b"").partition(b":")[0])


def request_with_header_block(address: str, size: int) -> client.Response:
    """A GET / whose SCGI header block is exactly ``size`` bytes."""
    environ = client.build_environ("/")
    environ["HTTP_X_PAD"] = ""
    environ["HTTP_X_PAD"] = "p" * (size - header_block_size(environ))
    assert header_block_size(environ) == size
    return client.request(address, "/", environ=environ)


def test_setting_from_a_settings_module_takes_effect(start_server, small_header_settings):
    server = start_server("127.0.0.1:0", "--settings", "small_header_settings",
                          env=small_header_settings)
    assert "settings 'small_header_settings'" in server.output
    assert request_with_header_block(server.address, 2048).status == 431
    assert request_with_header_block(server.address, 900).status == 200


def test_cli_option_wins_over_the_setting(start_server, small_header_settings):
    server = start_server("127.0.0.1:0", "--settings", "small_header_settings",
                          "--max-header-size", "4096", env=small_header_settings)
    assert request_with_header_block(server.address, 2048).status == 200
    assert request_with_header_block(server.address, 5000).status == 431


# --- bad option values ------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "fragment"), [
    (["--max-connections", "0"], "--max-connections: '0' must be a whole number of at least 1."),
    (["--socket-mode", "999"], "--socket-mode: '999' is not an octal file mode such as 660."),
    (["--graceful-timeout", "soon"], "--graceful-timeout: 'soon' is not a number of seconds."),
    (["--max-header-size", "-1"], "--max-header-size: '-1' must be a whole number of at least 1."),
])
def test_bad_option_value_is_one_sentence(run_manage, args, fragment):
    assert_one_sentence_error(run_manage(*args), fragment)


def test_bad_setting_value_is_one_sentence(run_manage):
    result = run_manage("127.0.0.1:0", env={"SCGI_SOCKET_MODE": "999"})
    assert_one_sentence_error(result, "SCGI_SOCKET_MODE: '999' is not an octal file mode")


# --- help and documentation ---------------------------------------------------------------------


def test_help_lists_every_option(run_manage):
    result = run_manage("--help")
    assert result.returncode == 0, result.stdout
    for option in conf.OPTIONS:
        if option.positional:
            assert option.metavar in result.stdout
        else:
            assert option.flag in result.stdout, option.flag
        if option.flag_is_boolean:
            assert "--no-" + option.flag[2:] in result.stdout
    # Base options that mean nothing to a server stay hidden, as in runserver.
    assert "--traceback" not in result.stdout


def test_help_shows_each_default_and_setting(run_manage):
    result = run_manage("--help", env={"COLUMNS": "400"})
    assert result.returncode == 0, result.stdout
    for option in conf.OPTIONS:
        assert f"Default: {option.default_text}. Setting: {option.setting}." in result.stdout
    # runserver's spellings for static files, and Django's verbosity.
    for flag in ("--nostatic", "--no-static", "--insecure", "--log-level", "-v {0,1,2,3}"):
        assert flag in result.stdout, flag


def test_version_is_ours(run_manage):
    from django_scgi import __version__

    result = run_manage("--version")
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith(f"django-scgi {__version__} (Django "), result.stdout


def test_http_spoken_to_the_scgi_port_is_named_in_the_log(server):
    """curl pointed at the SCGI port: the log says what happened and what to do."""
    import http.client

    mark = len(server.lines)
    host, port = server.address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/")
        reply = conn.getresponse()
        # Answered in HTTP, so curl and browsers show the sentence.
        assert reply.status == 400
        assert b"spoke HTTP to an SCGI port" in reply.read()
    finally:
        conn.close()
    assert server.wait_for_output("spoke HTTP to an SCGI port"), server.output
    [line] = [line for line in server.lines[mark:] if "spoke HTTP" in line]
    assert "WARNING" in line and "nginx" in line


def test_settings_page_holds_the_generated_options_reference():
    """docs/settings.rst has ``conf.options_rst()`` verbatim between its two markers.

    Edit the option table in conf.py, then run ``python tools/update_options_doc.py``.
    """
    assert SETTINGS_PAGE.exists(), "docs/settings.rst is missing"
    text = SETTINGS_PAGE.read_text(encoding="utf-8")
    match = re.search(r"^\.\. options-start\n(.*?)^\.\. options-end$", text,
                      re.MULTILINE | re.DOTALL)
    assert match, "docs/settings.rst has no '.. options-start' … '.. options-end' block"
    assert match.group(1).strip("\n") == conf.options_rst().strip("\n"), (
        "docs/settings.rst is out of date: run python tools/update_options_doc.py"
    )


# --- in-process use --------------------------------------------------------------------------


def test_call_command_in_process_is_refused():
    # This interpreter imported Django before gevent could patch anything: serving here
    # would share one database connection between all greenlets.
    with pytest.raises(CommandError) as caught:
        call_command("runscgi", "127.0.0.1:0")
    message = str(caught.value)
    assert "gevent could not patch the standard library before Django was imported." in message
    assert "manage.py runscgi" in message


def test_banner_names_versions_and_settings(server):
    import django

    from django_scgi import __version__

    assert server.wait_for_output("Quit with CONTROL-C or SIGTERM.")
    banner = server.output
    assert f"django-scgi {__version__} (Django {django.get_version()}" in banner
    assert f"Python {sys.version.split()[0]}" in banner
    assert "settings 'testproject.settings'" in banner


# --- the launcher's path handling (the relaunch itself: test_concurrency.py) ----------------


@pytest.mark.parametrize(("root", "path", "cwd", "added"), [
    # Next to manage.py, run from elsewhere: only sys.path[0] had it.
    ("/srv/app", ["/srv/app", "/usr/lib/python3"], "/", "/srv/app"),
    # Run from the directory itself: the new interpreter's sys.path[0] is the cwd.
    ("/srv/app", ["/srv/app", "/usr/lib/python3"], "/srv/app", None),
    # Installed, on PYTHONPATH or in a .pth: a new interpreter finds it alone.
    ("/venv/site-packages", ["/srv/app", "/venv/site-packages"], "/", None),
    # --pythonpath put it first at run time.
    ("/srv/lib", ["/srv/lib", "/srv/app", "/usr/lib/python3"], "/", "/srv/lib"),
])
def test_path_to_add(root, path, cwd, added):
    from django_scgi import launch

    assert launch.path_to_add(root, path, cwd) == added


@pytest.mark.parametrize(("pythonpath", "restored"), [
    ("/srv/app", None),
    (f"/srv/app{os.pathsep}/opt/lib", "/opt/lib"),
])
def test_restore_path_undoes_the_relaunch_addition(monkeypatch, pythonpath, restored):
    from django_scgi import launch

    monkeypatch.setenv("PYTHONPATH", pythonpath)
    monkeypatch.setenv(launch.ADDED_PATH_MARK, "/srv/app")
    monkeypatch.setattr(sys, "path", ["/cwd", "/srv/app", "/usr/lib/python3"])
    launch.restore_path()
    assert os.environ.get("PYTHONPATH") == restored
    assert launch.ADDED_PATH_MARK not in os.environ
    assert sys.path == ["/cwd", "/usr/lib/python3"]


def test_restore_path_without_a_relaunch_changes_nothing(monkeypatch):
    from django_scgi import launch

    monkeypatch.setenv("PYTHONPATH", "/srv/app")
    monkeypatch.delenv(launch.ADDED_PATH_MARK, raising=False)
    monkeypatch.setattr(sys, "path", ["/cwd", "/srv/app"])
    launch.restore_path()
    assert os.environ["PYTHONPATH"] == "/srv/app"
    assert sys.path == ["/cwd", "/srv/app"]
