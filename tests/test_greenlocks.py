"""The C forms of gevent's get_ident(), RLock and Lock (django_scgi/_greenlocks.c).

The launcher puts them in ``threading`` after gevent's patching; Django then takes
them several times per request (asgiref's Local, signals). The property that matters: a
greenlet program sees exactly what it sees with gevent's Python versions. The
scenarios (tests/greenlock_scenarios.py) run in a process started the way runscgi
starts, once with each implementation, and must observe the same, and the right,
things.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
from conftest import REPO

from django_scgi import launch

try:
    from django_scgi import _greenlocks
except ImportError:
    _greenlocks = None

needs_greenlocks = pytest.mark.skipif(_greenlocks is None, reason="_greenlocks.c not built")
SCENARIOS = str(REPO / "tests" / "greenlock_scenarios.py")
NESTED_ERROR = "cannot release un-acquired lock"
OVER_RELEASE = "Semaphore released too many times"  # gevent's LockType


def run_scenarios(pure_python: bool) -> dict:
    env = {**os.environ, "DJANGO_SCGI_PURE_PYTHON": "1" if pure_python else ""}
    done = subprocess.run(
        [sys.executable, "-m", "django_scgi.launch", "--path", SCENARIOS],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def with_c() -> dict:
    return run_scenarios(pure_python=False)


@pytest.fixture(scope="module")
def with_python() -> dict:
    return run_scenarios(pure_python=True)


@needs_greenlocks
def test_the_launcher_puts_them_in_threading(with_c):
    assert with_c["rlock_type"] == "RLock"
    assert with_c["lock_type"] == "Lock"
    assert with_c["get_ident"] == "django_scgi._greenlocks"


def test_pure_python_keeps_gevents_own(with_python):
    assert with_python["rlock_type"] == "_RLock"  # threading._PyRLock
    assert with_python["lock_type"] == "LockType"  # gevent.thread.LockType
    assert with_python["get_ident"] == "gevent.thread"


@needs_greenlocks
def test_greenlets_see_the_same_with_either(with_c, with_python):
    assert with_c["results"] == with_python["results"]


@pytest.mark.parametrize("pure_python", [False, True], ids=["c", "python"])
def test_what_greenlets_see(pure_python, with_c, with_python):
    results = (with_python if pure_python else with_c)["results"]
    # One greenlet at a time inside, each through both of its nested levels.
    assert results["reentrant and exclusive"] == [
        f"{name} {step}" for name in "abc" for step in ("in", "again", "out")]
    assert results["held by another greenlet"] == {
        "non-blocking": False, "timeout": False, "waited": True, "is_owned": False,
        "release": NESTED_ERROR, "owner is_owned": True, "after release": False,
    }
    handed_over = {"order": ["impatient False", "newcomer True", "b True", "c True"],
                   "free afterwards": True, "overlap": False, "tried in passing": True}
    assert results["handed over"] == results["lock handed over"] == handed_over
    assert results["lock"] == {
        "enter": None, "locked": True, "again, non-blocking": False, "again, timeout": False,
        "released by another greenlet": True, "release unlocked": OVER_RELEASE,
        "bad arguments": ["ValueError", "ValueError", "TypeError"], "event": [True],
        "free after reinit": True}
    errors = results["errors"]
    assert errors["release unowned"] == errors["release_save unowned"] == NESTED_ERROR
    assert errors["bad timeouts"] == ["can't specify a timeout for a non-blocking call"] * 2 + [
        "timeout value must be strictly positive"]
    assert errors["arguments"] == "TypeError"
    assert errors["acquired"] == [True, 1, 1]
    assert errors["releases"] == [True, True, False, "fourth release refused"]
    assert results["condition"] == [
        "waiting", "notifying", "notified True", "owned after wait True", "released True",
        "timed out True"]
    assert results["fork reinit and weakref"] == {"taken after reinit": True,
                                                  "weakref cleared": True}
    assert all(results["idents"].values()), results["idents"]
    assert results["asgiref local"] == {"one": "one", "two": "two", "three": "three"}


def test_left_alone_in_a_process_gevent_did_not_patch():
    # This test process is not monkey-patched: threading keeps its native functions.
    native = threading.get_ident, threading._CRLock, threading.Lock
    assert launch.use_c_greenlet_locks() is False
    assert (threading.get_ident, threading._CRLock, threading.Lock) == native


@needs_greenlocks
def test_get_ident_of_a_given_object():
    marker = object()
    assert _greenlocks.get_ident(marker) == id(marker)
    with pytest.raises(TypeError):
        _greenlocks.get_ident(1, 2)


@needs_greenlocks
@pytest.mark.parametrize("kind", ["RLock", "Lock"])
def test_an_uncontended_lock_leaves_its_gevent_lock_alone(kind):
    # The gevent lock's acquire() costs 2-3.5 k instructions; per request Django takes
    # five RLocks and two Locks, none ever contended. Only a greenlet that must wait
    # takes it; one that only tries (acquire(False)) is answered without it.
    done = subprocess.run([sys.executable, "-c", CHECK_BLOCK, kind], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"taken": False, "tried": False, "contended": True,
                                       "after": False}


CHECK_BLOCK = """
import sys
from django_scgi import launch
launch.patch()
import json, threading, gevent
lock, seen = getattr(threading, sys.argv[1])(), {}
assert type(lock).__module__ == "django_scgi._greenlocks"
lock.acquire()
seen["taken"] = lock._block.locked()
# What Condition._is_owned() does from another greenlet: answered without it.
seen["tried"] = gevent.spawn(lock.acquire, False).get() or lock._block.locked()
def wait():
    with lock:
        pass
waiter = gevent.spawn(wait)
gevent.sleep(0.01)
seen["contended"] = lock._block.locked()
lock.release()
waiter.join()
seen["after"] = lock._block.locked()
print(json.dumps(seen))
"""


@needs_greenlocks
def test_django_takes_them_when_started_as_runscgi_starts(tmp_path):
    # The launcher installs them before Django is imported, so the locks Django makes
    # at import time (its signals') and per request (asgiref's Local) are the C ones.
    script = tmp_path / "check_django_locks.py"
    script.write_text(CHECK_DJANGO)
    done = subprocess.run([sys.executable, "-m", "django_scgi.launch", "--path", str(script)],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "request_started": "Lock", "new signal": "Lock", "asgiref local": ["RLock"]}


CHECK_DJANGO = """
import json
from asgiref.local import Local
from django.core.signals import request_started
from django.dispatch import Signal
print(json.dumps({
    "request_started": type(request_started.lock).__name__,
    "new signal": type(Signal().lock).__name__,
    # Its name changed across asgiref versions (_thread_lock in 3.12, _lock in 3.13).
    "asgiref local": [type(value).__name__ for name, value in vars(Local()).items()
                      if "lock" in name],
}))
"""


@needs_greenlocks
def test_recursion_count_and_locked():
    # _recursion_count() (Python 3.13's RLock) and locked() (3.14's), on every version.
    lock = _greenlocks.RLock()
    assert (lock._recursion_count(), lock.locked()) == (0, False)
    lock.acquire()
    lock.acquire()
    assert (lock._recursion_count(), lock.locked()) == (2, True)
    lock.release()
    lock.release()
    assert (lock._recursion_count(), lock.locked()) == (0, False)
