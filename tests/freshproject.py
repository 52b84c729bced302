"""A fresh ``django-admin startproject`` with django_scgi added: what a Django user has.

The demo project (``testproject``) has no admin, sessions or static files; the traps of
issue 22 (CSRF behind nginx on a port, static URLs at a sub-path, static files with
DEBUG on) only show in a project as ``startproject`` makes it. ``FreshProject`` makes one
in a temp dir with a given Python (the test venv's, or a venv a wheel was installed in),
migrates it, creates a superuser and starts ``manage.py runscgi`` in it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import ServerProcess

ADMIN_USER = "admin"
ADMIN_PASSWORD = "fresh-project-password-1"
PACKAGE_NAME = "mysite"
# Appended to the generated settings.py: the one line the install docs ask for.
SETTINGS_TAIL = """
INSTALLED_APPS += ["django_scgi"]
"""


def bin_dir(python: str | Path = sys.executable) -> Path:
    """The directory of ``python``'s console scripts (django-admin): a venv's bin/."""
    return Path(python).parent


def clean_env(**extra: str) -> dict[str, str]:
    """Our environment without what would point runscgi at the demo project."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("DJANGO_SETTINGS_MODULE", "SCGI_BIND", "PYTHONPATH")
           and not key.startswith("DJANGO_SCGI_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class FreshProject:
    """``startproject mysite <directory>`` + ``django_scgi`` in INSTALLED_APPS, migrated."""

    def __init__(self, directory: Path, python: str | Path = sys.executable,
                 settings_tail: str = "", env: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.python = str(python)
        self.env = dict(env or {})  # for every command (settings may read it)
        directory.mkdir(parents=True, exist_ok=True)
        self.run(str(bin_dir(python) / "django-admin"), "startproject", PACKAGE_NAME,
                 str(directory))
        settings = directory / PACKAGE_NAME / "settings.py"
        settings.write_text(settings.read_text() + SETTINGS_TAIL + settings_tail)
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("createsuperuser", "--noinput", "--username", ADMIN_USER,
                    "--email", "admin@example.com",
                    env={"DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD})

    def run(self, *args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run(list(args), cwd=self.directory,
                                env=clean_env(**{**self.env, **(env or {})}),
                                capture_output=True, text=True, timeout=timeout, check=False)
        assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def manage(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return self.run(self.python, "manage.py", *args, env=env)

    def serve(self, *args: str, env: dict[str, str] | None = None,
              command: list[str] | None = None) -> ServerProcess:
        """``manage.py runscgi ARGS`` in the project, started (banner seen)."""
        base = command or [self.python, "manage.py", "runscgi"]
        return ServerProcess(list(args), clean_env(**{**self.env, **(env or {})}),
                             self.directory, base).wait_started()


def csrf_token(html: bytes) -> str:
    """The csrfmiddlewaretoken of a rendered form."""
    match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, html[:2000]
    return match.group(1).decode()


def cookie_value(set_cookies: list[str], name: str) -> str | None:
    for header in set_cookies:
        key, _, rest = header.partition("=")
        if key.strip() == name:
            return rest.split(";", 1)[0]
    return None
