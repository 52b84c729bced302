"""Scale-out: one front-end over several ``runscgi`` (issue 3, item 7).

Debian's Apache runs ``deploy/apache-balancer.conf`` (mod_proxy_balancer) and nginx runs
``deploy/nginx-upstream.conf`` + ``deploy/nginx.conf`` (an ``upstream`` group), each over
two real ``runscgi`` processes on loopback TCP. Under a bounded load (4 client threads,
GETs and POSTs, a few seconds) one member gets SIGTERM: no request may fail, the stopped
member must finish what it had accepted and exit 0, and the other member must go on
serving. A control run shows which Apache setting makes the difference: with
``maxattempts=0`` the request that meets the stopped member is answered 503.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import frontends
import pytest
from frontends import Backend
from helpers import REPO, ServerProcess

pytestmark = pytest.mark.frontend

MOUNT = "/app"
CLIENT_THREADS = 4
MAX_REQUESTS_PER_THREAD = 1000  # a bound on the load, whatever the timing
PAUSE = 0.005  # between two requests of one client: some 150 requests/s per thread
LOAD_SECONDS_BEFORE = 1.0  # load on both members before the SIGTERM
LOAD_SECONDS_AFTER = 1.0  # load on the survivor after the stopped member exited
SLOW_REQUESTS = 6  # in flight when the SIGTERM arrives; some land on the stopped member
SLOW_SECONDS = 0.8
UPLOAD = os.urandom(16 * 1024)
UPLOAD_SHA256 = hashlib.sha256(UPLOAD).hexdigest()
BALANCERS = {"apache": frontends.ApacheBalancer, "nginx": frontends.NginxUpstream}


# --- members and front-ends -------------------------------------------------------------


def start_members(count: int, db_dir: Path) -> list[ServerProcess]:
    """``count`` runscgi on 127.0.0.1, started side by side."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SCGI_", "DJANGO_"))}
    env.update({"DJANGO_SETTINGS_MODULE": "testproject.settings", "PYTHONUNBUFFERED": "1",
                "DJANGO_DB_PATH": str(db_dir / "db.sqlite3")})
    servers = [ServerProcess([f"{frontends.HOST}:0"], env, REPO, None) for _ in range(count)]
    try:
        for server in servers:
            server.wait_started()
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


@pytest.fixture
def run_dir():
    path = frontends.make_run_dir("fe-balancer-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def members(run_dir):
    started = start_members(2, run_dir)
    yield started
    for server in started:
        server.stop()


def start_balancer(kind: str, run_dir: Path, addresses: list[str],
                   deploy_file: Path | None = None, mount: str = MOUNT) -> frontends.FrontEnd:
    frontends.require(kind)
    frontend_class = BALANCERS[kind]
    frontend = frontend_class(run_dir / "frontend", mount=mount,
                              members=[Backend(address) for address in addresses],
                              offload_dir=REPO / "testproject" / "files")
    if deploy_file is not None:
        frontend.deploy_file = deploy_file
    return frontend.start()


@pytest.fixture
def balancer_factory(run_dir):
    started: list[frontends.FrontEnd] = []

    def start(kind: str, addresses: list[str], deploy_file: Path | None = None,
              mount: str = MOUNT):
        (run_dir / "frontend").mkdir(exist_ok=True)
        (run_dir / "frontend").chmod(0o755)
        frontend = start_balancer(kind, run_dir, addresses, deploy_file, mount)
        started.append(frontend)
        return frontend

    yield start
    for frontend in started:
        frontend.stop()


# --- load -------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    started: float
    ended: float
    kind: str  # "get", "post", "slow"
    ok: bool
    pid: int | None
    detail: str


def one_request(port: int, kind: str) -> Outcome:
    """A GET of /db/ (answers with the member's PID) or a POST whose SHA-256 is checked."""
    started = time.monotonic()
    try:
        if kind == "post":
            reply = frontends.request(port, "POST", f"{MOUNT}/upload/", body=UPLOAD,
                                      headers=[("Content-Type", "application/octet-stream")],
                                      timeout=20)
            ok = reply.status == 200 and json.loads(reply.body) == {
                "bytes": len(UPLOAD), "sha256": UPLOAD_SHA256}
            pid = None
        else:
            sleep = SLOW_SECONDS if kind == "slow" else 0
            reply = frontends.request(port, "GET", f"{MOUNT}/db/?sleep={sleep}", timeout=20)
            ok = reply.status == 200
            pid = json.loads(reply.body)["pid"] if ok else None
        detail = "" if ok else reply.describe()[:300]
    except Exception as error:
        ok, pid, detail = False, None, repr(error)
    return Outcome(started, time.monotonic(), kind, ok, pid, detail)


class Load:
    """``CLIENT_THREADS`` threads sending requests back to back until told to stop."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(index,), daemon=True)
                         for index in range(CLIENT_THREADS)]

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)

    def _client(self, index: int) -> None:
        for number in range(MAX_REQUESTS_PER_THREAD):
            if self._stop.is_set():
                return
            self._record(one_request(self.port, "post" if (number + index) % 3 == 0 else "get"))
            time.sleep(PAUSE)

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def slow_requests(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=lambda: self._record(one_request(self.port, "slow")),
                                    daemon=True) for _ in range(SLOW_REQUESTS)]
        for thread in threads:
            thread.start()
            time.sleep(0.02)
        return threads

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        return list(self.outcomes)


def summary(outcomes: list[Outcome], pids: dict[int, str]) -> str:
    counts = Counter((outcome.kind, pids.get(outcome.pid, outcome.pid), outcome.ok)
                     for outcome in outcomes)
    failures = [outcome.detail for outcome in outcomes if not outcome.ok][:3]
    return f"{len(outcomes)} requests: {dict(counts)}; first failures: {failures}"


# --- tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["apache", "nginx"])
def test_stopping_one_member_under_load_loses_no_request(kind, members, balancer_factory):
    stopped, survivor = members
    pids = {stopped.pid: "stopped", survivor.pid: "survivor"}
    frontend = balancer_factory(kind, [server.address for server in members])
    load = Load(frontend.port).start()
    try:
        time.sleep(LOAD_SECONDS_BEFORE)
        slow = load.slow_requests()
        time.sleep(0.3)  # the slow requests are in the members' hands now
        signalled_at = time.monotonic()
        stopped.signal(signal.SIGTERM)
        exit_code = stopped.wait(20)
        exited_at = time.monotonic()
        for thread in slow:
            thread.join(20)
        time.sleep(LOAD_SECONDS_AFTER)
    finally:
        outcomes = load.stop()
    report = summary(outcomes, pids)

    assert all(outcome.ok for outcome in outcomes), report
    assert exit_code == 0, stopped.output[-3000:]
    assert {outcome.pid for outcome in outcomes if outcome.pid} == set(pids), report
    before = [outcome for outcome in outcomes if outcome.ended < signalled_at]
    assert {outcome.pid for outcome in before if outcome.pid} == set(pids), (
        "both members served before the SIGTERM: " + report)
    # The stopped member finished what it had accepted: slow requests it was serving when
    # the signal came were answered (200, its PID) before it exited.
    drained = [outcome for outcome in outcomes if outcome.kind == "slow"
               and outcome.pid == stopped.pid and outcome.started < signalled_at]
    assert drained, "no slow request was in flight on the stopped member: " + report
    assert all(outcome.ended <= exited_at + 0.5 for outcome in drained), report
    # Requests kept flowing, to the survivor only, once the stopped member was gone.
    after = [outcome for outcome in outcomes if outcome.started > exited_at]
    assert len(after) >= 20, report
    assert {outcome.pid for outcome in after if outcome.pid} == {survivor.pid}, report
    assert "SIGTERM received" in stopped.output, stopped.output[-3000:]


@pytest.fixture(scope="module")
def live_member(tmp_path_factory):
    """One runscgi for the tests that stop none."""
    (started,) = start_members(1, tmp_path_factory.mktemp("live-member"))
    yield started
    started.stop()


def refused_address() -> str:
    """A loopback port nobody listens on: what a stopped runscgi looks like to Apache."""
    (port,) = frontends.free_ports(1)
    return f"{frontends.HOST}:{port}"


@pytest.mark.parametrize("maxattempts", ["as in the file", "0"])
def test_apache_fails_over_a_refused_connection_only_with_maxattempts(
        maxattempts, live_member, balancer_factory, run_dir):
    """A refused connection puts the member in error for ``retry`` seconds; the request
    goes to another member only while ``maxattempts`` allows another attempt. The file
    sets 1 (Apache's default with two members is the same); 0 shows the 503 it prevents."""
    deploy_file = None
    if maxattempts != "as in the file":
        text = (frontends.DEPLOY / "apache-balancer.conf").read_text()
        assert "maxattempts=1" in text
        deploy_file = run_dir / "apache-balancer-maxattempts-0.conf"
        deploy_file.write_text(text.replace("maxattempts=1", f"maxattempts={maxattempts}"))
        deploy_file.chmod(0o644)
    frontend = balancer_factory("apache", [refused_address(), live_member.address],
                                deploy_file)
    replies = [frontends.request(frontend.port, "GET", f"{MOUNT}/db/?sleep=0")
               for _ in range(6)]
    statuses = [reply.status for reply in replies]
    if deploy_file is None:
        assert statuses == [200] * 6, statuses
        assert {json.loads(reply.body)["pid"] for reply in replies} == {live_member.pid}
    else:
        assert 503 in statuses, statuses
    # Either way Apache logged the refusal and took the member out of rotation.
    assert "AH00959" in frontend.error_log(), frontend.error_log()


@pytest.mark.parametrize("kind", ["apache", "nginx"])
@pytest.mark.parametrize("mount", [MOUNT, ""], ids=["app", "root"])
def test_paths_and_file_offload_through_the_balancer(kind, mount, live_member,
                                                      balancer_factory):
    """The balancer changes nothing the project sees. Apache: the mount is still derived
    from SCRIPT_FILENAME (``proxy:balancer://…`` rewritten to the member's URL)."""
    frontend = balancer_factory(kind, [live_member.address, refused_address()], mount=mount)
    reply = frontends.request(frontend.port, "GET", f"{mount}/info/some/path?x=1")
    info = reply.json()
    assert (info["script_name"], info["path"], info["path_info"], info["reverse"]) == (
        mount, f"{mount}/info/some/path", "/info/some/path", f"{mount}/info/")
    if mount:
        bare = frontends.request(frontend.port, "GET", mount)
        assert bare.status == 301, bare.describe()
    via = "x-sendfile" if kind == "apache" else "x-accel-redirect"
    sample = REPO / "testproject" / "files" / "sample.txt"
    offload = frontends.request(frontend.port, "GET", f"{mount}/offload/?via={via}")
    assert offload.body == sample.read_bytes(), offload.describe()


def test_deploy_files_name_their_members_as_documented():
    apache = (frontends.DEPLOY / "apache-balancer.conf").read_text()
    nginx = (frontends.DEPLOY / "nginx-upstream.conf").read_text()
    for text in (apache, nginx):
        assert set(frontends.PLACEHOLDER.findall(text)) >= {"SCGI_MEMBER_1", "SCGI_MEMBER_2"}
    assert 'ProxyPass "${SCGI_MOUNT}" "balancer://django-scgi/"' in apache
    assert "scgi_next_upstream error timeout;" in nginx
    assert "non_idempotent;" not in nginx
