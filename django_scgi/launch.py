"""Run a command line again with gevent's monkey-patching applied before Django loads.

``manage.py runscgi`` is parsed after ``django.setup()``, which has already imported
``django.db``: its connection handler keeps connections in a ``threading.local`` made
at import time. Patching from inside the command would be too late, and every
greenlet would then share one database connection. So ``runscgi`` re-executes the
same command line as ``python -m django_scgi.launch <script or -m module> <args…>``:
this module patches first and then runs the original entry point, unchanged.
``os.execv`` keeps the PID, which matters to process managers and to PID 1 in Docker.

Imports: stdlib only at module level; gevent when patching.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys

# Set by ``patch()``: whether gevent patched the stdlib before any of Django was loaded.
patched_before_django = False
# Marks a process that was re-executed by ``relaunch()``, to stop a relaunch loop.
RELAUNCH_MARK = "DJANGO_SCGI_RELAUNCHED_PID"


def patch() -> None:
    global patched_before_django
    from gevent import monkey

    patched_before_django = not any(name == "django" or name.startswith("django.") for name in sys.modules)
    monkey.patch_all()


def is_patched_early() -> bool:
    """True when this process was patched by ``patch()`` before Django was imported."""
    from gevent import monkey

    return patched_before_django and monkey.is_module_patched("threading")


def was_relaunched() -> bool:
    return os.environ.get(RELAUNCH_MARK) == str(os.getpid())


def relaunch_command(argv: list[str] | None = None) -> list[str]:
    """The command line that runs ``argv`` (default: this process's) through this module."""
    argv = list(sys.argv if argv is None else argv)
    main_module = sys.modules.get("__main__")
    spec = getattr(main_module, "__spec__", None)
    if spec is not None and spec.name:
        # Started with ``python -m NAME``: run NAME again the same way.
        name = spec.name.removesuffix(".__main__")
        target = ["-m", name]
    else:
        target = ["--path", argv[0]]
    flags = subprocess._args_from_interpreter_flags()  # -W, -X, -O … as given to us
    return [sys.executable, *flags, "-m", "django_scgi.launch", *target, *argv[1:]]


def relaunch() -> None:
    """Replace this process with the same command line, patched first; never returns."""
    command = relaunch_command()
    os.environ[RELAUNCH_MARK] = str(os.getpid())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


def run(argv: list[str]) -> None:
    """Run ``-m MODULE args…`` or ``--path SCRIPT args…`` as ``__main__``."""
    if len(argv) < 2 or argv[0] not in ("-m", "--path"):
        sys.exit("usage: python -m django_scgi.launch (-m MODULE | --path SCRIPT) [ARGS...]")
    mode, target, args = argv[0], argv[1], argv[2:]
    if mode == "-m":
        sys.argv = [target, *args]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.argv = [target, *args]
        # What ``python SCRIPT`` does: the script's directory goes first on sys.path.
        sys.path[0] = os.path.dirname(os.path.abspath(target))
        runpy.run_path(target, run_name="__main__")


if __name__ == "__main__":
    # Import ourselves under our real name so the flag set by patch() is the one the
    # management command reads (this file is ``__main__`` here, a different module).
    import django_scgi.launch as launch

    launch.patch()
    launch.run(sys.argv[1:])
