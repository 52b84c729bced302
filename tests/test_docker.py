"""The Docker deployment, proven without a Docker engine (issue 3, item 6).

The test machines have the ``docker`` client at most, no engine. What can run here does:

* the ``Dockerfile`` is parsed (exec-form ``ENTRYPOINT``/``CMD``/``HEALTHCHECK`` are JSON)
  and its entrypoint + command run from the checkout with its ``ENV``, the container's
  paths mapped to temp dirs (``WORKDIR`` /app is the checkout, which is what the
  ``COPY`` lines put there). The process must serve, keep its PID through runscgi's
  re-exec, drain and exit 0 on SIGTERM, and pass the ``HEALTHCHECK`` command while up
  and fail it once down. As root it also runs as PID 1 of its own PID namespace
  (``unshare``), where a signal without a handler would be ignored.
* ``compose.yaml`` is read without a YAML library (it is written in a plain subset that
  a small reader here handles; PyYAML, when installed, must read it the same), its
  files must exist, and its services run: ``app-socket`` and two ``app`` replicas with
  their compose command and environment, and Debian's apache2 with
  ``deploy/docker/httpd.conf``, the files the ``httpd`` service mounts and the
  variables it sets (ports, paths and container names mapped to this machine).

What stays untested: building the image (``pip install`` inside python:3.12-slim),
the httpd:2.4 image's own modules, Docker's volume permissions and DNS.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import frontends
import pytest
from helpers import REPO, ServerProcess, copy_project

from django_scgi import client

DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "compose.yaml"
DOCKERIGNORE = REPO / ".dockerignore"
HELLO = b"Hello from django-scgi\n"
# Container directories that are not copied from the checkout: mapped to fresh temp
# dirs. The socket directory is made the way the Dockerfile makes it (group of httpd's
# workers; see frontends.make_socket_dir).
SOCKET_DIR = "/run/scgi"
DATA_DIR = "/var/lib/app"
# httpd's workers reach the app replicas from 127.0.0.1 here, not from Docker's
# networks: what a user does for their own subnet (compose.yaml interpolates it).
COMPOSE_VARIABLES = {"SCGI_ALLOW_FROM": "127.0.0.0/8"}


# --- the Dockerfile ---------------------------------------------------------------------


@dataclasses.dataclass
class Copy:
    sources: list[str]
    dest: str  # absolute, in the image
    flags: dict[str, str]


@dataclasses.dataclass
class Dockerfile:
    instructions: list[tuple[str, str]]
    base: str = ""
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    workdir: str = "/"
    user: str = "root"
    copies: list[Copy] = dataclasses.field(default_factory=list)
    runs: list[str] = dataclasses.field(default_factory=list)
    entrypoint: list[str] = dataclasses.field(default_factory=list)
    cmd: list[str] = dataclasses.field(default_factory=list)
    healthcheck: list[str] = dataclasses.field(default_factory=list)
    healthcheck_options: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def command(self) -> list[str]:
        return [*self.entrypoint, *self.cmd]


def exec_form(text: str, what: str) -> list[str]:
    """A JSON array of strings: Docker's exec form (no shell between Docker and PID 1)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        pytest.fail(f"{what} is not in exec form (a JSON array): {text}")
    assert isinstance(value, list) and all(isinstance(item, str) for item in value), text
    return value


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        name, _, args = (pending + stripped).partition(" ")
        instructions.append((name.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def parse_dockerfile(path: Path = DOCKERFILE) -> Dockerfile:
    parsed = Dockerfile(dockerfile_instructions(path.read_text()))
    for name, args in parsed.instructions:
        if name == "FROM":
            parsed.base = args.split()[0]
        elif name == "ENV":
            for item in shlex.split(args):
                key, sep, value = item.partition("=")
                assert sep, f"ENV {args}: write KEY=value"
                parsed.env[key] = value
        elif name == "WORKDIR":
            parsed.workdir = str(PurePosixPath(parsed.workdir, args))
        elif name == "USER":
            parsed.user = args
        elif name == "COPY":
            words = shlex.split(args)
            flags = dict(word[2:].partition("=")[::2] for word in words if word.startswith("--"))
            paths = [word for word in words if not word.startswith("--")]
            dest = str(PurePosixPath(parsed.workdir, paths[-1]))
            parsed.copies.append(Copy(paths[:-1], dest + ("/" if paths[-1].endswith("/") else ""),
                                      flags))
        elif name == "RUN":
            parsed.runs.append(args)
        elif name == "ENTRYPOINT":
            parsed.entrypoint = exec_form(args, "ENTRYPOINT")
        elif name == "CMD":
            parsed.cmd = exec_form(args, "CMD")
        elif name == "HEALTHCHECK":
            options, _, command = args.partition("CMD ")
            parsed.healthcheck_options = dict(
                word[2:].partition("=")[::2] for word in options.split())
            parsed.healthcheck = exec_form(command, "HEALTHCHECK CMD")
    return parsed


# --- compose.yaml: a plain subset of YAML -----------------------------------------------


class ComposeSyntaxError(AssertionError):
    pass


def _strip_comment(line: str) -> str:
    quote = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] in " \t"):
            return line[:index]
    return line


def _scalar(text: str, number: int) -> str:
    if text[:1] in "[{&*!|>":
        raise ComposeSyntaxError(f"line {number}: keep compose.yaml to plain block style")
    if text.startswith('"'):
        if not text.endswith('"') or len(text) < 2:
            raise ComposeSyntaxError(f"line {number}: unterminated string")
        return json.loads(text)  # YAML's double-quoted escapes, as far as we use them
    if text.startswith("'"):
        if not text.endswith("'") or len(text) < 2:
            raise ComposeSyntaxError(f"line {number}: unterminated string")
        return text[1:-1].replace("''", "'")
    return text


def parse_compose(text: str) -> dict:
    """Block mappings, block sequences of scalars, plain and quoted scalars, comments."""
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw).rstrip()
        if not line.strip():
            continue
        if "\t" in line:
            raise ComposeSyntaxError(f"line {number}: tab")
        lines.append((len(line) - len(line.lstrip(" ")), line.strip(), number))
    value, end = _block(lines, 0)
    if end != len(lines):
        raise ComposeSyntaxError(f"line {lines[end][2]}: unexpected indentation")
    return value


def _block(lines: list, index: int) -> tuple[object, int]:
    indent = lines[index][0]
    if lines[index][1] == "-" or lines[index][1].startswith("- "):
        items = []
        while index < len(lines) and lines[index][0] == indent and lines[index][1].startswith("- "):
            items.append(_scalar(lines[index][1][2:].strip(), lines[index][2]))
            index += 1
        return items, index
    mapping: dict[str, object] = {}
    while index < len(lines) and lines[index][0] == indent:
        _, text, number = lines[index]
        key, sep, rest = text.partition(":")
        if not sep or (rest and not rest.startswith(" ")) or key in mapping:
            raise ComposeSyntaxError(f"line {number}: expected a new `key:`")
        index += 1
        if rest.strip():
            mapping[key] = _scalar(rest.strip(), number)
        elif index < len(lines) and lines[index][0] > indent:
            mapping[key], index = _block(lines, index)
        else:
            mapping[key] = None
    return mapping, index


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``$$``."""
    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(3)
        return variables.get(name) or (default if default is not None else "")

    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}", substitute, value)


def compose() -> dict:
    return parse_compose(COMPOSE.read_text())


def volume_mounts(service: dict) -> list[tuple[str, str]]:
    """(source, container path) of each volume: "./x" bind mounts or named volumes."""
    mounts = []
    for item in service.get("volumes") or []:
        source, target, *_ = item.split(":")
        mounts.append((source, target))
    return mounts


# --- running the image's processes here --------------------------------------------------


ABSOLUTE_PATH = r"(?:(?<=^)|(?<=[:=\s]))/(?!/)[^\s:|]*"


class ContainerPaths:
    """Container paths → host paths: prefixes, longest first."""

    def __init__(self, prefixes: Mapping[str, Path]) -> None:
        self.prefixes = sorted(prefixes.items(), key=lambda item: -len(item[0]))

    def maps(self, path: str) -> bool:
        return any(path == prefix or path.startswith(prefix.rstrip("/") + "/")
                   for prefix, _ in self.prefixes)

    def host(self, path: str) -> str:
        for prefix, host in self.prefixes:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return str(host) + path[len(prefix.rstrip("/")):]
        raise AssertionError(f"no host directory for the container path {path}: "
                             "tests/test_docker.py maps each one")

    def text(self, value: str) -> str:
        """Absolute paths in ``value`` (alone, after ':' or '=') below a known prefix,
        mapped; others (URL paths such as "/") stay."""
        return re.sub(ABSOLUTE_PATH, lambda match: (
            self.host(match.group(0)) if self.maps(match.group(0)) else match.group(0)), value)


def image_paths(dockerfile: Dockerfile, socket_dir: Path, data_dir: Path) -> ContainerPaths:
    """WORKDIR is the checkout; the files copied elsewhere are their sources."""
    prefixes: dict[str, Path] = {dockerfile.workdir: REPO, SOCKET_DIR: socket_dir,
                                 DATA_DIR: data_dir}
    for copy in dockerfile.copies:
        if len(copy.sources) == 1 and not copy.dest.startswith(dockerfile.workdir + "/"):
            prefixes[copy.dest] = REPO / copy.sources[0]
    return ContainerPaths(prefixes)


@pytest.fixture(scope="module")
def python_on_path(tmp_path_factory) -> str:
    """A directory whose ``python`` is this interpreter (the image's is on its PATH)."""
    directory = tmp_path_factory.mktemp("bin")
    wrapper = directory / "python"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    wrapper.chmod(0o755)
    return str(directory)


def process_env(python_dir: str, *layers: Mapping[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SCGI_", "DJANGO_"))}
    env["PATH"] = f"{python_dir}:{env.get('PATH', '/usr/bin:/bin')}"
    for layer in layers:
        env.update(layer)
    return env


@dataclasses.dataclass
class Container:
    """One service's process as Docker would start it, here."""

    name: str
    command: list[str]  # host paths
    env: dict[str, str]
    paths: ContainerPaths
    dockerfile: Dockerfile
    server: ServerProcess | None = None

    def start(self) -> Container:
        self.server = ServerProcess([], self.env, REPO, self.command)
        return self

    def wait_started(self) -> Container:
        self.server.wait_started()
        return self

    def healthcheck(self) -> subprocess.CompletedProcess:
        """The image's HEALTHCHECK command line, with this container's paths."""
        command = [self.paths.text(word) for word in self.dockerfile.healthcheck]
        return subprocess.run(command, check=False, cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=30)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def image_container(name: str, dockerfile: Dockerfile, python_dir: str, socket_dir: Path,
                    data_dir: Path, command: list[str] | None = None,
                    environment: Mapping[str, str] | None = None) -> Container:
    """ENTRYPOINT + (``command`` or CMD) with the image's ENV and ``environment`` on top."""
    paths = image_paths(dockerfile, socket_dir, data_dir)
    argv = [*dockerfile.entrypoint, *(command if command is not None else dockerfile.cmd)]
    mapped = [paths.host(argv[0]), *(paths.text(word) for word in argv[1:])]
    layers = {**dockerfile.env, **(environment or {})}
    env = process_env(python_dir, {key: paths.text(value) for key, value in layers.items()})
    return Container(name, mapped, env, paths, dockerfile)


@pytest.fixture
def image_dirs():
    socket_dir = frontends.make_socket_dir()
    data_dir = frontends.make_run_dir("app-data-")
    yield socket_dir, data_dir
    shutil.rmtree(socket_dir, ignore_errors=True)
    shutil.rmtree(data_dir, ignore_errors=True)


def scgi_get(address: str, path: str, timeout: float = 10.0) -> client.Response:
    return client.request(address, path, timeout=timeout)


# --- the Dockerfile's shape ---------------------------------------------------------------


def dockerignored(path: str) -> bool:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    first = path.split("/")[0]
    return any(first == pattern or PurePosixPath(path).match(pattern) for pattern in patterns)


def test_dockerfile_shape():
    dockerfile = parse_dockerfile()
    assert re.fullmatch(r"python:3\.\d+-slim", dockerfile.base), dockerfile.base
    assert dockerfile.user not in ("", "root", "0"), "the server must not run as root"
    assert dockerfile.cmd[:3] == ["python", "manage.py", "runscgi"], dockerfile.cmd
    assert dockerfile.healthcheck[:3] == ["python", "-m", "django_scgi.client"]
    assert "-q" in dockerfile.healthcheck
    # The health check talks to the address the server listens on by default.
    assert dockerfile.healthcheck[3] == dockerfile.env["SCGI_BIND"]
    assert dockerfile.env["SCGI_SOCKET_MODE"] == "660"
    assert dockerfile.env["DJANGO_SETTINGS_MODULE"] == "testproject.settings"
    assert dockerfile.env["DJANGO_DB_PATH"].startswith(DATA_DIR + "/")
    assert any("pip install" in run for run in dockerfile.runs)
    # The directories the test maps are made for the server's user and httpd's group.
    for directory in (SOCKET_DIR, DATA_DIR):
        assert any(f"-o {dockerfile.user} -g www-data" in run and directory in run
                   for run in dockerfile.runs), directory
    assert all(name != "STOPSIGNAL" or args == "SIGTERM"
               for name, args in dockerfile.instructions)
    for copy in dockerfile.copies:
        for source in copy.sources:
            assert (REPO / source).exists(), source
            assert not dockerignored(source), f"{source} is excluded by .dockerignore"
            # WORKDIR stands for the checkout in the tests: true of what is copied there.
            target = copy.dest + PurePosixPath(source).name if copy.dest.endswith("/") \
                else copy.dest
            if target.startswith(dockerfile.workdir + "/"):
                assert PurePosixPath(target).relative_to(dockerfile.workdir) == \
                    PurePosixPath(source), copy
    # Every container path the process sees is one the tests map to this machine.
    paths = image_paths(dockerfile, Path("/"), Path("/"))
    for value in [*dockerfile.env.values(), dockerfile.entrypoint[0], dockerfile.healthcheck[3]]:
        for path in re.findall(ABSOLUTE_PATH, value):
            assert paths.maps(path), f"{path} ({value}): map it in tests/test_docker.py"
    # The entrypoint hands PID 1 over to the command.
    entrypoint = paths.host(dockerfile.entrypoint[0])
    script = [line for line in Path(entrypoint).read_text().splitlines()
              if line.strip() and not line.lstrip().startswith("#")]
    assert script[-1].strip() == 'exec "$@"', script[-1]
    assert os.access(entrypoint, os.X_OK)


def test_image_collects_static_files(tmp_path):
    """The build runs collectstatic once the project is in the image and before it drops
    root; run here, its command fills the project's default STATIC_ROOT."""
    dockerfile = parse_dockerfile()
    steps = dockerfile.instructions
    [collect] = [index for index, (name, args) in enumerate(steps)
                 if name == "RUN" and "collectstatic" in args]
    project_copied = max(index for index, (name, args) in enumerate(steps)
                         if name == "COPY" and "testproject" in args)
    user = next(index for index, (name, _) in enumerate(steps) if name == "USER")
    assert project_copied < collect < user
    command = shlex.split(steps[collect][1])
    assert command[:2] == ["python", "manage.py"], command
    project = copy_project(tmp_path / "app")
    env = {key: value for key, value in os.environ.items()
           if key not in ("DJANGO_STATIC_ROOT", "DJANGO_SETTINGS_MODULE")}
    result = subprocess.run([sys.executable, *command[1:]], cwd=project, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project / "staticfiles" / "testproject" / "demo.css").is_file()


@pytest.mark.parametrize("path", [DOCKERFILE, COMPOSE], ids=lambda path: path.name)
def test_docs_show_the_docker_files_verbatim(path):
    docs = (REPO / "docs" / "deployment.rst").read_text()
    assert textwrap.indent(path.read_text(), "    ") in docs, (
        f"docs/deployment.rst must show {path.name} verbatim (indented 4 spaces)")


def test_dockerignore_keeps_local_state_out():
    for path in (".git", ".venv", "db.sqlite3", "django_scgi.egg-info", "tests"):
        assert dockerignored(path), path


# --- the image's command, run here ------------------------------------------------------


def test_image_command_serves_keeps_its_pid_drains_and_health_checks(
        image_dirs, python_on_path):
    dockerfile = parse_dockerfile()
    container = image_container("image", dockerfile, python_on_path, *image_dirs)
    socket_address = container.paths.text(dockerfile.env["SCGI_BIND"])
    socket_path = Path(socket_address.removeprefix("unix:"))
    try:
        container.start().wait_started()
        server = container.server
        assert server.addresses == [socket_address]
        reply = scgi_get(socket_address, "/")
        assert (reply.status, reply.body) == (200, HELLO)
        # The entrypoint exec'd the command and runscgi re-exec'd itself: one process.
        db = json.loads(scgi_get(socket_address, "/db/?sleep=0").body)
        assert db["pid"] == server.pid
        assert db["local_class"].startswith("gevent"), db  # patched before Django loaded
        assert stat.S_IMODE(socket_path.stat().st_mode) == 0o660
        # The entrypoint migrated the database the settings point at.
        with sqlite3.connect(container.env["DJANGO_DB_PATH"]) as connection:
            assert connection.execute("SELECT count(*) FROM django_migrations").fetchone()[0] > 0
        health = container.healthcheck()
        assert health.returncode == 0, health.stdout + health.stderr

        # docker stop: SIGTERM while a request is in flight.
        slow: list[client.Response] = []
        thread = threading.Thread(target=lambda: slow.append(scgi_get(socket_address,
                                                                      "/sleep/?s=1")))
        thread.start()
        time.sleep(0.3)
        server.signal(signal.SIGTERM)
        assert server.wait(20) == 0, server.output
        thread.join(10)
        assert [(reply.status, reply.body) for reply in slow] == [(200, b"slept\n")]
        assert not socket_path.exists()
        health = container.healthcheck()
        assert health.returncode == client.EXIT_UNREACHABLE, health.stdout + health.stderr
    finally:
        container.stop()


def _unshare() -> str | None:
    binary = shutil.which("unshare")
    if binary is None or os.geteuid() != 0:
        return None
    probe = subprocess.run([binary, "--pid", "--fork", "--mount-proc", "true"],
                           check=False, capture_output=True, timeout=10)
    return binary if probe.returncode == 0 else None


def test_image_command_as_pid_1_of_its_own_namespace(image_dirs, python_on_path):
    """As in a container: PID 1 gets only the signals it handles. runscgi handles
    SIGTERM, so `docker stop` drains it instead of waiting to SIGKILL it."""
    unshare = _unshare()
    if unshare is None:
        pytest.skip("needs root and unshare(1) with PID namespaces")
    dockerfile = parse_dockerfile()
    container = image_container("pid1", dockerfile, python_on_path, *image_dirs)
    socket_address = container.paths.text(dockerfile.env["SCGI_BIND"])
    container.command = [unshare, "--pid", "--fork", "--mount-proc", "--kill-child",
                         *container.command]
    psutil = pytest.importorskip("psutil")
    container.start()
    try:
        deadline = time.monotonic() + 10
        while not (children := psutil.Process(container.server.pid).children()):
            assert time.monotonic() < deadline, "unshare started no process"
            time.sleep(0.01)
        init = children[0]  # the entrypoint at first, PID 1 inside
        container.wait_started()
        db = json.loads(scgi_get(socket_address, "/db/?sleep=0").body)
        assert db["pid"] == 1
        assert init.is_running() and "django_scgi.launch" in " ".join(init.cmdline())
        os.kill(init.pid, signal.SIGTERM)
        assert container.server.wait(20) == 0, container.server.output
        assert "SIGTERM received" in container.server.output
    finally:
        if container.server.proc.poll() is None:
            for child in psutil.Process(container.server.pid).children():
                child.kill()  # by PID; unshare then exits too
        container.stop()


# --- compose.yaml -----------------------------------------------------------------------


def test_compose_file_is_plain_yaml():
    parsed = compose()
    try:
        import yaml
    except ImportError:
        return

    def as_text(value):
        if isinstance(value, dict):
            return {str(key): as_text(item) for key, item in value.items()}
        if isinstance(value, list):
            return [as_text(item) for item in value]
        return None if value is None else str(value)

    assert as_text(yaml.safe_load(COMPOSE.read_text())) == parsed


def test_compose_services_and_files():
    parsed = compose()
    services = parsed["services"]
    assert set(services) == {"app-socket", "app", "httpd"}
    assert services["httpd"]["image"] == "httpd:2.4"
    for name in ("app-socket", "app"):
        assert services[name]["build"] == "."
        # Longer than runscgi's graceful timeout (30 s), so docker stop lets it drain.
        assert int(services[name]["stop_grace_period"].removesuffix("s")) > 30
    # The members' command is the image's, with addresses and an allow-list.
    command = services["app"]["command"]
    assert command[:3] == parse_dockerfile().cmd
    assert "--allow-from" in command
    assert any(word.startswith("0.0.0.0:") for word in command)
    assert any(word.startswith("unix:") for word in command), "the HEALTHCHECK's socket"
    named = set(parsed["volumes"])
    for service in services.values():
        for source, target in volume_mounts(service):
            if source.startswith("."):
                assert (REPO / source).exists(), source
            else:
                assert source in named, source
            assert target.startswith("/"), target
    # The socket volume is where the image's socket lives, in both containers.
    socket_volume = {source for source, target in volume_mounts(services["app-socket"])
                     if target == SOCKET_DIR}
    assert socket_volume and socket_volume <= {
        source for source, target in volume_mounts(services["httpd"]) if target == SOCKET_DIR}
    assert set(services["httpd"]["depends_on"]) == {"app-socket", "app"}


def httpd_files(service: dict) -> dict[str, Path]:
    """Files the httpd service mounts below its ServerRoot, relative to it."""
    root = "/usr/local/apache2/"
    return {target[len(root):]: REPO / source for source, target in volume_mounts(service)
            if source.startswith(".") and target.startswith(root)}


def test_compose_sets_every_variable_the_apache_files_read():
    parsed = compose()
    httpd = parsed["services"]["httpd"]
    files = httpd_files(httpd)
    config = files.pop("conf/httpd.conf")
    assert config == REPO / "deploy" / "docker" / "httpd.conf"
    included = re.findall(r"(?m)^\s*Include\s+(\S+)", config.read_text())
    assert sorted(included) == sorted(files), "httpd.conf includes what compose mounts"
    assert {path.name for path in files.values()} == {"apache.conf", "apache-balancer.conf"}
    needed = set()
    for path in files.values():
        directives = [line for line in path.read_text().splitlines()
                      if not line.lstrip().startswith("#")]
        needed |= set(frontends.PLACEHOLDER.findall("\n".join(directives)))
    assert needed <= set(httpd["environment"]), needed - set(httpd["environment"])
    # One member per replica, by the DNS name compose gives replica n.
    replicas = int(parsed["services"]["app"]["deploy"]["replicas"])
    members = sorted(name for name in httpd["environment"] if name.startswith("SCGI_MEMBER_"))
    assert len(members) == replicas == 2
    for number, name in enumerate(members, 1):
        assert httpd["environment"][name] == f"scgi://{parsed['name']}-app-{number}:4000"


# --- the compose deployment, run here ---------------------------------------------------


@pytest.fixture
def compose_run(python_on_path):
    """Each compose service started here; everything stopped by PID at the end."""
    started: list = []
    directories: list[Path] = []

    def directory(kind: str) -> Path:
        path = frontends.make_socket_dir() if kind == "socket" else frontends.make_run_dir(kind)
        directories.append(path)
        return path

    yield started, directory
    for item in reversed(started):
        item.stop()
    for path in directories:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.frontend
def test_compose_deployment_with_debian_apache(compose_run, python_on_path):
    """httpd's config and variables from compose.yaml, with Debian's apache2, in front of
    app-socket (unix socket in the shared volume) and two app replicas (balancer, TCP)."""
    frontends.require("apache")
    started, directory = compose_run
    parsed = compose()
    services = parsed["services"]
    dockerfile = parse_dockerfile()
    volumes = {name: directory("socket") for name in parsed["volumes"]}

    def service_container(name: str, replica: int, **tcp: str) -> Container:
        service = services[name]
        mounts = {target: source for source, target in volume_mounts(service)}
        socket_dir = volumes[mounts[SOCKET_DIR]] if SOCKET_DIR in mounts else directory("socket")
        command = [interpolate(word, COMPOSE_VARIABLES) for word in service.get("command") or []]
        # Every replica wants 0.0.0.0:4000; here they share one machine.
        command = [tcp.get(word, word) for word in command] or None
        environment = {key: interpolate(value, COMPOSE_VARIABLES)
                       for key, value in (service.get("environment") or {}).items()}
        return image_container(f"{name}-{replica}", dockerfile, python_on_path, socket_dir,
                               directory("app-data-"), command, environment)

    socket_app = service_container("app-socket", 1)
    replicas = [service_container("app", number, **{"0.0.0.0:4000": f"{frontends.HOST}:0"})
                for number in (1, 2)]
    for container in (socket_app, *replicas):
        started.append(container.start())
    for container in (socket_app, *replicas):
        container.wait_started()
        health = container.healthcheck()
        assert health.returncode == 0, f"{container.name}: {health.stdout}{health.stderr}"

    # httpd: container paths and names → this machine.
    httpd = services["httpd"]
    paths = ContainerPaths({target: (volumes[source] if source in volumes else REPO / source)
                            for source, target in volume_mounts(httpd)})
    tcp = {f"{parsed['name']}-app-{number}:4000":
           next(a for a in container.server.addresses if not a.startswith("unix:"))
           for number, container in enumerate(replicas, 1)}
    variables = {}
    for key, value in httpd["environment"].items():
        if key != "SCGI_MOUNT":  # a URL path; the others name files or sockets
            value = paths.text(value)
        for name, address in tcp.items():
            value = value.replace(name, address)
        variables[key] = value
    files = httpd_files(httpd)
    config = files.pop("conf/httpd.conf")
    run_dir = directory("fe-compose-httpd-")
    apache = frontends.ApacheFromFile(run_dir, config=config, files=files,
                                      variables=variables)
    started.append(apache.start())
    socket_port, balancer_port = (apache.ports[80], apache.ports[81])

    def get(port: int, target: str) -> frontends.Reply:
        reply = frontends.request(port, "GET", target)
        assert reply.status == 200, reply.describe() + "\n" + apache.error_log()
        return reply

    # Port 80 → deploy/apache.conf → the unix socket in the shared volume.
    info = get(socket_port, "/app/info/some/path?x=1").json()
    assert (info["script_name"], info["path_info"], info["reverse"]) == (
        "/app", "/info/some/path", "/app/info/")
    assert json.loads(get(socket_port, "/app/db/?sleep=0").body)["pid"] == socket_app.server.pid
    sample = REPO / "testproject" / "files" / "sample.txt"
    assert get(socket_port, "/app/offload/?via=x-sendfile").body == sample.read_bytes()
    # Port 81 → deploy/apache-balancer.conf → both replicas over TCP.
    pids = {json.loads(get(balancer_port, "/app/db/?sleep=0").body)["pid"] for _ in range(8)}
    assert pids == {container.server.pid for container in replicas}
    assert get(balancer_port, "/app/offload/?via=x-sendfile").body == sample.read_bytes()
    for port in (socket_port, balancer_port):
        assert frontends.request(port, "GET", "/app").status == 301
