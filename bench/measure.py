"""The timed measurements: each function measures one thing once and returns a dict.

``bench/run.py`` calls them with servers interleaved and takes medians over the
repetitions. Server CPU per request is the CPU time of the server's process tree over
the measured window divided by the requests completed in it; it does not care much
whether the machine is noisy, unlike requests/s.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import procs
import scgi_load

MiB = 1024 * 1024
GiB = 1024 * MiB


class Target:
    """Where a measurement sends its load and whose CPU it counts."""

    def __init__(self, server_proc: procs.Proc, port: int, protocol: str) -> None:
        self.proc = server_proc
        self.port = port
        self.protocol = protocol

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def request(self, path: str, **kwargs) -> bytes:
        return scgi_load.make_request(self.protocol, path, **kwargs)


# --- readiness and correctness --------------------------------------------------------------


def fetch(target: Target, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
    """Status and body of one request (bodies of a few KiB at most)."""
    import socket

    family, sockaddr = scgi_load.parse_address(target.address)
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(sockaddr)
        sock.sendall(target.request(path))
        chunks, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    response = b"".join(chunks)
    if target.protocol == "fastcgi":
        response = scgi_load.fastcgi_stdout(response)[0]
    return scgi_load.parse_status(response), response.partition(b"\r\n\r\n")[2]


def wait_ready(target: Target, timeout: float) -> bool:
    """The port accepts and ``/`` answers 200 (gunicorn binds before its worker is up)."""
    deadline = time.monotonic() + timeout
    if not procs.wait_port(target.port, timeout, target.proc):
        return False
    while time.monotonic() < deadline and target.proc.alive():
        try:
            if fetch(target, "/", timeout=max(1.0, deadline - time.monotonic()))[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def local_class(target: Target) -> str:
    """The class of Django's connection-holding local, as the /db/ view reports it."""
    try:
        status, body = fetch(target, "/db/?sleep=0")
        if status != 200:
            return f"(status {status})"
        return json.loads(body)["local_class"]
    except (OSError, ValueError, KeyError) as error:
        return f"({error})"


# --- throughput ---------------------------------------------------------------------------


def direct_load(target: Target, *, duration: float, concurrency: int, warmup: float,
                path: str = "/") -> dict:
    request = target.request(path)
    if warmup:
        scgi_load.run_load(target.address, request, concurrency=concurrency, duration=warmup)
    cpu0 = target.proc.cpu()
    result = scgi_load.run_load(target.address, request, concurrency=concurrency,
                                duration=duration, timeout=30.0)
    cpu = target.proc.cpu() - cpu0
    summary = result.summary()
    return {
        "req_per_s": summary["req_per_s"], "p50_ms": summary["p50_ms"],
        "p99_ms": summary["p99_ms"], "errors": summary["errors"],
        "error_kinds": summary["error_kinds"], "requests": result.ok,
        "cpu_us_per_req": round(cpu / result.ok * 1e6, 1) if result.ok else None,
    }


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _wrk_ms(text: str) -> float | None:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    return float(match.group(1)) * _WRK_UNITS[match.group(2)] if match else None


def parse_wrk(output: str) -> dict:
    found: dict = {"errors": 0}
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        match = re.search(rf"^\s+{pct}%\s+(\S+)", output, re.M)
        found[key] = _wrk_ms(match.group(1)) if match else None
    match = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    found["requests"] = int(match.group(1)) if match else 0
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    found["req_per_s"] = float(match.group(1)) if match else 0.0
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                      output)
    if match:
        found["errors"] += sum(int(n) for n in match.groups())
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if match:
        found["errors"] += int(match.group(1))
    return found


def wrk_load(url: str, target: Target, frontend, *, duration: float, concurrency: int,
             warmup: float, cpu: int | None) -> dict:
    def wrk(seconds: float) -> str:
        argv = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency",
                "--timeout", "10s", url]
        done = subprocess.run(procs.pinned(argv, cpu), capture_output=True, text=True,
                              timeout=seconds + 60)
        return done.stdout + done.stderr

    if warmup:
        wrk(warmup)
    cpu0, fe0, fe_sleeps0 = target.proc.cpu(), frontend.cpu(), frontend.sleeps()
    core0 = procs.core_ticks(cpu) if cpu is not None else None
    output = wrk(duration)
    cpu_s, fe_cpu = target.proc.cpu() - cpu0, frontend.cpu() - fe0
    fe_sleeps = frontend.sleeps() - fe_sleeps0
    # How busy the core of the front-end and wrk was: near 100 %, they, not the server,
    # set the pace, and the req/s is a ceiling of this set-up.
    load_core_busy = procs.busy_pct(core0, procs.core_ticks(cpu) if cpu is not None else None)
    found = parse_wrk(output)
    done = found["requests"]
    found["cpu_us_per_req"] = round(cpu_s / done * 1e6, 1) if done else None
    found["frontend_cpu_us_per_req"] = round(fe_cpu / done * 1e6, 1) if done else None
    # Each time the front-end's threads slept and were woken again: the wake-ups a
    # server's way of answering costs the front-end, a count that no slow spell of the
    # machine changes much.
    found["frontend_wakeups_per_req"] = round(fe_sleeps / done, 2) if done else None
    found["load_core_busy_pct"] = load_core_busy
    if not done:  # nothing answered (a closed port, say): an error, not a clean 0 req/s
        found["errors"] = max(found["errors"], 1)
        found["wrk_output"] = output[-800:]
    return found


# --- streaming, big bodies ------------------------------------------------------------------


def first_chunk(target: Target, *, count: int = 5) -> dict:
    """Time from connect to the first body byte of /stream/ (chunks 0.2 s apart)."""
    result = scgi_load.run_load(target.address, target.request("/stream/?n=2&delay=0.2"),
                                total=count, timeout=30.0)
    return {"first_chunk_ms": result.summary()["first_body_ms"], "errors": result.errors}


def _memory_window(target: Target) -> tuple[list[int], int, bool]:
    pids = target.proc.pids()
    before = procs.rss_kib(pids)
    return pids, before, procs.reset_peak(pids)


def _growth_mib(pids: list[int], before: int, reset: bool) -> float | None:
    if not reset:
        return None
    return round((procs.peak_kib(pids) - before) / 1024, 2)


def big_download(target: Target, *, mib: int) -> dict:
    pids, before, reset = _memory_window(target)
    cpu0 = target.proc.cpu()
    result = scgi_load.download(target.address, target.request(f"/big/?mb={mib}"),
                                timeout=300.0)
    cpu = target.proc.cpu() - cpu0
    ok = result["status"] == 200 and result["bytes"] == mib * MiB
    return {
        "gib_per_s": round(result["bytes"] / GiB / result["wall_s"], 3) if ok else None,
        "rss_growth_mib": _growth_mib(pids, before, reset), "cpu_s": round(cpu, 2),
        "errors": 0 if ok else 1, "status": result["status"], "bytes": result["bytes"],
    }


def big_upload(target: Target, *, mib: int) -> dict:
    size = mib * MiB
    head = target.request("/upload/", method="POST", body_length=size,
                          content_type="application/octet-stream")
    pids, before, reset = _memory_window(target)
    cpu0 = target.proc.cpu()
    result = scgi_load.upload(target.address, head, size, timeout=300.0)
    cpu = target.proc.cpu() - cpu0
    try:
        ok = result["status"] == 200 and json.loads(result["body"])["bytes"] == size
    except (ValueError, KeyError):
        ok = False
    return {
        "gib_per_s": round(size / GiB / result["wall_s"], 3) if ok else None,
        "rss_growth_mib": _growth_mib(pids, before, reset), "cpu_s": round(cpu, 2),
        "errors": 0 if ok else 1, "status": result["status"],
    }


def request_body(target: Target, *, mib: int) -> dict:
    """POST /echo/ of N bytes: the view reads ``request.body`` and sends it back.

    The RSS growth over N is what holding ``request.body`` costs (1.0 = the bytes
    themselves, 2.0 = a second copy at some point), the echoed response included.
    """
    size = mib * MiB
    head = target.request("/echo/", method="POST", body_length=size,
                          content_type="application/octet-stream")
    pids, before, reset = _memory_window(target)
    result = scgi_load.upload(target.address, head, size, timeout=300.0, keep=0)
    growth = _growth_mib(pids, before, reset)
    ok = result["status"] == 200 and result["received"] >= size
    return {
        "rss_growth_mib": growth, "ratio": round(growth / mib, 2) if growth is not None else None,
        "errors": 0 if ok else 1, "status": result["status"],
    }


# --- many sleeping requests -----------------------------------------------------------------


def sleepers(target: Target, *, count: int, seconds: float = 2.0) -> dict:
    """``count`` concurrent /sleep/ requests at once: wall time and memory per open request."""
    scgi_load.run_load(target.address, target.request("/sleep/?s=0"), concurrency=20,
                       total=100, timeout=30.0)
    pids, before, reset = _memory_window(target)
    cpu0 = target.proc.cpu()
    result = scgi_load.run_load(target.address, target.request(f"/sleep/?s={seconds:g}"),
                                concurrency=count, total=count, timeout=seconds + 30.0)
    cpu = target.proc.cpu() - cpu0
    growth = _growth_mib(pids, before, reset)
    return {
        "count": count, "completed": result.ok, "errors": result.errors,
        "error_kinds": dict(result.error_kinds), "wall_s": round(result.wall, 3),
        "p50_s": round(result.summary()["p50_ms"] / 1000, 3) if result.ok else None,
        "max_s": round(result.summary()["max_ms"] / 1000, 3) if result.ok else None,
        "rss_growth_mib": growth, "cpu_s": round(cpu, 2),
        "kib_per_request": round(growth * 1024 / count, 1) if growth is not None else None,
    }


# --- slow peers (slowloris) ----------------------------------------------------------------


def open_fds(pids: list[int]) -> int:
    """File descriptors the server's process tree holds (its sockets among them)."""
    total = 0
    for pid in pids:
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    return total


def _good_requests(target: Target, count: int, gap: float = 0.025) -> dict:
    """``count`` sequential ``/`` requests, one connection each, ``gap`` s apart (so they
    land at every phase of the dribblers' schedule): latency, errors, server CPU share."""
    import socket

    family, sockaddr = scgi_load.parse_address(target.address)
    request = target.request("/")
    latencies, errors = [], {}
    cpu0, began = target.proc.cpu(), time.monotonic()
    for done in range(count):
        if time.monotonic() - began > 25.0:  # bounded: the dribblers stop at 45 s anyway
            errors["not sent (25 s bound)"] = count - done
            break
        started = time.perf_counter()
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(5.0)
                sock.connect(sockaddr)
                sock.sendall(request)
                head = b""
                while chunk := sock.recv(65536):
                    head = (head + chunk)[:4096]
            status = scgi_load.parse_status(head)
            kind = None if status == 200 else f"status {status}"
        except OSError as error:
            kind = type(error).__name__
        if kind is None:
            latencies.append(time.perf_counter() - started)
        else:
            errors[kind] = errors.get(kind, 0) + 1
        time.sleep(gap)
    window = time.monotonic() - began
    cpu = target.proc.cpu() - cpu0
    lat = sorted(latencies)

    def pct(p: float):
        return round(scgi_load._percentile(lat, p) * 1000, 3) if lat else None

    return {"p50_ms": pct(50), "p99_ms": pct(99),
            "max_ms": round(lat[-1] * 1000, 3) if lat else None, "ok": len(lat),
            "errors": sum(errors.values()), "error_kinds": errors,
            "cpu_pct": round(cpu / window * 100, 1), "window_s": round(window, 2)}


def slowloris(target: Target, *, python: Path, count: int, interval: float,
              good: int) -> dict:
    """``count`` connections dribbling a valid header block, one byte each every
    ``interval`` s (``bench/slowloris.py``, another process); meanwhile ``good``
    sequential ``/`` requests 25 ms apart. Also measured: the same requests before the
    dribblers (idle), the server's peak RSS growth per dribbling connection it holds and
    its CPU share while they dribble.
    """
    idle = _good_requests(target, good)  # warm-up and the idle baseline
    pids, before, reset = _memory_window(target)
    fds_before = open_fds(pids)
    argv = [str(python), str(Path(__file__).parent / "slowloris.py"), target.address,
            "-n", str(count), "--interval", f"{interval:g}", "--duration", "45",
            "--ready-timeout", "20", "--stop-on-stdin"]
    # Its own session, stopped by its PID; it inherits the bench's RLIMIT_NOFILE and CPU.
    dribbler = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
    found: dict = {"dribblers": count, "interval_s": interval, "good_requests": good,
                   "idle_p50_ms": idle["p50_ms"], "idle_p99_ms": idle["p99_ms"],
                   "idle_errors": idle["errors"], "idle_cpu_pct": idle["cpu_pct"]}
    try:
        ready_line = _read_line(dribbler, timeout=30.0)
        ready = json.loads(ready_line) if ready_line else {}
        found["ready"] = ready
        # The server holds them: one descriptor per dribbling connection, accepted.
        deadline = time.monotonic() + 10.0
        held = open_fds(pids) - fds_before
        while held < count and time.monotonic() < deadline and target.proc.alive():
            time.sleep(0.2)
            held = open_fds(pids) - fds_before
        found["held"] = held
        busy = _good_requests(target, good)
        found["held_after"] = open_fds(pids) - fds_before
        found.update(p50_ms=busy["p50_ms"], p99_ms=busy["p99_ms"], max_ms=busy["max_ms"],
                     ok=busy["ok"], errors=busy["errors"], error_kinds=busy["error_kinds"],
                     server_cpu_pct=busy["cpu_pct"], window_s=busy["window_s"])
        growth = _growth_mib(pids, before, reset)
        found["rss_growth_mib"] = growth
        found["kib_per_dribbler"] = (round(growth * 1024 / held, 1)
                                     if growth is not None and held > 0 else None)
    finally:
        summary = _stop_dribbler(dribbler)
    found["dribbler"] = summary
    found["closed_by_server"] = summary.get("closed_by_server")
    # The dribblers are gone: the server answers again at once.
    after = _good_requests(target, 5, gap=0.0)
    found["after_errors"] = after["errors"]
    if not ready.get("ready") or summary.get("closed_by_server"):
        found["note"] = "not every dribbler stayed connected through the window"
    return found


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if selector.select(timeout):
            return proc.stdout.readline().strip()
    return ""


def _stop_dribbler(proc: subprocess.Popen) -> dict:
    """Ask it to stop (a line on stdin), read its summary; SIGKILL by PID if it lingers."""
    try:
        out, err = proc.communicate("stop\n", timeout=15.0)
    except (subprocess.TimeoutExpired, OSError, ValueError):
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate(timeout=5.0)
    lines = [line for line in (out or "").splitlines() if line.startswith("{")]
    try:
        return json.loads(lines[-1]) if lines else {"error": (err or "")[-500:]}
    except ValueError:
        return {"error": lines[-1][:500]}


# --- in-process ceiling ---------------------------------------------------------------------


def inprocess(python: Path, *, gevent: bool, count: int, env: dict, cwd: Path,
              cpu: int | None) -> dict:
    argv = [str(python), str(Path(__file__).parent / "inprocess.py"), "-n", str(count)]
    if gevent:
        argv.append("--gevent")
    done = subprocess.run(procs.pinned(argv, cpu), capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)
    try:
        found = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        print(done.stderr[-2000:], file=sys.stderr)
        return {"errors": 1}
    found["cpu_us_per_req"] = round(found["cpu_us_per_req"], 1)
    found["req_per_s"] = round(found["req_per_s"], 1)
    found["errors"] = 0
    return found
