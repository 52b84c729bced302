"""The version matrix: each Django release the package supports, on a Python it supports.

    ./dev matrix                          # every session: django(5.2), django(6.0), django(6.1)
    ./dev matrix -s "django(6.1)"         # one
    ./dev matrix -s "django(5.2)" -- tests/test_protocol.py -x   # pytest arguments after --

Django 5.2 LTS on Python 3.10 (the oldest pair), 6.0 on 3.12, 6.1 on 3.13 (the newest
pair). The newest pair runs the whole suite; the others run the core and the front-end
tests (CORE_AND_FRONTENDS), which is where a Django or Python difference would show.
pyproject.toml's classifiers and requires-python say exactly this.

Each session is a venv of nox's with the project installed editable (the C accelerators
are built in place for that Python, beside the other Pythons' builds) and the Django
release pinned. ``./dev matrix`` puts pyenv's interpreters on PATH when pyenv is there.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

# (Django release, Python) pairs, oldest first; the last one is the newest pair.
MATRIX = [("5.2", "3.10"), ("6.0", "3.12"), ("6.1", "3.13")]

# The tests the older pairs run: the layers that touch Django's and Python's APIs, and
# every real front-end.
CORE_AND_FRONTENDS = [
    "tests/test_protocol.py",
    "tests/test_environ.py",
    "tests/test_conf.py",
    "tests/test_checks.py",
    "tests/test_layers.py",
    "tests/test_speedups.py",
    "tests/test_client.py",
    "tests/test_command.py",
    "tests/test_server.py",
    "tests/test_concurrency.py",
    "tests/test_lifecycle.py",
    "tests/test_logging_defaults.py",
    "tests/test_frontends.py",
    "tests/test_startproject.py",
    "tests/test_static_production.py",
    "tests/test_gemini.py",
    "tests/test_gemini_frontends.py",
    "tests/test_fastcgi_protocol.py",
    "tests/test_fastcgi_environ.py",
    "tests/test_fastcgi_server.py",
    "tests/test_fastcgi_frontends.py",
]


def _install(session: nox.Session, django: str) -> None:
    session.install("-e", ".[test]", f"Django~={django}.0")
    session.run("python", "-c", "import django, sys; print('Django', django.get_version(), "
                "'on Python', sys.version.split()[0])")


@nox.session(name="django")
@nox.parametrize(("python", "django"), [(python, django) for django, python in MATRIX],
                 ids=[django for django, _ in MATRIX])
def tests(session: nox.Session, django: str) -> None:
    """The suite on one (Django, Python) pair: whole on the newest, core + front-ends else."""
    _install(session, django)
    newest = (django, session.python) == MATRIX[-1]
    selection = [] if newest or session.posargs else CORE_AND_FRONTENDS
    session.run("python", "-m", "pytest", "-q", *selection, *session.posargs)
