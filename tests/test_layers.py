"""The import table of design.md section 2, held by fresh interpreters.

Each module is imported alone in ``python -c`` and the test asserts which of Django and
gevent ended up in ``sys.modules``. ``launch`` matters most: it runs before gevent has
patched anything, so importing Django or gevent there would defeat the early patching.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.timeout(60)

# module -> (may Django be imported?, may gevent be imported?)
TABLE = {
    "django_scgi": (False, False),
    "django_scgi.protocol": (False, False),
    "django_scgi.environ": (False, False),
    "django_scgi.conf": (False, False),
    "django_scgi.client": (False, False),
    "django_scgi.launch": (False, False),
    "django_scgi.server": (False, True),
    "django_scgi.connection": (False, True),
    "django_scgi.workers": (False, True),
    "django_scgi.systemd": (False, False),
}
# The optional C modules import nothing of either (when they are built at all).
for _name in ("_speedups", "_syscalls"):
    try:
        __import__(f"django_scgi.{_name}")
    except ImportError:
        continue
    TABLE[f"django_scgi.{_name}"] = (False, False)
# The greenlet locks are gevent's, made in C: gevent, no Django. The launcher imports it
# only after gevent has patched.
try:
    __import__("django_scgi._greenlocks")
except ImportError:
    pass
else:
    TABLE["django_scgi._greenlocks"] = (False, True)

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
