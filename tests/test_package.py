"""The package as PyPI would ship it (issue 22, item 5).

``python -m build`` makes the wheel and the sdist from the checkout, ``twine check``
reads their metadata, and each is installed into a fresh venv (Django and gevent from
the package index, as for any user) that then serves a fresh ``startproject``:

* the wheel with no compiler reachable (``CC``/``LDSHARED`` point at ``false``): a wheel
  carries its C accelerators built, and installing it compiles nothing. It also serves
  behind Apache at ``/app/`` with deploy/apache.conf, as the docs tell a user to do;
* the sdist with the machine's compiler: pip builds the optional accelerators.

Slow (two venvs, each with Django and gevent): about a minute with a warm pip cache.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import frontends
import pytest
from frontends import Backend, Deployment
from helpers import REPO, FreshProject, clean_env

from django_scgi import __version__, client

pytestmark = pytest.mark.timeout(900)

# What the sdist must carry besides the package: the docs, deployment files, demo
# project and tests (MANIFEST.in).
SDIST_MUST_HOLD = ("LICENSE", "CHANGELOG.rst", "README.rst", "docs/benchmarks.rst",
                   "deploy/apache.conf", "deploy/nginx.conf", "testproject/settings.py",
                   "tests/conftest.py", "manage.py", "django_scgi/_speedups.c")


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([str(arg) for arg in args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{args}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The wheel and the sdist, built from a copy of the checkout (the build writes
    its egg-info next to the sources; the checkout stays untouched)."""
    source = tmp_path_factory.mktemp("source") / "django-scgi"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".venv*", ".git", "__pycache__", "*.egg-info", "build", "dist", ".nox",
        ".pytest_cache", ".hypothesis", "*.so", "_build", "results"))
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, source, env=clean_env())
    return out


def one(directory: Path, pattern: str) -> Path:
    [found] = directory.glob(pattern)
    return found


def make_venv(directory: Path, *install: str | Path, env: dict[str, str]) -> Path:
    run(sys.executable, "-m", "venv", directory)
    python = directory / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", *install, env=env)
    return python


def test_noxfile_matrix_names_existing_tests_and_the_classifiers():
    """noxfile.py's selection names test files that exist, and its pairs are the
    Django classifiers (read without importing nox)."""
    tree = ast.parse((REPO / "noxfile.py").read_text())
    values = {target.id: ast.literal_eval(node.value) for node in tree.body
              if isinstance(node, ast.Assign) for target in node.targets
              if isinstance(target, ast.Name) and target.id in ("MATRIX", "CORE_AND_FRONTENDS")}
    missing = [name for name in values["CORE_AND_FRONTENDS"] if not (REPO / name).is_file()]
    assert not missing, missing
    pyproject = (REPO / "pyproject.toml").read_text()
    for django, python in values["MATRIX"]:
        assert f'"Framework :: Django :: {django}"' in pyproject
        assert f'"Programming Language :: Python :: {python}"' in pyproject


def test_twine_check_passes(dist):
    result = run(sys.executable, "-m", "twine", "check", "--strict", *sorted(dist.iterdir()))
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_sdist_carries_docs_deploy_and_the_demo(dist):
    with tarfile.open(one(dist, "django_scgi-*.tar.gz")) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    missing = [name for name in SDIST_MUST_HOLD if name not in names]
    assert not missing, missing


def test_wheel_metadata(dist):
    wheel = one(dist, "django_scgi-*.whl")
    assert f"django_scgi-{__version__}-" in wheel.name
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(f"django_scgi-{__version__}.dist-info/METADATA").decode()
    assert f"django_scgi-{__version__}.dist-info/licenses/LICENSE" in names
    assert not [name for name in names if name.endswith(".c")]
    assert f"Version: {__version__}" in metadata
    assert "License-Expression: BSD-3-Clause" in metadata
    assert "Project-URL: Changelog," in metadata
    for django in ("5.2", "6.0", "6.1"):
        assert f"Classifier: Framework :: Django :: {django}" in metadata


def serve_and_check(project: FreshProject, python: Path) -> None:
    """runscgi from the venv: its version, and the admin login page over SCGI."""
    version = project.manage("runscgi", "--version").stdout
    assert version.startswith(f"django-scgi {__version__} (Django "), version
    server = project.serve("127.0.0.1:0")
    try:
        reply = client.request(server.address, "/admin/login/", host="127.0.0.1")
        assert reply.status == 200, server.output
        assert b"Log in" in reply.body
    finally:
        assert server.stop() == 0, server.output


def installed_from(python: Path) -> str:
    return run(python, "-c", "import django_scgi; print(django_scgi.__file__)",
               env=clean_env(), cwd=python.parent).stdout.strip()


def test_wheel_installs_without_a_compiler_and_serves_behind_apache(dist, tmp_path):
    no_compiler = clean_env(CC="false", CXX="false", LDSHARED="false")
    python = make_venv(tmp_path / "venv", one(dist, "django_scgi-*.whl"), env=no_compiler)
    assert installed_from(python).startswith(str(tmp_path / "venv"))
    # The accelerators came built in the wheel.
    run(python, "-c", "import django_scgi._speedups", env=clean_env())
    project = FreshProject(tmp_path / "site", python=python,
                           settings_tail='ALLOWED_HOSTS = ["127.0.0.1", "localhost"]\n')
    serve_and_check(project, python)
    frontends.require("apache")
    server = project.serve("127.0.0.1:0")
    run_dir = frontends.make_run_dir("pkg-apache-")
    try:
        apache = frontends.Apache(run_dir, mount="/app", backend=Backend(server.address),
                                  offload_dir=run_dir).start()
        deployment = Deployment(apache, lambda: server.output)
        try:
            page = deployment.get("/admin/login/")
            assert page.status == 200, page.describe()
            assert b'href="/app/static/admin/css/base.css"' in page.body
            assert deployment.get("/static/admin/css/base.css").status == 200
        finally:
            apache.stop()
    finally:
        server.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def test_sdist_builds_with_the_compiler_and_serves(dist, tmp_path):
    python = make_venv(tmp_path / "venv", one(dist, "django_scgi-*.tar.gz"), env=clean_env())
    assert installed_from(python).startswith(str(tmp_path / "venv"))
    has_compiler = shutil.which("cc") or shutil.which("gcc")
    headers = Path(sysconfig.get_paths()["include"], "Python.h").exists()
    if has_compiler and headers:
        run(python, "-c", "import django_scgi._speedups", env=clean_env())
    project = FreshProject(tmp_path / "site", python=python,
                           settings_tail='ALLOWED_HOSTS = ["127.0.0.1", "localhost"]\n')
    serve_and_check(project, python)
