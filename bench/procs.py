"""Processes the benchmark starts: pinned to a core, watched through /proc, stopped by PID.

CPU time is utime + stime of a process and all its descendants (uWSGI and gunicorn
fork), read from ``/proc/PID/stat`` in clock ticks; it covers every thread of each
process. Memory is VmRSS / VmHWM from ``/proc/PID/status``; writing ``5`` to
``/proc/PID/clear_refs`` resets VmHWM (Linux >= 4.0), so the peak of one test is
measured without the peaks of earlier ones.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_list() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    if cpu is None:
        return argv
    return ["taskset", "-c", str(cpu), *argv]


def children_of(pid: int) -> list[int]:
    """Every descendant of ``pid`` (by a scan of /proc, parents before children)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, queue = [], [pid]
    while queue:
        for child in parents.get(queue.pop(0), []):
            found.append(child)
            queue.append(child)
    return found


def tree(pid: int) -> list[int]:
    return [pid, *children_of(pid)]


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / CLOCK_TICKS


def core_ticks(cpu: int) -> tuple[int, int] | None:
    """(busy, all) clock ticks of one CPU so far, from /proc/stat; None if unreadable.

    Busy leaves out idle, iowait and steal (time the hypervisor gave to someone else).
    """
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith(f"cpu{cpu} "):
                ticks = [int(value) for value in line.split()[1:9]]
                return sum(ticks) - ticks[3] - ticks[4] - ticks[7], sum(ticks)
    except (OSError, ValueError):
        pass
    return None


def busy_pct(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round(100 * (after[0] - before[0]) / (after[1] - before[1]), 1)


def status_number(pid: int, key: str) -> int:
    """The number after ``key:`` in /proc/PID/status (kB for the memory keys); 0 if absent."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def sleeps(pids: list[int]) -> int:
    """Voluntary context switches of every thread of ``pids``: how often they slept and
    were woken (``/proc/PID/task/TID/status``)."""
    total = 0
    for pid in pids:
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        total += sum(status_number(int(task.name), "voluntary_ctxt_switches") for task in tasks)
    return total


def rss_kib(pids: list[int]) -> int:
    return sum(status_number(pid, "VmRSS") for pid in pids)


def peak_kib(pids: list[int]) -> int:
    return sum(status_number(pid, "VmHWM") for pid in pids)


def reset_peak(pids: list[int]) -> bool:
    ok = True
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


class Proc:
    """One started process (and the processes it forks), logging to a file."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path,
                 log_path: Path, cpu: int | None, stop_signal: int = signal.SIGTERM,
                 stdin=subprocess.DEVNULL) -> None:
        self.name = name
        self.argv = argv
        self.stop_signal = stop_signal
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(
            pinned(argv, cpu), env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=stdin, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def pids(self) -> list[int]:
        return tree(self.pid) if self.alive() else []

    def cpu(self) -> float:
        return cpu_seconds(self.pids())

    def sleeps(self) -> int:
        return sleeps(self.pids())

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        """Signal the process, wait, then SIGKILL it and its descendants, each by PID."""
        if self.alive():
            family = self.pids()
            try:
                os.kill(self.pid, self.stop_signal)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
            for pid in [*family, self.pid]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                pass
            # Descendants that outlived their parent (re-parented): by PID, as listed.
            for pid in family:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        self._log.close()


def wait_port(port: int, timeout: float, proc: Proc | None = None) -> bool:
    """Wait until something accepts on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            return False
        with socket.socket() as sock:
            sock.settimeout(1.0)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def status_kib_text(status_path: str, key: str) -> str:
    """The raw value of ``key`` in a /proc/.../status file ("" when absent)."""
    try:
        for line in Path(status_path).read_text().splitlines():
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""
