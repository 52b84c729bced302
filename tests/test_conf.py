"""Tests for django_scgi.conf: addresses, validators, precedence, the config shape.

Pure functions, no Django settings: a ``types.SimpleNamespace`` stands in for
``django.conf.settings`` wherever ``resolve()`` needs one.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from types import SimpleNamespace

import pytest

from django_scgi import conf
from django_scgi.conf import ConfigError, FDAddress, TCPAddress, UnixAddress, parse_address

pytestmark = pytest.mark.timeout(30)

# --- parse_address -----------------------------------------------------------------------

GOOD_ADDRESSES = [
    ("4000", TCPAddress("127.0.0.1", 4000), "127.0.0.1:4000"),
    ("0", TCPAddress("127.0.0.1", 0), "127.0.0.1:0"),
    ("  4000  ", TCPAddress("127.0.0.1", 4000), "127.0.0.1:4000"),
    ("127.0.0.1:4000", TCPAddress("127.0.0.1", 4000), "127.0.0.1:4000"),
    ("0.0.0.0:65535", TCPAddress("0.0.0.0", 65535), "0.0.0.0:65535"),
    ("10.1.2.3:0", TCPAddress("10.1.2.3", 0), "10.1.2.3:0"),
    ("localhost:4000", TCPAddress("127.0.0.1", 4000), "127.0.0.1:4000"),
    ("[::1]:4000", TCPAddress("::1", 4000), "[::1]:4000"),
    ("[::]:0", TCPAddress("::", 0), "[::]:0"),
    # Normalised to the short form, so the banner shows what the kernel shows.
    ("[0:0:0:0:0:0:0:1]:4000", TCPAddress("::1", 4000), "[::1]:4000"),
    ("scgi-backend.internal:4000", TCPAddress("scgi-backend.internal", 4000),
     "scgi-backend.internal:4000"),
    ("unix:/run/app/scgi.sock", UnixAddress("/run/app/scgi.sock"), "unix:/run/app/scgi.sock"),
    ("unix:relative.sock", UnixAddress("relative.sock"), "unix:relative.sock"),
    ("unix:/" + "a" * 106, UnixAddress("/" + "a" * 106), "unix:/" + "a" * 106),
    ("fd:3", FDAddress(3), "fd:3"),
    ("fd:0", FDAddress(0), "fd:0"),
]


@pytest.mark.parametrize(("text", "expected", "shown"), GOOD_ADDRESSES)
def test_parse_address(text, expected, shown):
    address = parse_address(text)
    assert address == expected
    assert str(address) == shown


def test_parse_address_takes_an_int_port():
    assert parse_address(4000) == TCPAddress("127.0.0.1", 4000)


def test_tcp_family():
    assert TCPAddress("::1", 1).family_is_v6
    assert not TCPAddress("127.0.0.1", 1).family_is_v6


BAD_ADDRESSES = [
    ("", "is not an address"),
    ("notanaddress", "is not an address: write PORT, HOST:PORT"),
    (":4000", "is not an address"),
    ("65536", "has no valid port: use a number from 0 to 65535."),
    ("127.0.0.1:65536", "has no valid port"),
    ("127.0.0.1:", "has no valid port"),
    ("127.0.0.1:http", "has no valid port"),
    ("127.0.0.1:-1", "has no valid port"),
    # Non-ASCII digits: isdigit() is true, int() refuses or misreads them.
    ("²", "is not an address"),
    ("127.0.0.1:²", "has no valid port"),
    ("127.0.0.1:٤٠٠٠", "has no valid port"),
    ("fd:²", "is not a file descriptor number."),
    ("999.1.1.1:4000", "'999.1.1.1' in '999.1.1.1:4000' is not a valid IP address."),
    ("1.2.3:4000", "is not a valid IP address."),
    ("bad_name!:4000", "is not a host name or IP address."),
    ("a..b:4000", "is not a host name or IP address."),
    ("::1:4000", "put an IPv6 address in brackets, e.g. [::1]:4000."),
    ("[::1]", "write [IPV6]:PORT, e.g. [::1]:4000."),
    ("[::1]4000", "write [IPV6]:PORT"),
    ("[127.0.0.1]:4000", "brackets are for IPv6 addresses only."),
    ("[nothing]:4000", "'nothing' in '[nothing]:4000' is not an IP address."),
    ("[::1]:99999", "has no valid port"),
    ("unix:", "unix: needs a path, e.g. unix:/run/myapp/scgi.sock."),
    ("unix:/" + "a" * 107, "longer than the 107 bytes allowed."),
    ("fd:", "is not a file descriptor number."),
    ("fd:three", "fd:three is not a file descriptor number."),
    ("fd:-1", "is not a file descriptor number."),
]


@pytest.mark.parametrize(("text", "message"), BAD_ADDRESSES)
def test_parse_address_errors(text, message):
    with pytest.raises(ConfigError) as caught:
        parse_address(text)
    assert message in str(caught.value)
    assert str(caught.value).endswith(".")


# --- validators ----------------------------------------------------------------------------

ACCEPT = [
    (conf.addresses, "4000", (TCPAddress("127.0.0.1", 4000),)),
    (conf.addresses, 4000, (TCPAddress("127.0.0.1", 4000),)),
    (conf.addresses, ["127.0.0.1:1", "unix:/x.sock"],
     (TCPAddress("127.0.0.1", 1), UnixAddress("/x.sock"))),
    (conf.addresses, ("fd:3",), (FDAddress(3),)),
    (conf.positive_int, "1", 1),
    (conf.positive_int, 1000, 1000),
    (conf.positive_int, " 7 ", 7),
    (conf.positive_int, 2.0, 2),
    (conf.non_negative_int, "0", 0),
    (conf.non_negative_int, 0, 0),
    (conf.non_negative_int, 16 * 1024 * 1024, 16 * 1024 * 1024),
    (conf.seconds, "15", 15.0),
    (conf.seconds, "0.5", 0.5),
    (conf.seconds, 30, 30.0),
    (conf.seconds, 1e-3, 0.001),
    (conf.file_mode, "660", 0o660),
    (conf.file_mode, "0660", 0o660),
    (conf.file_mode, "0o600", 0o600),
    (conf.file_mode, "0O777", 0o777),
    (conf.file_mode, 0o660, 0o660),
    # SCGI_SOCKET_MODE = 660 (what "Default: 660" invites): no mode is above 0o777, so
    # an int above 511 made of octal digits means those digits.
    (conf.file_mode, 660, 0o660),
    (conf.file_mode, 600, 0o600),
    (conf.file_mode, 777, 0o777),
    (conf.file_mode, 432, 0o660),  # 0o660 itself, as an int: taken as it is
    (conf.log_level, "debug", "DEBUG"),
    (conf.log_level, " Warning ", "WARNING"),
    (conf.file_mode, "0", 0),
    (conf.boolean, True, True),
    (conf.boolean, False, False),
    (conf.boolean, "yes", True),
    (conf.boolean, "On", True),
    (conf.boolean, "1", True),
    (conf.boolean, "true", True),
    (conf.boolean, "no", False),
    (conf.boolean, " off ", False),
    (conf.boolean, "0", False),
    (conf.boolean, 0, False),
    (conf.networks, "127.0.0.1, 10.0.0.0/8",
     (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"))),
    (conf.networks, ["::1"], (ipaddress.ip_network("::1/128"),)),
    (conf.networks, "", ()),
]


@pytest.mark.parametrize(("validator", "value", "expected"), ACCEPT,
                         ids=[f"{v.__name__}-{value!r}" for v, value, _ in ACCEPT])
def test_validator_accepts(validator, value, expected):
    assert validator(value) == expected


REJECT = [
    (conf.addresses, [], "At least one address to listen on is needed."),
    (conf.addresses, (), "At least one address"),
    (conf.addresses, ["127.0.0.1:1", "nope"], "is not an address"),
    (conf.positive_int, "0", "must be a whole number of at least 1."),
    (conf.positive_int, 0, "must be a whole number of at least 1."),
    (conf.positive_int, -5, "at least 1"),
    (conf.positive_int, "ten", "is not a whole number."),
    (conf.positive_int, "1.5", "is not a whole number."),
    (conf.positive_int, 1.5, "is not a whole number."),
    (conf.positive_int, float("inf"), "is not a whole number."),
    (conf.positive_int, True, "is not a whole number."),
    (conf.positive_int, None, "is not a whole number."),
    (conf.non_negative_int, "-1", "must be a whole number of at least 0."),
    (conf.non_negative_int, "", "is not a whole number."),
    (conf.non_negative_int, False, "is not a whole number."),
    (conf.seconds, "0", "must be a number of seconds above 0."),
    (conf.seconds, -1, "above 0"),
    (conf.seconds, "nan", "above 0"),
    (conf.seconds, "inf", "above 0"),
    (conf.seconds, "soon", "is not a number of seconds."),
    (conf.seconds, True, "is not a number of seconds."),
    (conf.seconds, None, "is not a number of seconds."),
    (conf.file_mode, "999", "is not an octal file mode such as 660."),
    (conf.file_mode, 680, "is not a file mode between 000 and 777 (write '660' or 0o660)."),
    (conf.file_mode, 1000, "is not a file mode between 000 and 777"),
    (conf.log_level, "loud", "is not a log level: use one of DEBUG, INFO"),
    (conf.file_mode, "rw-rw----", "is not an octal file mode"),
    (conf.file_mode, "", "is not an octal file mode"),
    (conf.file_mode, "0o", "is not an octal file mode"),
    (conf.file_mode, "1777", "is not a file mode between 000 and 777."),
    (conf.file_mode, -1, "between 000 and 777"),
    (conf.file_mode, True, "is not an octal file mode"),
    (conf.boolean, "maybe", "is not true or false."),
    (conf.boolean, "", "is not true or false."),
    (conf.boolean, 2, "is not true or false."),
    (conf.networks, "10.0.0.0/33", "write addresses or networks like 127.0.0.1"),
    (conf.networks, "example.com", "write addresses or networks"),
]


@pytest.mark.parametrize(("validator", "value", "message"), REJECT,
                         ids=[f"{v.__name__}-{value!r}" for v, value, _ in REJECT])
def test_validator_rejects(validator, value, message):
    with pytest.raises(ConfigError) as caught:
        validator(value)
    assert message in str(caught.value)


def test_every_default_passes_its_own_validator():
    for option in conf.OPTIONS:
        option.type(option.default)


# --- the table and the config ------------------------------------------------------------


def test_server_config_fields_are_the_option_names():
    fields = [field.name for field in dataclasses.fields(conf.ServerConfig)]
    assert fields == [option.name for option in conf.OPTIONS] + ["mount_prefix"]


def test_server_config_is_frozen():
    config = conf.resolve({}, SimpleNamespace())
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_connections = 1  # type: ignore[misc]


def test_option_names_settings_and_flags():
    names = [option.name for option in conf.OPTIONS]
    assert len(set(names)) == len(names)
    assert set(conf.OPTIONS_BY_NAME) == set(names)
    for option in conf.OPTIONS:
        assert option.setting == "SCGI_" + option.name.upper()
        assert option.flag == "--" + option.name.replace("_", "-")
        assert option.help.strip().endswith(".")
        assert option.positional or option.flag_is_boolean or option.metavar
    assert list(conf.iter_settings_names()) == [option.setting for option in conf.OPTIONS]


def test_defaults():
    config = conf.resolve({}, SimpleNamespace())
    assert config.bind == (TCPAddress("127.0.0.1", 4000),)
    assert config.socket_mode == 0o660
    assert config.max_connections == 1000
    assert config.max_header_size == 64 * 1024
    assert config.access_log is True
    assert config.mount_prefix == ""


# --- precedence: CLI > setting > default -------------------------------------------------


def test_setting_beats_default():
    settings = SimpleNamespace(SCGI_MAX_CONNECTIONS=7, SCGI_BIND="unix:/s.sock",
                               SCGI_SOCKET_MODE="600", SCGI_ACCESS_LOG=False)
    config = conf.resolve({}, settings)
    assert config.max_connections == 7
    assert config.bind == (UnixAddress("/s.sock"),)
    assert config.socket_mode == 0o600
    assert config.access_log is False


def test_cli_beats_setting():
    settings = SimpleNamespace(SCGI_MAX_CONNECTIONS=7, SCGI_BIND="unix:/s.sock",
                               SCGI_ACCESS_LOG=False)
    cli = {"max_connections": "9", "bind": ["127.0.0.1:0"], "access_log": True}
    config = conf.resolve(cli, settings)
    assert config.max_connections == 9
    assert config.bind == (TCPAddress("127.0.0.1", 0),)
    assert config.access_log is True


def test_cli_false_beats_setting_true():
    # --no-access-log gives False, which is a value, not "not given".
    config = conf.resolve({"access_log": False}, SimpleNamespace(SCGI_ACCESS_LOG=True))
    assert config.access_log is False


def test_none_and_empty_list_mean_not_given():
    settings = SimpleNamespace(SCGI_BIND="5000", SCGI_BACKLOG=12)
    config = conf.resolve({"bind": [], "backlog": None}, settings)
    assert config.bind == (TCPAddress("127.0.0.1", 5000),)
    assert config.backlog == 12


def test_setting_none_means_not_set():
    config = conf.resolve({}, SimpleNamespace(SCGI_BIND=None, SCGI_BACKLOG=None))
    assert config.bind == (TCPAddress("127.0.0.1", 4000),)
    assert config.backlog == 1024


def test_defaults_argument_replaces_table_default_only():
    defaults = {"bind": "127.0.0.1:8123"}
    assert conf.resolve({}, SimpleNamespace(), defaults).bind == (TCPAddress("127.0.0.1", 8123),)
    with_setting = conf.resolve({}, SimpleNamespace(SCGI_BIND="9"), defaults)
    assert with_setting.bind == (TCPAddress("127.0.0.1", 9),)


def test_resolve_collects_every_error_and_names_its_source():
    settings = SimpleNamespace(SCGI_BACKLOG=0)
    with pytest.raises(ConfigError) as caught:
        conf.resolve({"max_connections": "0", "bind": ["nope"]}, settings)
    message = str(caught.value)
    assert "--max-connections: '0' must be a whole number of at least 1." in message
    assert "SCGI_BACKLOG: 0 must be a whole number of at least 1." in message
    assert "address: 'nope' is not an address" in message


def test_resolve_reads_django_settings_at_call_time(settings):
    # ``settings`` is pytest-django's fixture: changes are undone after the test.
    settings.SCGI_MAX_BODY_SIZE = 123
    settings.FORCE_SCRIPT_NAME = "/app/"
    config = conf.resolve({})
    assert config.max_body_size == 123
    assert config.mount_prefix == "/app"


def test_check_setting():
    option = conf.OPTIONS_BY_NAME["socket_mode"]
    assert conf.check_setting(option, SimpleNamespace()) is None
    assert conf.check_setting(option, SimpleNamespace(SCGI_SOCKET_MODE="600")) is None
    assert "not an octal file mode" in conf.check_setting(
        option, SimpleNamespace(SCGI_SOCKET_MODE="999"))


# --- mount prefix ----------------------------------------------------------------------------


@pytest.mark.parametrize(("force_script_name", "prefix"), [
    (None, ""),
    ("", ""),
    ("/", ""),
    ("//", ""),
    ("/app", "/app"),
    ("/app/", "/app"),
    ("app", "/app"),
    ("app/", "/app"),
    ("/a/b/", "/a/b"),
    ("/caf\u00e9/", "/caf\u00e9"),
])
def test_mount_prefix_from(force_script_name, prefix):
    assert conf.mount_prefix_from(force_script_name) == prefix
    config = conf.resolve({}, SimpleNamespace(FORCE_SCRIPT_NAME=force_script_name))
    assert config.mount_prefix == prefix


# --- generated documentation -------------------------------------------------------------


def test_options_rst_documents_every_option():
    text = conf.options_rst()
    for option in conf.OPTIONS:
        assert f"``{option.setting}``" in text
        assert option.help in text
        if not option.positional:
            assert option.flag in text
    assert "Default: ``660``" in text
    assert "``--access-log`` / ``--no-access-log``" in text


def test_a_string_of_several_addresses_from_the_environment():
    # SCGI_BIND="127.0.0.1:4000 unix:/run/a.sock" in a container's environment.
    assert conf.addresses("127.0.0.1:4000  unix:/run/a.sock") == (
        conf.TCPAddress("127.0.0.1", 4000), conf.UnixAddress("/run/a.sock"),
    )
