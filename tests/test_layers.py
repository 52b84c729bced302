"""The import table of docs/architecture.rst, held by fresh interpreters.

Each module is imported alone in ``python -c`` and the test asserts which of Django and
gevent ended up in ``sys.modules``. ``launch`` matters most: it runs before gevent has
patched anything, so importing Django or gevent there would defeat the early patching.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

pytestmark = pytest.mark.timeout(60)

# module -> (may Django be imported?, may gevent be imported?). A submodule of server/ or
# workers/ loads its package first, and with it gevent.
TABLE = {
    "django_scgi": (False, False),
    "django_scgi.protocol": (False, False),
    "django_scgi.cgi_head": (False, False),
    "django_scgi.scgi_block": (False, False),
    "django_scgi.scgi_events": (False, False),
    "django_scgi.fastcgi": (False, False),
    "django_scgi.fcgi_records": (False, False),
    "django_scgi.fcgi_events": (False, False),
    "django_scgi.fcgi_response": (False, False),
    "django_scgi.fastcgi_client": (False, False),
    "django_scgi.environ": (False, False),
    "django_scgi.logtext": (False, False),
    "django_scgi.gemini": (False, False),
    "django_scgi.gemini_environ": (False, False),
    "django_scgi.capsule": (True, False),
    "django_scgi.conf": (False, False),
    "django_scgi.values": (False, False),
    "django_scgi.client": (False, False),
    "django_scgi.response_head": (False, False),
    "django_scgi.launch": (False, False),
    "django_scgi.server": (False, True),
    "django_scgi.server.listeners": (False, True),
    "django_scgi.server.body": (False, True),
    "django_scgi.server.exchange": (False, True),
    "django_scgi.server.sendfile": (False, True),
    "django_scgi.server.accesslog": (False, True),
    "django_scgi.server.allowlist": (False, True),
    "django_scgi.server.closing": (False, True),
    "django_scgi.server.pool": (False, True),
    "django_scgi.server.peerlog": (False, True),
    "django_scgi.server.lifecycle": (False, True),
    "django_scgi.server.fcgi_channel": (False, True),
    "django_scgi.server.fcgi_exchange": (False, True),
    "django_scgi.server.fcgi_batch": (False, True),
    "django_scgi.server.fcgi_body": (False, True),
    "django_scgi.connection": (False, True),
    "django_scgi.workers": (False, True),
    "django_scgi.workers.handoff": (False, True),
    "django_scgi.workers.worker": (False, True),
    "django_scgi.workers.supervisor": (False, True),
    "django_scgi.systemd": (False, False),
    # The database modules may use both, inside functions: the launcher imports
    # ``database`` before gevent has patched anything.
    "django_scgi.database": (False, False),
    "django_scgi.dbpool": (False, False),
    "django_scgi.logconfig": (False, False),
    # Django side of the command (static files, STATIC_URL's cache): never gevent.
    "django_scgi.static": (True, False),
}
# The optional C modules import nothing of either (when they are built at all).
for _name in ("_speedups", "_syscalls"):
    try:
        __import__(f"django_scgi.{_name}")
    except ImportError:
        continue
    TABLE[f"django_scgi.{_name}"] = (False, False)
PROBE = """
import json, sys
import {module}
loaded = lambda top: any(name == top or name.startswith(top + ".") for name in sys.modules)
print(json.dumps({{"django": loaded("django"), "gevent": loaded("gevent")}}))
"""


def imports_of(module: str) -> dict[str, bool]:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)], cwd=REPO, env=env,
        check=False, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("module", sorted(TABLE))
def test_module_imports_what_the_table_allows(module):
    may_import_django, may_import_gevent = TABLE[module]
    loaded = imports_of(module)
    if not may_import_django:
        assert not loaded["django"], f"{module} imports Django"
    if not may_import_gevent:
        assert not loaded["gevent"], f"{module} imports gevent"


def test_server_does_import_gevent():
    # The probe itself works: a module that must load gevent is seen loading it.
    assert imports_of("django_scgi.server")["gevent"]


def test_conf_functions_leave_django_alone_until_asked():
    # resolve() with an explicit settings object must not touch django.conf.
    code = (
        "import sys, types; from django_scgi import conf; "
        "conf.resolve({}, types.SimpleNamespace()); conf.options_rst(); "
        "print(any(n == 'django' or n.startswith('django.') for n in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=False,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# Which parts of the package each part may import (docs/architecture.rst): arrows point
# one way, command -> conf/server -> environ -> protocol; client -> protocol. A part is
# the first name under django_scgi (a module, or a package such as server/).
ALLOWED_INTERNAL = {
    "protocol": {"_speedups", "cgi_head", "scgi_block", "scgi_events"},  # and its C accelerator
    "scgi_block": {"scgi_events"},
    "scgi_events": set(),
    "cgi_head": {"_speedups", "protocol"},  # (protocol: a type annotation only)
    "environ": {"protocol", "gemini", "gemini_environ", "logtext", "_speedups"},
    "gemini_environ": {"gemini"},  # environ's Gemini rules and shared path helpers
    "logtext": set(),
    "gemini": set(),  # pure Gemini rules: the standard library only
    "capsule": {"gemini"},  # Django views' API over them
    "conf": {"values"},
    "values": set(),
    "connection": {"_syscalls"},  # its C accelerator
    "launch": {"database"},  # the drivers, made cooperative right after patching
    "database": set(),
    "dbpool": set(),
    "systemd": set(),
    "offload": {"environ"},  # the front-ends' quirks about X-Sendfile names
    "client": {"protocol", "response_head"},
    "response_head": {"protocol", "cgi_head"},
    # FastCGI: the wire codec and the connection state machine beside protocol; the
    # client beside client.
    "fcgi_records": {"protocol"},
    "fastcgi": {"protocol", "fcgi_records", "fcgi_events", "fcgi_response",
                "_speedups"},  # and its C accelerator; it re-exports the other two
    "fcgi_events": {"fcgi_records", "scgi_events"},
    "fcgi_response": {"fcgi_records", "scgi_events"},  # the client's side
    "fastcgi_client": {"fastcgi", "client", "protocol", "response_head"},
    # _speedups: the access line's C accelerator (server/accesslog.py).
    "server": {"protocol", "environ", "logtext", "gemini", "conf", "connection", "fastcgi",
               "_speedups"},
    "workers": {"conf", "server"},
    "checks": {"conf", "database", "offload"},
    "apps": {"checks"},
    "management": {"conf", "server", "workers", "launch", "systemd", "client", "offload",
                   "dbpool", "checks", "logconfig", "static"},
    "logconfig": set(),  # the command's logging default: the standard library only
    "static": set(),  # the command's static files and STATIC_URL cache: Django only
}
PACKAGE = Path(REPO) / "django_scgi"


def _part_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imported_parts(path: Path) -> set[str]:
    """The parts of django_scgi that ``path`` imports, relative imports resolved."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if path.name != "__init__.py":
        package = package[:-1]
    else:
        package = package[:-1] if package[-1] == "__init__" else package
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            names = [*base, *(node.module.split(".") if node.module else [])]
            if names[:1] == ["django_scgi"]:
                targets = [names[1:]] if len(names) > 1 else [[alias.name] for alias in node.names]
                found.update(target[0] for target in targets)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names = alias.name.split(".")
                if names[0] == "django_scgi" and len(names) > 1:
                    found.add(names[1])
    return found


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_one_way_inside_the_package(path):
    part = _part_of(path)
    allowed = ALLOWED_INTERNAL[part] | {part}
    imported = _imported_parts(path) - {"__version__"}
    assert imported <= allowed, f"{path.relative_to(PACKAGE)} imports {imported - allowed}"


def test_the_direction_check_sees_relative_imports():
    # The check itself works: the exchange's relative imports resolve to their parts.
    imported = _imported_parts(PACKAGE / "server" / "exchange.py")
    assert {"protocol", "environ", "conf", "connection", "server"} <= imported
