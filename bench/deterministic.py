"""The figures that do not drift: instructions and system calls per request.

Instructions: the server runs under ``valgrind --tool=callgrind --instr-atstart=no``,
so start-up and warm-up run uninstrumented. Then ``callgrind_control -i on`` switches
instrumentation on, ``-z`` zeroes the counters, ``requests`` sequential direct
requests run, and ``-d`` dumps: the dump holds exactly those requests (user-space
instructions, "Ir"). An idle window of the same kind (counters zeroed, no requests,
dumped) shows what the server burns on its own (timers), for reference. The
in-process baseline (``inprocess.py --handshake``) is measured the same way around its
loop.

System calls: ``strace -c -f`` attached to the server's processes (every thread)
after the warm-up, over ``requests`` sequential requests, detached with SIGINT; the same
again with 32 connections at once, after a warm-up at that concurrency (under load a
server may take several connections per wake-up); plus a plain ``strace -f`` over three
requests whose middle one is kept, to show the sequence.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import measure
import procs
import scgi_load

IR = re.compile(r"^summary:\s+(\d+)", re.M)


# --- callgrind ------------------------------------------------------------------------------


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], capture_output=True, timeout=120, check=False)


def _latest_dump(prefix: Path, pid: int) -> Path | None:
    dumps = []
    for path in prefix.parent.glob(f"{prefix.name}.{pid}.*"):
        suffix = path.name.rsplit(".", 1)[1]
        if suffix.isdigit():
            dumps.append((int(suffix), path))
    return max(dumps)[1] if dumps else None


def _instructions(path: Path | None) -> int | None:
    if path is None:
        return None
    match = IR.search(path.read_text(errors="replace"))
    return int(match.group(1)) if match else None


def _serving_pid(proc: procs.Proc) -> int:
    # gunicorn's worker is the master's child; every other server serves in its root.
    children = procs.children_of(proc.pid)
    return children[-1] if children and proc.name.startswith("gunicorn") else proc.pid


def parse_callgrind(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Exclusive Ir per function and per shared object, read from a callgrind dump.

    Cost lines right after a ``calls=`` line are the callee's inclusive cost and are
    skipped; names may be compressed as ``(id) name`` and later ``(id)``.
    """
    names: dict[str, dict[str, str]] = {"ob": {}, "fn": {}, "fl": {}}
    family = {"ob": "ob", "cob": "ob", "fn": "fn", "cfn": "fn", "cfi": "fl", "cfl": "fl",
              "fl": "fl", "fi": "fl", "fe": "fl"}
    obj, fn = "?", "?"
    by_fn: dict[str, int] = {}
    by_obj: dict[str, int] = {}
    skip_next = False
    with open(path, errors="replace") as stream:
        for line in stream:
            first = line[:1]
            if first.isdigit() or first in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 else 0
                key = f"{fn} [{obj}]"
                by_fn[key] = by_fn.get(key, 0) + cost
                by_obj[obj] = by_obj.get(obj, 0) + cost
            elif line.startswith("calls="):
                skip_next = True
            else:
                key, sep, rest = line.partition("=")
                if not sep or key not in family:
                    continue
                table = names[family[key]]
                rest = rest.strip()
                if rest.startswith("("):
                    ident, _, name = rest.partition(")")
                    name = name.strip()
                    if name:
                        table[ident] = name
                    else:
                        name = table.get(ident, ident)
                else:
                    name = rest
                if key == "ob":
                    obj = Path(name).name
                elif key == "fn":
                    fn = re.sub(r"'\d+$", "", name)
    return by_fn, by_obj


def top_functions(path: Path, limit: int = 150) -> tuple[list[dict], list[dict]]:
    """(functions by exclusive Ir, shared objects by exclusive Ir) from one dump."""
    by_fn, by_obj = parse_callgrind(path)
    merged: dict[str, int] = {}
    for key, cost in by_fn.items():
        merged[key] = merged.get(key, 0) + cost
    top = [{"function": k, "ir": v} for k, v in sorted(merged.items(), key=lambda kv: -kv[1])]
    objects = [{"object": k, "ir": v} for k, v in sorted(by_obj.items(), key=lambda kv: -kv[1])]
    return top[:limit], objects[:12]


# Seconds between two sequential requests (see one_at_a_time): more than a server
# needs after its answer under callgrind (~50 times slower) or strace.
CALLGRIND_GAP = 0.02
STRACE_GAP = 0.002
# Requests at --concurrency before the loaded system-call count (strace_server).
LOADED_WARMUP = 3000


def one_at_a_time(target: measure.Target, count: int, gap: float,
                  path: str = "/") -> scgi_load.LoadResult:
    """``count`` direct requests to ``path``, each ``gap`` seconds after the previous answer.

    Back to back, the next connection may or may not be waiting already when a runscgi
    worker finishes one (then it takes it without a pass of the event loop: a
    follow-up accept), depending on the client's timing, and the instructions per
    request then vary by several k from run to run. Spaced out, every request is
    served from the event loop, as on a server that is not under load; the
    ``--concurrency`` strace count shows the other case.
    """
    if target.protocol == "fastcgi":
        return kept_alive(target, count, gap, path)
    request = target.request(path)
    total = scgi_load.LoadResult()
    for _ in range(count):
        one = scgi_load.run_load(target.address, request, total=1, timeout=60.0)
        total.ok += one.ok
        total.errors += one.errors
        time.sleep(gap)
    return total


def kept_alive(target: measure.Target, count: int, gap: float,
               path: str = "/") -> scgi_load.LoadResult:
    """FastCGI: ``count`` requests to ``path`` on one kept connection (FCGI_KEEP_CONN, as
    nginx's ``fastcgi_keep_conn on`` and Apache's ``enablereuse=on`` send them), each
    ``gap`` seconds after the previous END_REQUEST. The connect happens before the
    first, so what is counted is what a reused connection costs per request. A server
    that closes the connection anyway (uWSGI) gets a new one, as a front-end does."""
    request = target.request(path, keep_conn=True)
    total = scgi_load.LoadResult()
    family, sockaddr = scgi_load.parse_address(target.address)
    sock: socket.socket | None = None
    try:
        for _ in range(count):
            if sock is not None and _closed_by_peer(sock):
                sock.close()
                sock = None
            if sock is None:
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.settimeout(60.0)
                sock.connect(sockaddr)
            ok = _one_kept(sock, request)
            if ok is None:  # closed by the server before this request: a new connection
                sock.close()
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.settimeout(60.0)
                sock.connect(sockaddr)
                ok = _one_kept(sock, request)
            if ok:
                total.ok += 1
            else:
                total.errors += 1
                break
            time.sleep(gap)
    finally:
        if sock is not None:
            sock.close()
    return total


def _closed_by_peer(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(60.0)


def _one_kept(sock: socket.socket, request: bytes) -> bool | None:
    """Whether ``request`` was answered 200; None when the connection turned out to be
    closed before any byte of the answer."""
    try:
        sock.sendall(request)
        data = b""
        while True:
            chunk = sock.recv(65536)
            data += chunk
            stdout, ended = scgi_load.fastcgi_stdout(data)
            if ended or not chunk:
                break
    except (BrokenPipeError, ConnectionResetError):
        return None
    if not data:
        return None
    return ended and scgi_load.parse_status(stdout) == 200


def callgrind_server(server, target_factory, workdir: Path, *, requests: int, warmup: int,
                     env: dict, cwd: Path, cpu: int | None, argv: list[str],
                     port: int, check_local: bool = True, path: str = "/",
                     compare: tuple[str, ...] = (), label: str | None = None) -> dict:
    """Instructions per request to ``path`` (see the module's docstring).

    ``compare``: further paths counted the same way in the same process afterwards
    (``by_path``: k instructions per request of each), e.g. ``/`` beside a database
    view. ``label`` names the dump and log files when one catalog server is measured
    in several set-ups (bench/database.py).
    """
    label = label or server.name
    prefix = workdir / f"callgrind-{label}"
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--trace-children=yes",
                "--vgdb=yes", f"--callgrind-out-file={prefix}.%p", *argv]
    proc = procs.Proc(server.name, valgrind, env=env, cwd=cwd,
                      log_path=workdir / f"callgrind-{label}.log", cpu=cpu,
                      stop_signal=server.stop_signal)
    target = target_factory(proc)
    try:
        if not measure.wait_ready(target, 300.0):
            return {"errors": 1, "log": proc.log_tail()}
        local = measure.local_class(target) if check_local else None
        for each in (path, *compare):
            scgi_load.run_load(target.address, target.request(each), total=warmup,
                               timeout=60.0)
        pid = _serving_pid(proc)
        _control("-i", "on", str(pid))
        for each in (path, *compare):
            scgi_load.run_load(target.address, target.request(each), total=10, timeout=60.0)
        total, result, dump, elapsed = _counted(target, pid, prefix, path, requests)
        # The same length of idle time, to show that timers add next to nothing.
        _control("-z", str(pid))
        time.sleep(min(elapsed, 5.0))
        _control("-d", str(pid))
        idle = _instructions(_latest_dump(prefix, pid))
        by_path = {}
        for each in compare:
            other, done, _, _ = _counted(target, pid, prefix, each, requests)
            ok = done.ok == requests and other is not None
            by_path[each] = round(other / done.ok / 1000, 1) if ok else None
        _control("-i", "off", str(pid))
        top, objects = top_functions(dump) if dump else ([], [])
        ok = result.ok == requests and total is not None
        found = {
            "k_instr_per_req": round(total / result.ok / 1000, 1) if ok else None,
            "instructions": total, "requests": result.ok, "errors": result.errors,
            "idle_k_instr": round(idle / 1000, 1) if idle is not None else None,
            "idle_window_s": round(min(elapsed, 5.0), 2), "local_class": local,
            "top": top, "objects": objects, "dump": str(dump) if dump else None,
        }
        if compare:
            found.update(path=path, by_path=by_path)
        return found
    finally:
        proc.stop()


def _counted(target: measure.Target, pid: int, prefix: Path, path: str,
             requests: int) -> tuple[int | None, scgi_load.LoadResult, Path | None, float]:
    """Counters zeroed, ``requests`` spaced requests to ``path``, dumped: (instructions,
    the requests' result, the dump, seconds the requests took)."""
    _control("-z", str(pid))
    began = time.monotonic()
    result = one_at_a_time(target, requests, CALLGRIND_GAP, path)
    elapsed = time.monotonic() - began
    _control("-d", str(pid))
    dump = _latest_dump(prefix, pid)
    return _instructions(dump), result, dump, elapsed


# The in-process loop's variants: name -> inprocess.py's patching flag.
INPROCESS_VARIANTS = {"inprocess": None, "inprocess-gevent": "--gevent",
                      "inprocess-launcher": "--launcher"}


def callgrind_inprocess(python: Path, workdir: Path, *, name: str, requests: int,
                        env: dict, cwd: Path, cpu: int | None) -> dict:
    prefix = workdir / f"callgrind-{name}"
    argv = [str(python), str(Path(__file__).parent / "inprocess.py"), "--handshake",
            "-n", str(requests), "--warmup", "300"]
    if INPROCESS_VARIANTS[name]:
        argv.append(INPROCESS_VARIANTS[name])
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--vgdb=yes",
                f"--callgrind-out-file={prefix}.%p", *argv]
    log = workdir / f"callgrind-{name}.log"
    proc = procs.Proc(name, valgrind, env=env, cwd=cwd, log_path=log, cpu=cpu,
                      stdin=subprocess.PIPE)
    try:
        if not _wait_line(log, "READY", 300.0, proc):
            return {"errors": 1, "log": proc.log_tail()}
        _control("-i", "on", str(proc.pid))
        _control("-z", str(proc.pid))
        proc.popen.stdin.write(b"GO\n")
        proc.popen.stdin.flush()
        if not _wait_line(log, "DONE", 600.0, proc):
            return {"errors": 1, "log": proc.log_tail()}
        _control("-d", str(proc.pid))
        dump = _latest_dump(prefix, proc.pid)
        total = _instructions(dump)
        top, objects = top_functions(dump) if dump else ([], [])
        proc.popen.stdin.close()
        return {"k_instr_per_req": round(total / requests / 1000, 1) if total else None,
                "instructions": total, "requests": requests, "errors": 0 if total else 1,
                "top": top, "objects": objects, "dump": str(dump) if dump else None}
    finally:
        proc.stop()


def _wait_line(log: Path, word: str, timeout: float, proc: procs.Proc) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.alive():
        try:
            if any(line.strip() == word for line in log.read_text(errors="replace").splitlines()):
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


# --- strace -------------------------------------------------------------------------------


def _wait_traced(pids: list[int], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = []
        for pid in pids:
            try:
                tasks += [f"/proc/{pid}/task/{tid.name}/status"
                          for tid in Path(f"/proc/{pid}/task").iterdir()]
            except OSError:
                pass
        if tasks and all(procs.status_kib_text(path, "TracerPid") not in ("", "0")
                         for path in tasks):
            return True
        time.sleep(0.05)
    return False


def parse_strace_summary(text: str) -> list[dict]:
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5 or not re.match(r"^[\d.]+$", parts[0]):
            continue
        name = parts[-1]
        numbers = parts[:-1]
        calls = int(numbers[3])
        errors = int(numbers[4]) if len(numbers) > 4 else 0
        rows.append({"syscall": name, "calls": calls, "errors": errors})
    return rows


def strace_server(server, target: measure.Target, workdir: Path, *, requests: int,
                  warmup: int, cpu: int | None, concurrency: int = 32) -> dict:
    """System calls per request, one connection at a time and with ``concurrency``."""
    request = target.request("/")
    scgi_load.run_load(target.address, request, total=warmup, timeout=60.0)
    sequential = _strace_count(server, target, workdir, requests=requests, concurrency=1,
                               cpu=cpu)
    if sequential is None:
        return {"errors": 1, "log": "strace did not attach"}
    # FastCGI: the concurrent client opens a connection per request, which is not how
    # the front-ends that keep connections load it; left out rather than misleading.
    loaded: dict = {}
    if target.protocol != "fastcgi":
        # A warm-up at the same concurrency first: what a server adapts to one connection
        # at a time (runscgi's follow-up cool-down, up to 1,023 connections) would
        # otherwise be counted as its cost under load.
        scgi_load.run_load(target.address, request, total=LOADED_WARMUP,
                           concurrency=concurrency, timeout=60.0)
        loaded = _strace_count(server, target, workdir, requests=requests,
                               concurrency=concurrency, cpu=cpu) or {}
    sequence = strace_sequence(server, target, workdir, cpu=cpu)
    return {
        "syscalls_per_req": sequential["per_req"], "requests": sequential["requests"],
        "errors": sequential["errors"], "table": sequential["table"],
        "loaded_concurrency": concurrency, "loaded_syscalls_per_req": loaded.get("per_req"),
        "loaded_table": loaded.get("table"), "sequence": sequence,
    }


def _strace_count(server, target: measure.Target, workdir: Path, *, requests: int,
                  concurrency: int, cpu: int | None) -> dict | None:
    """``strace -c -f`` attached over ``requests`` direct requests, ``concurrency`` at once;
    None when strace could not attach."""
    pids = target.proc.pids()
    out = workdir / f"strace-{server.name}-c{concurrency}.txt"
    attach = [arg for pid in pids for arg in ("-p", str(pid))]
    tracer = procs.Proc("strace", ["strace", "-c", "-f", "-o", str(out), *attach],
                        env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}, cwd=workdir,
                        log_path=workdir / f"strace-{server.name}-c{concurrency}.log", cpu=cpu,
                        stop_signal=signal.SIGINT)
    try:
        if not _wait_traced(pids):
            return None
        if concurrency == 1:
            result = one_at_a_time(target, requests, STRACE_GAP)
        else:
            result = scgi_load.run_load(target.address, target.request("/"), total=requests,
                                        concurrency=concurrency, timeout=60.0)
    finally:
        tracer.stop(timeout=30.0)
    rows = [row for row in parse_strace_summary(out.read_text(errors="replace"))
            if row["syscall"] != "total"]
    total = sum(row["calls"] for row in rows)
    for row in rows:
        row["per_req"] = round(row["calls"] / result.ok, 2) if result.ok else None
    rows.sort(key=lambda row: -row["calls"])
    return {"per_req": round(total / result.ok, 2) if result.ok else None,
            "requests": result.ok, "errors": result.errors, "table": rows}


def strace_sequence(server, target: measure.Target, workdir: Path, *,
                    cpu: int | None) -> list[str]:
    """The system calls of one request, in order (the middle one of three)."""
    pids = target.proc.pids()
    out = workdir / f"strace-seq-{server.name}.txt"
    attach = [arg for pid in pids for arg in ("-p", str(pid))]
    tracer = procs.Proc("strace", ["strace", "-f", "-s", "48", "-o", str(out), *attach],
                        env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}, cwd=workdir,
                        log_path=workdir / f"strace-seq-{server.name}.log", cpu=cpu,
                        stop_signal=signal.SIGINT)
    try:
        if not _wait_traced(pids):
            return []
        scgi_load.run_load(target.address, target.request("/"), total=3, timeout=60.0)
        time.sleep(0.3)
    finally:
        tracer.stop(timeout=30.0)
    lines = [line for line in out.read_text(errors="replace").splitlines()
             if not line.startswith(("strace:", "---"))]
    return middle_request(lines)


def middle_request(lines: list[str]) -> list[str]:
    """Lines from the second successful accept to the third (the whole second request)."""
    starts = [i for i, line in enumerate(lines)
              if re.search(r"\baccept4?\(", line) and not re.search(r"= -1 E", line)
              and "resumed" not in line]
    if len(starts) >= 3:
        chosen = lines[starts[1]:starts[2]]
    elif len(starts) >= 2:
        chosen = lines[starts[1]:]
    else:
        chosen = lines
    return [_short(line) for line in chosen][:80]


def _short(line: str) -> str:
    line = re.sub(r"^\d+\s+", "", line)  # the thread id
    return line if len(line) <= 110 else line[:107] + "..."
