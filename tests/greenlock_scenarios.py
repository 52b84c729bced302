"""Greenlets using ``threading.RLock``, ``Condition`` and ``get_ident`` in a process
started the way runscgi starts: ``python -m django_scgi.launch --path <this file>``.

Prints one JSON object: what each scenario observed, plus which implementation served
(``rlock_type``). test_greenlocks.py runs it with the C locks (the default) and with
gevent's Python ones (``DJANGO_SCGI_PURE_PYTHON=1``) and compares the two.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import weakref

import gevent
from asgiref.local import Local
from greenlet import getcurrent


def reentrant_and_exclusive() -> list[str]:
    # Each greenlet holds the lock twice over a switch; the other must wait for both
    # releases. A lock that let a second greenlet in would interleave the entries.
    lock, order = threading.RLock(), []

    def worker(name: str) -> None:
        with lock:
            order.append(f"{name} in")
            gevent.sleep(0.01)
            with lock:
                order.append(f"{name} again")
            gevent.sleep(0.01)
            order.append(f"{name} out")

    gevent.joinall([gevent.spawn(worker, name) for name in "abc"])
    return order


def held_by_another_greenlet() -> dict[str, object]:
    lock, seen = threading.RLock(), {}

    def other() -> None:
        seen["non-blocking"] = bool(lock.acquire(blocking=False))
        started = time.monotonic()
        seen["timeout"] = bool(lock.acquire(timeout=0.05))
        seen["waited"] = time.monotonic() - started >= 0.04
        seen["is_owned"] = lock._is_owned()
        try:
            lock.release()
        except RuntimeError as error:
            seen["release"] = str(error)

    lock.acquire()
    gevent.spawn(other).join()
    seen["owner is_owned"] = lock._is_owned()
    lock.release()
    seen["after release"] = lock._is_owned()
    return seen


def handed_over(make_lock) -> dict[str, object]:
    # The owner took the lock with nobody waiting; then others queue up for it. Each
    # release must wake the next in line, a waiter whose timeout has not run out must
    # get it, and a waiter killed or timed out in the queue must not leave it stuck.
    # At no time may two greenlets be inside.
    lock, seen, order, inside = make_lock(), {"overlap": False}, [], []

    def hold(name: str) -> None:
        order.append(f"{name} True")
        inside.append(name)
        seen["overlap"] = seen["overlap"] or len(inside) > 1
        gevent.sleep(0.005)
        inside.remove(name)
        lock.release()

    def queued(name: str, timeout: float = -1) -> None:
        if lock.acquire(timeout=timeout):
            hold(name)
        else:
            order.append(f"{name} False")

    lock.acquire()
    waiters = [gevent.spawn(queued, "b"), gevent.spawn(queued, "c", 2.0),
               gevent.spawn(queued, "impatient", 0.002)]
    doomed = gevent.spawn(queued, "killed")
    gevent.sleep(0.01)
    doomed.kill()
    lock.release()
    # Released, but the first waiter has not run yet: a newcomer may take it (gevent's
    # lock is not fair to newcomers), trying or waiting, and keep it over a switch;
    # b waits for it.
    seen["tried in passing"] = bool(lock.acquire(False))
    if seen["tried in passing"]:
        lock.release()
    if lock.acquire():
        hold("newcomer")
    for waiter in waiters:
        waiter.get()  # raises what a waiter raised
    seen["order"] = order
    seen["free afterwards"] = bool(lock.acquire(blocking=False))
    lock.release()
    return seen


def plain_lock() -> dict[str, object]:
    # threading.Lock: any greenlet may release it, a second acquire() waits (it is not
    # reentrant), and its errors are gevent's.
    lock, seen = threading.Lock(), {}
    seen["enter"] = lock.__enter__()
    seen["locked"] = lock.locked()
    seen["again, non-blocking"] = lock.acquire(False)
    seen["again, timeout"] = lock.acquire(timeout=0.01)
    gevent.spawn(lock.release).join()
    seen["released by another greenlet"] = not lock.locked()
    try:
        lock.release()
    except RuntimeError as error:
        seen["release unlocked"] = str(error)
    for args, kwargs in (((False, 1), {}), ((), {"timeout": -5}), ((1, 2, 3), {})):
        try:
            lock.acquire(*args, **kwargs)
        except (ValueError, TypeError) as error:
            seen.setdefault("bad arguments", []).append(type(error).__name__)
    event, woken = threading.Event(), []
    waiter = gevent.spawn(lambda: woken.append(event.wait(2)))
    gevent.sleep(0.005)
    event.set()
    waiter.join()
    seen["event"] = woken
    lock.acquire()
    lock._at_fork_reinit()
    seen["free after reinit"] = lock.acquire(False)
    return seen


def errors() -> dict[str, object]:
    seen: dict[str, object] = {}
    try:
        threading.RLock().release()
    except RuntimeError as error:
        seen["release unowned"] = str(error)
    try:
        threading.RLock()._release_save()
    except RuntimeError as error:
        seen["release_save unowned"] = str(error)
    for args, kwargs in (((False, 1), {}), ((), {"blocking": False, "timeout": 1}),
                         ((), {"timeout": -5})):
        try:
            threading.RLock().acquire(*args, **kwargs)
        except ValueError as error:
            seen.setdefault("bad timeouts", []).append(str(error))
    try:
        threading.RLock(1)
    except TypeError:
        seen["arguments"] = "TypeError"
    lock = threading.RLock()
    # The first acquire() answers what gevent's lock answers, a nested one 1.
    seen["acquired"] = [lock.acquire(blocking=False), lock.acquire(), lock.acquire(True, 1)]
    # Three levels: owned until the third release, and a fourth is an error.
    owned = []
    for _ in range(3):
        lock.release()
        owned.append(lock._is_owned())
    try:
        lock.release()
    except RuntimeError:
        owned.append("fourth release refused")
    seen["releases"] = owned
    return seen


def condition() -> list[str]:
    # Condition over an RLock taken twice: wait() must give up both levels and get
    # them back, else the notifier could never enter.
    cond, events = threading.Condition(threading.RLock()), []

    def waiter() -> None:
        with cond:
            with cond:  # noqa: SIM117 -- two levels on purpose
                events.append("waiting")
                events.append(f"notified {cond.wait(2)}")
                events.append(f"owned after wait {cond._is_owned()}")
        events.append(f"released {not cond._is_owned()}")

    def notifier() -> None:
        with cond:
            events.append("notifying")
            cond.notify()

    gevent.joinall([gevent.spawn(waiter), gevent.spawn(notifier)])
    with cond:
        events.append(f"timed out {not cond.wait(0.02)}")
    return events


def fork_reinit_and_weakref() -> dict[str, object]:
    lock = threading.RLock()
    lock.acquire()
    lock.acquire()
    lock._at_fork_reinit()
    # After _at_fork_reinit() nothing owns it: a new greenlet takes it at once.
    taken = gevent.spawn(lambda: lock.acquire(blocking=False)).get()
    reference = weakref.ref(threading.RLock())
    return {"taken after reinit": bool(taken), "weakref cleared": reference() is None}


def idents() -> dict[str, object]:
    def ident_pair() -> tuple[bool, int]:
        gevent.sleep(0.01)  # all three alive at once: their ids cannot be reused
        return threading.get_ident() == id(getcurrent()), threading.get_ident()

    greenlets = [gevent.spawn(ident_pair) for _ in range(3)]
    pairs = [greenlet.get() for greenlet in greenlets]
    greenlet = gevent.spawn(lambda: None)
    return {
        "matches id(getcurrent())": all(match for match, _ in pairs),
        "distinct per greenlet": len({ident for _, ident in pairs}) == 3,
        "of a given greenlet": threading.get_ident(greenlet) == id(greenlet),
        "current_thread by ident": threading.current_thread() is threading.main_thread(),
    }


def asgiref_local() -> dict[str, str]:
    # What Django keeps per request in asgiref Locals (URLconf, script prefix): each
    # greenlet sees its own value across switches.
    local, seen = Local(), {}

    def request(name: str) -> None:
        local.value = name
        gevent.sleep(0.01)
        seen[name] = local.value
        del local.value

    gevent.joinall([gevent.spawn(request, name) for name in ("one", "two", "three")])
    return seen


def main() -> None:
    results = {
        "reentrant and exclusive": reentrant_and_exclusive(),
        "held by another greenlet": held_by_another_greenlet(),
        "handed over": handed_over(threading.RLock),
        "lock handed over": handed_over(threading.Lock),
        "lock": plain_lock(),
        "errors": errors(),
        "condition": condition(),
        "fork reinit and weakref": fork_reinit_and_weakref(),
        "idents": idents(),
        "asgiref local": asgiref_local(),
    }
    json.dump({"rlock_type": type(threading.RLock()).__name__,
               "lock_type": type(threading.Lock()).__name__,
               "get_ident": threading.get_ident.__module__ or "",
               "pure_python": bool(os.environ.get("DJANGO_SCGI_PURE_PYTHON")),
               "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
