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
# Names the directory ``relaunch()`` put in front of PYTHONPATH, so the launcher can
# take it out again once this package is imported.
ADDED_PATH_MARK = "DJANGO_SCGI_ADDED_PYTHONPATH"


def patch() -> None:
    global patched_before_django
    from gevent import monkey

    patched_before_django = not any(
        name == "django" or name.startswith("django.") for name in sys.modules
    )
    monkey.patch_all()
    # Before Django loads its database backend: the drivers wait through gevent.
    from django_scgi import database

    database.install_cooperative_drivers()


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
    # -W, -X, -O … as given to us. Private (typeshed leaves it out), but it is what the
    # stdlib's own multiprocessing and test runner use, and it has not changed since 3.3.
    flags: list[str] = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    return [sys.executable, *flags, "-m", "django_scgi.launch", *target, *argv[1:]]


def import_root() -> str:
    """The ``sys.path`` directory this package was imported from."""
    package_dir = os.path.dirname(os.path.abspath(__file__))
    return os.path.dirname(package_dir)


def path_to_add(root: str, path: list[str], cwd: str) -> str | None:
    """``root`` when ``python -m django_scgi.launch`` would not find this package.

    A new interpreter rebuilds ``sys.path[1:]`` from PYTHONPATH, site-packages and
    ``.pth`` files, and its ``sys.path[0]`` is the working directory. What it does not
    rebuild: our ``sys.path[0]``, the directory of ``manage.py`` (the package may sit
    next to it, not installed, while the command runs from elsewhere: systemd without
    WorkingDirectory), and entries added at run time (``--pythonpath``).
    """
    if root == cwd or root in path[1:]:
        return None
    return root


def relaunch() -> None:
    """Replace this process with the same command line, patched first; never returns."""
    command = relaunch_command()
    os.environ[RELAUNCH_MARK] = str(os.getpid())
    added = path_to_add(import_root(), sys.path, os.getcwd())
    if added:
        original = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [added, original]))
        os.environ[ADDED_PATH_MARK] = added
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


def restore_path() -> None:
    """Undo ``relaunch()``'s PYTHONPATH entry: the application sees what it was given."""
    added = os.environ.pop(ADDED_PATH_MARK, None)
    if not added:
        return
    entries = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if entries and entries[0] == added:
        entries = entries[1:]
    if any(entries):
        os.environ["PYTHONPATH"] = os.pathsep.join(entries)
    else:
        os.environ.pop("PYTHONPATH", None)
    if added in sys.path[1:]:
        del sys.path[sys.path.index(added, 1)]


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

    launch.restore_path()
    launch.patch()
    launch.run(sys.argv[1:])
