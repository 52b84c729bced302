"""System checks over the SCGI_* settings: one test per id, ids unique and stable."""

from __future__ import annotations

import re
import time

import pytest
from django.test import override_settings

from django_scgi import checks, conf

pytestmark = pytest.mark.timeout(60)

# A value each option's validator refuses, and one it takes.
BAD_AND_GOOD = {
    "bind": ("notanaddress", ["127.0.0.1:4000", "unix:/run/app.sock"]),
    "socket_mode": ("999", "600"),
    "max_connections": (0, 50),
    "backlog": ("many", 128),
    "max_header_size": (-1, 8192),
    "max_body_size": (-1, 0),
    "header_timeout": (0, 5),
    "body_timeout": ("soon", 30.0),
    "write_timeout": (-2, "10"),
    "graceful_timeout": (0, 1),
    "drain_limit": (-1, 0),
    "close_batch": (0, 1),
    "drain_timeout": (0, 2.5),
    "request_timeout": ("forever", 600),
    "min_body_rate": (-1, 0),
    "min_write_rate": (1.5, 1000),
    "max_connections_per_peer": (-3, 50),
    "mask_words": ("x-otp", "OTP, pin"),
    "access_log": ("maybe", False),
    "allow_from": ("10.0.0.300/8", "10.0.0.0/8 192.168.1.7"),
    "workers": (0, 4),
    "max_requests": (-5, 1000),
    "max_requests_jitter": ("some", 50),
    "reload": ("sometimes", True),
    "db_max_connections": (-1, 0),
    "db_wait_timeout": (0, 2.5),
    "protocol": ("gopher", "fastcgi"),
    "keepalive_timeout": (-1, 30),
    "static": ("perhaps", False),
    "insecure": ("2", True),
    "log_level": ("chatty", "debug"),
    "defer_accept": (-1, 0),
}


def scgi_errors() -> list:
    return checks.check_settings()


def test_every_option_has_a_check_id_and_a_test_value():
    names = [option.name for option in conf.OPTIONS]
    assert sorted(checks.SETTING_CHECK_IDS) == sorted(names)
    assert sorted(BAD_AND_GOOD) == sorted(names)


def test_check_ids_are_unique_and_well_formed():
    ids = list(checks.SETTING_CHECK_IDS.values())
    assert len(set(ids)) == len(ids)
    for check_id in ids:
        assert re.fullmatch(r"django_scgi\.[EW]\d{3}", check_id)


def test_check_is_registered():
    from django.core.checks.registry import registry

    assert checks.check_settings in registry.get_checks()


def test_no_errors_with_nothing_set():
    assert scgi_errors() == []


@pytest.mark.parametrize("name", sorted(checks.SETTING_CHECK_IDS))
def test_bad_value_gives_exactly_its_id(name):
    option = conf.OPTIONS_BY_NAME[name]
    bad, good = BAD_AND_GOOD[name]
    with override_settings(**{option.setting: bad}):
        errors = scgi_errors()
    assert [error.id for error in errors] == [checks.SETTING_CHECK_IDS[name]]
    assert errors[0].msg.startswith(f"{option.setting} is invalid: ")
    assert errors[0].hint == option.help
    with override_settings(**{option.setting: good}):
        assert scgi_errors() == []


def test_several_bad_settings_give_several_ids():
    with override_settings(SCGI_BACKLOG=0, SCGI_ACCESS_LOG="maybe"):
        ids = sorted(error.id for error in scgi_errors())
    assert ids == sorted([checks.SETTING_CHECK_IDS["backlog"],
                          checks.SETTING_CHECK_IDS["access_log"]])


def test_manage_py_check_reports_a_bad_setting(run_manage):
    import sys

    bad = run_manage(command=[sys.executable, "manage.py", "check"],
                     env={"SCGI_SOCKET_MODE": "999"})
    assert bad.returncode != 0, bad.stdout
    assert checks.SETTING_CHECK_IDS["socket_mode"] in bad.stdout
    assert "SCGI_SOCKET_MODE is invalid" in bad.stdout

    good = run_manage(command=[sys.executable, "manage.py", "check"],
                      env={"SCGI_SOCKET_MODE": "600"})
    assert good.returncode == 0, good.stdout
    assert "django_scgi." not in good.stdout


# --- deploy checks --------------------------------------------------------------------


def deploy_warnings() -> list:
    return checks.check_exposure()


def test_deploy_check_is_registered_for_deploy_only():
    from django.core.checks.registry import registry

    assert checks.check_exposure in registry.get_checks(include_deployment_checks=True)
    assert checks.check_exposure not in registry.get_checks(include_deployment_checks=False)


@pytest.mark.parametrize("bind", [None, "127.0.0.1:4000", "[::1]:4000", "unix:/run/a.sock"])
def test_no_exposure_warning_for_loopback_or_unix(bind):
    with override_settings(SCGI_BIND=bind):
        assert deploy_warnings() == []


def test_public_tcp_listener_without_allow_list_warns_w001():
    with override_settings(SCGI_BIND=["0.0.0.0:4000", "unix:/run/a.sock"]):
        warnings = deploy_warnings()
    assert [w.id for w in warnings] == [checks.OPEN_TCP_WITHOUT_ALLOW_LIST]
    assert "0.0.0.0:4000" in warnings[0].msg


def test_public_tcp_listener_with_allow_list_is_quiet():
    with override_settings(SCGI_BIND="0.0.0.0:4000", SCGI_ALLOW_FROM="10.1.2.3"):
        assert deploy_warnings() == []


def test_allow_list_of_everyone_warns_w002():
    with override_settings(SCGI_BIND="0.0.0.0:4000", SCGI_ALLOW_FROM="*"):
        assert [w.id for w in deploy_warnings()] == [checks.ALLOW_ANY_PEER]


def test_check_deploy_command_shows_w001(run_manage):
    import sys

    result = run_manage(
        "check", "--deploy", command=[sys.executable, "manage.py"],
        env={"SCGI_BIND": "0.0.0.0:4000"},
    )
    assert checks.OPEN_TCP_WITHOUT_ALLOW_LIST in result.stdout


# --- database drivers ---------------------------------------------------------------

# A database backend whose DB-API module is named like mysqlclient's: mysqlclient itself
# is not installed here, and its name is all the check reads.
BLOCKING_BACKEND = '''
import types

from django.db.backends.dummy.base import DatabaseWrapper as Dummy

class DatabaseWrapper(Dummy):
    Database = types.ModuleType("MySQLdb")
'''


def test_blocking_database_driver_warns_w003(tmp_path, monkeypatch):
    from django.db.utils import ConnectionHandler

    package = tmp_path / "blocking_backend"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "base.py").write_text(BLOCKING_BACKEND)
    monkeypatch.syspath_prepend(str(tmp_path))
    handler = ConnectionHandler({
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        "legacy": {"ENGINE": "blocking_backend"},
    })
    warnings = checks.blocking_driver_warnings(handler)
    assert [w.id for w in warnings] == [checks.BLOCKING_DATABASE_DRIVER]
    assert "'legacy'" in warnings[0].msg and "PyMySQL" in warnings[0].hint


def test_cooperative_database_drivers_are_quiet():
    from django.db import connections

    assert checks.check_database_drivers in __import__(
        "django.core.checks.registry", fromlist=["registry"]).registry.get_checks()
    assert checks.blocking_driver_warnings(connections) == []


# --- W004: a local peer posing as the front-end (issue 20, item 4) ------------------------

REMOTE_USER_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.RemoteUserMiddleware",
]


def front_end_warnings() -> list:
    return checks.check_local_front_end()


def test_local_front_end_check_is_registered_for_deploy_only():
    from django.core.checks.registry import registry

    assert checks.check_local_front_end in registry.get_checks(include_deployment_checks=True)
    assert checks.check_local_front_end not in registry.get_checks()


@pytest.mark.parametrize("trust", [
    {"MIDDLEWARE": REMOTE_USER_MIDDLEWARE},
    {"MIDDLEWARE": ["django.contrib.auth.middleware.PersistentRemoteUserMiddleware"]},
    {"SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https")},
    {"USE_X_FORWARDED_HOST": True},
], ids=["RemoteUserMiddleware", "PersistentRemoteUserMiddleware", "SECURE_PROXY_SSL_HEADER",
        "USE_X_FORWARDED_HOST"])
@pytest.mark.parametrize("listen", [
    {},  # the default: 127.0.0.1:4000, loopback peers allowed
    {"SCGI_BIND": "0.0.0.0:4000", "SCGI_ALLOW_FROM": "127.0.0.1 10.0.0.5"},
    {"SCGI_BIND": "10.0.0.1:4000", "SCGI_ALLOW_FROM": "10.0.0.0/24"},  # its own address
    {"SCGI_BIND": "0.0.0.0:4000", "SCGI_ALLOW_FROM": "*"},
], ids=["default", "loopback-listed", "own-address-listed", "anyone"])
def test_tcp_listener_local_peers_and_trust_warn_w004(trust, listen):
    with override_settings(**trust, **listen):
        warnings = front_end_warnings()
    assert [w.id for w in warnings] == [checks.LOCAL_PEER_CAN_BE_FRONT_END]
    assert "unix socket" in warnings[0].hint


@pytest.mark.parametrize("listen", [
    {"SCGI_BIND": "unix:/run/app/scgi.sock"},
    {"SCGI_BIND": "10.0.0.1:4000", "SCGI_ALLOW_FROM": "10.0.0.5"},  # a remote front-end only
], ids=["unix-socket", "remote-front-end-only"])
def test_no_w004_when_local_peers_cannot_connect(listen):
    with override_settings(MIDDLEWARE=REMOTE_USER_MIDDLEWARE, **listen):
        assert front_end_warnings() == []


def test_no_w004_when_nothing_trusts_the_front_end():
    with override_settings(SCGI_BIND="127.0.0.1:4000"):
        assert front_end_warnings() == []


def test_runscgi_warns_w004_at_start_up_for_the_listeners_it_opened(start_server, short_tmp):
    trusting = {"DJANGO_TRUST_PROXY_HEADER": "1"}
    tcp = start_server("127.0.0.1:0", env=trusting)
    assert tcp.wait_for_output(checks.LOCAL_PEER_CAN_BE_FRONT_END), tcp.output
    assert "SECURE_PROXY_SSL_HEADER" in tcp.output
    unix = start_server(f"unix:{short_tmp}/s.sock", env=trusting)
    plain = start_server("127.0.0.1:0")
    time.sleep(0.5)
    assert checks.LOCAL_PEER_CAN_BE_FRONT_END not in unix.output + plain.output


# --- E100: SCGI_OFFLOAD_ROOTS -----------------------------------------------------------------


@pytest.mark.parametrize("roots", ["/srv/files", ["relative/dir"], ["/"], [3]],
                         ids=["a-string", "relative", "root", "not-a-path"])
def test_bad_offload_roots_give_e100(roots):
    with override_settings(SCGI_OFFLOAD_ROOTS=roots):
        errors = checks.check_offload_roots()
    assert [error.id for error in errors] == [checks.OFFLOAD_ROOTS_INVALID]


def test_good_or_unset_offload_roots_are_quiet():
    with override_settings(SCGI_OFFLOAD_ROOTS=["/srv/files", "/var/lib/app/media"]):
        assert checks.check_offload_roots() == []
    with override_settings(SCGI_OFFLOAD_ROOTS=None):
        assert checks.check_offload_roots() == []


def test_every_check_id_in_the_module_is_unique():
    ids = [value for name, value in vars(checks).items()
           if name.isupper() and isinstance(value, str) and value.startswith("django_scgi.")]
    ids += list(checks.SETTING_CHECK_IDS.values())
    assert len(ids) == len(set(ids)), ids
