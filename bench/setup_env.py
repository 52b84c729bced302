"""Install what the benchmark drives: Debian packages and the anchors' virtualenv.

* Debian packages (as root with apt-get): nginx, apache2, wrk, valgrind, strace,
  util-linux (taskset), and what building uWSGI from PyPI needs (gcc, python3-dev
  when the interpreter's headers are missing). A policy-rc.d that exits 101 keeps
  apt from starting nginx or Apache on port 80, as ``./dev`` does.
* ``bench/.venv-anchors``: flup 1.0.3, uWSGI, gunicorn, plus Django and gevent pinned
  to the versions of the project's own ``.venv``, so every server runs the same Django
  and the same gevent. Reinstalled only when that list changes.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
ANCHORS_VENV = BENCH / ".venv-anchors"

# The anchors, pinned: a rerun next year measures the same servers.
# psycopg2-binary and psycogreen: the anchors on PostgreSQL (bench/database.py).
ANCHOR_PACKAGES = ["flup==1.0.3", "uWSGI==2.0.31", "gunicorn==27.0.1", "packaging",
                   "psycopg2-binary==2.9.13", "psycogreen==1.0.2"]
# Same as the project's venv: the comparison is between servers, not Django versions.
SHARED_PACKAGES = ["Django", "gevent", "greenlet", "asgiref", "sqlparse"]

# tool -> Debian package
SYSTEM_TOOLS = {
    "nginx": "nginx",
    "apache2": "apache2",
    "wrk": "wrk",
    "valgrind": "valgrind",
    "callgrind_control": "valgrind",
    "strace": "strace",
    "taskset": "util-linux",
    "gcc": "gcc",
}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def find_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in ("/usr/sbin", "/sbin", "/usr/bin"):
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def can_apt() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def apt_install(packages: list[str]) -> bool:
    """apt-get install with daemons kept from starting; False when it failed."""
    policy = Path("/usr/sbin/policy-rc.d")
    created = False
    if not policy.exists():
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        created = True
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        marker = Path("/var/lib/apt/lists/.django-scgi-updated")
        if not marker.exists():
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
            marker.touch()
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        return True
    except subprocess.CalledProcessError as error:
        log(f"apt-get failed: {error}")
        return False
    finally:
        if created:
            policy.unlink()


def python_headers_missing() -> bool:
    include = sysconfig.get_paths().get("include") or ""
    return not os.path.exists(os.path.join(include, "Python.h"))


def ensure_system_tools(install: bool) -> dict[str, str | None]:
    missing = sorted({pkg for tool, pkg in SYSTEM_TOOLS.items() if not find_tool(tool)})
    if python_headers_missing():
        missing.append("python3-dev")
    if missing and install:
        if can_apt():
            log("installing Debian packages: " + " ".join(missing))
            apt_install(missing)
        else:
            log("not root or no apt-get: not installing " + " ".join(missing))
    return {tool: find_tool(tool) for tool in SYSTEM_TOOLS}


def anchor_requirements() -> list[str]:
    pins = []
    for name in SHARED_PACKAGES:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(name)
    return [*ANCHOR_PACKAGES, *pins]


def ensure_anchors_venv(install: bool) -> Path:
    """The anchors' interpreter directory (``bin``); builds the venv when needed."""
    requirements = anchor_requirements()
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()
    marker = ANCHORS_VENV / ".installed"
    python = ANCHORS_VENV / "bin" / "python"
    if marker.exists() and marker.read_text().strip() == digest and python.exists():
        return ANCHORS_VENV / "bin"
    if not install:
        raise SystemExit(f"{ANCHORS_VENV} is missing or stale; run without --no-install")
    log(f"installing the anchors into {ANCHORS_VENV}: " + " ".join(requirements))
    # The same base interpreter as the project's venv (this process runs in it).
    base = getattr(sys, "_base_executable", None) or sys.executable
    if not python.exists():
        subprocess.run([base, "-m", "venv", str(ANCHORS_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *requirements], check=True)
    marker.write_text(digest + "\n")
    return ANCHORS_VENV / "bin"


def _c_modules() -> str:
    """Whether runscgi runs with its optional C modules (the servers inherit this
    environment and run this interpreter)."""
    if os.environ.get("DJANGO_SCGI_PURE_PYTHON"):
        return "off (DJANGO_SCGI_PURE_PYTHON)"
    built = [name for name in ("_speedups", "_syscalls")
             if importlib.util.find_spec(f"django_scgi.{name}") is not None]
    return ", ".join(built) if built else "not built"


def versions(anchors_bin: Path | None, tools: dict[str, str | None]) -> dict[str, str]:
    """Versions of everything measured, for the report."""
    found: dict[str, str] = {"python": sys.version.split()[0]}
    for name in ("Django", "gevent", "greenlet"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    try:
        found["django-scgi"] = importlib.metadata.version("django-scgi")
    except importlib.metadata.PackageNotFoundError:
        pass
    found["django-scgi C modules"] = _c_modules()
    commit = _output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]).strip()
    if commit and " " not in commit:
        dirty = _output(["git", "-C", str(ROOT), "status", "--porcelain", "--", "django_scgi"])
        found["django-scgi commit"] = commit + (" + uncommitted changes" if dirty.strip() else "")
    if anchors_bin:
        script = ("import importlib.metadata as m\n"
                  "for n in ('flup','uWSGI','gunicorn'):\n"
                  "    print(n, m.version(n))")
        out = _output([str(anchors_bin / "python"), "-c", script])
        for line in out.splitlines():
            name, _, version = line.partition(" ")
            found[name] = version
    commands = {
        "nginx": ["nginx", "-v"], "apache2": ["apache2", "-v"], "wrk": ["wrk", "-v"],
        "valgrind": ["valgrind", "--version"], "strace": ["strace", "-V"],
    }
    for name, argv in commands.items():
        if tools.get(name):
            text = _output([tools[name], *argv[1:]]).strip().splitlines()
            found[name] = text[0] if text else "?"
    return found


def _output(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout + done.stderr


def machine() -> dict[str, str]:
    info = {"cpus": str(os.cpu_count()), "kernel": os.uname().release}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory"] = f"{int(line.split()[1]) // 1024 // 1024} GiB"
                break
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                info["os"] = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return info
