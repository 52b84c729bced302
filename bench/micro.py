"""Micro-benchmark of the per-request pure-Python pieces: parser, environ builder, head.

    .venv/bin/python bench/micro.py               # ns per call (timeit, best of 5)
    .venv/bin/python bench/micro.py --callgrind   # instructions per call (deterministic)
    .venv/bin/python bench/micro.py --callgrind --case parse-apache -n 2000

Cases use the header sets real front-ends send (docs/frontend-variables.rst §2.1): Debian
nginx's ``scgi_params`` and Apache's ``mod_proxy_scgi``, each bare (what the load
generator sends) or with a browser's request headers (cookies, Accept-*).

``--callgrind`` runs this file again under ``valgrind --tool=callgrind
--instr-atstart=no``; the child announces each case, the parent zeroes the counters,
lets the case run N times and dumps them, so each figure is that case's loop alone. The
``noop`` case (calling a function that does nothing) is the loop's own cost and is
subtracted.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BROWSER = [
    ("HTTP_USER_AGENT", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ("HTTP_ACCEPT", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("HTTP_ACCEPT_LANGUAGE", "en-GB,en;q=0.7,de;q=0.3"),
    ("HTTP_ACCEPT_ENCODING", "gzip, deflate, br, zstd"),
    ("HTTP_COOKIE", "csrftoken=4kLqT0dQ9Zr7c1m2n3b4v5c6x7z8a9s0; "
                    "sessionid=q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6"),
    ("HTTP_UPGRADE_INSECURE_REQUESTS", "1"),
    ("HTTP_SEC_FETCH_DEST", "document"),
    ("HTTP_SEC_FETCH_MODE", "navigate"),
]


def nginx_headers(browser: bool) -> list[tuple[str, str]]:
    pairs = [
        ("CONTENT_LENGTH", "0"), ("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/app/some/path?x=1"),
        ("QUERY_STRING", "x=1"), ("CONTENT_TYPE", ""), ("DOCUMENT_URI", "/app/some/path"),
        ("DOCUMENT_ROOT", "/var/www/html"), ("SCGI", "1"), ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"), ("REMOTE_ADDR", "127.0.0.1"), ("REMOTE_PORT", "57224"),
        ("SERVER_PORT", "18081"), ("SERVER_NAME", "localhost"), ("HTTP_HOST", "127.0.0.1"),
    ]
    pairs += BROWSER if browser else [("HTTP_USER_AGENT", "hclient")]
    return [*pairs, ("HTTP_CONNECTION", "close")]


def apache_headers(browser: bool) -> list[tuple[str, str]]:
    pairs = [("CONTENT_LENGTH", "0"), ("SCGI", "1"), ("HTTP_HOST", "127.0.0.1:18080")]
    pairs += BROWSER if browser else [("HTTP_USER_AGENT", "hclient")]
    pairs += [
        ("HTTP_CONNECTION", "close"),
        ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        ("SERVER_SIGNATURE", ""), ("SERVER_SOFTWARE", "Apache/2.4.71 (Debian) OpenSSL/3.0.19"),
        ("SERVER_NAME", "127.0.0.1"), ("SERVER_ADDR", "127.0.0.1"), ("SERVER_PORT", "18080"),
        ("REMOTE_ADDR", "127.0.0.1"), ("DOCUMENT_ROOT", "/var/www/html"),
        ("REQUEST_SCHEME", "http"), ("CONTEXT_PREFIX", ""),
        ("CONTEXT_DOCUMENT_ROOT", "/var/www/html"), ("SERVER_ADMIN", "[no address given]"),
        ("SCRIPT_FILENAME", "proxy:scgi://127.0.0.1:14000/some/path"), ("REMOTE_PORT", "33308"),
        ("SERVER_PROTOCOL", "HTTP/1.1"), ("REQUEST_METHOD", "GET"), ("QUERY_STRING", "x=1"),
        ("REQUEST_URI", "/app/some/path?x=1"), ("SCRIPT_NAME", "/app/some/path"),
    ]
    return pairs


def encode(pairs: list[tuple[str, str]]) -> bytes:
    block = "".join(f"{name}\0{value}\0" for name, value in pairs).encode("latin-1")
    return b"%d:%s," % (len(block), block)


# Django's /hello response: what WSGIHandler passes to start_response.
HELLO_HEADERS = [
    ("Content-Type", "text/plain"), ("Content-Length", "23"),
    ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
]


def make_cases() -> dict:
    from django_scgi import environ as env_mod
    from django_scgi import protocol

    def parse(raw: bytes):
        def run():
            parser = protocol.RequestParser()
            parser.receive_data(raw)
            parser.next_event()
            parser.next_event()
        return run

    def parse_as_server(raw: bytes):
        # What server.py does when the first recv() holds the whole head (the usual
        # case): parse_head, no parser object; a GET needs none for its empty body.
        def run():
            protocol.parse_head(raw, 65536, protocol.DEFAULT_MAX_HEADERS, None)
        return run

    def build(pairs, mount="/app"):
        parser = protocol.RequestParser()
        parser.receive_data(encode(pairs))
        cgi = parser.next_event().environ
        base = env_mod.make_base_environ(errors=sys.stderr)
        body = io.BytesIO(b"")

        def run():
            # build_environ takes its dict over: each call gets a copy (about 1 k
            # instructions of the figure).
            env_mod.build_environ(dict(cgi), body, base, mount_prefix=mount,
                                  peer=("127.0.0.1", 40000))
        return run

    def head():
        env_mod.response_head("200 OK", HELLO_HEADERS)

    def noop():
        pass

    return {
        "noop": noop,
        "parse-nginx": parse(encode(nginx_headers(False))),
        "parse-nginx-browser": parse(encode(nginx_headers(True))),
        "parse-apache-browser": parse(encode(apache_headers(True))),
        "parse-nginx-server": parse_as_server(encode(nginx_headers(False))),
        "environ-nginx": build(nginx_headers(False)),
        "environ-nginx-browser": build(nginx_headers(True)),
        "environ-apache-browser": build(apache_headers(True)),
        # No mount prefix (FORCE_SCRIPT_NAME unset, runscgi's default): the split
        # comes from what the front-end sent.
        "environ-nginx-auto": build(nginx_headers(False), mount=""),
        "environ-apache-browser-auto": build(apache_headers(True), mount=""),
        "response-head": head,
    }


def child(names: list[str], count: int) -> None:
    cases = make_cases()
    for name in names:
        func = cases[name]
        for _ in range(200):
            func()
        print(f"READY {name}", flush=True)
        sys.stdin.readline()
        for _ in range(count):
            func()
        print("DONE", flush=True)
        sys.stdin.readline()


def run_callgrind(names: list[str], count: int) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="scgi-micro-"))
    prefix = workdir / "micro"
    argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--vgdb=yes",
            f"--callgrind-out-file={prefix}.%p", sys.executable, __file__, "--child",
            "-n", str(count), "--case", ",".join(names)]
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, text=True)
    results: dict[str, float] = {}
    control = ["callgrind_control"]
    try:
        instrumented = False
        for _ in names:
            line = proc.stdout.readline().split()
            if not line or line[0] != "READY":
                break
            name = line[1]
            if not instrumented:
                subprocess.run([*control, "-i", "on", str(proc.pid)], capture_output=True)
                instrumented = True
            subprocess.run([*control, "-z", str(proc.pid)], capture_output=True)
            proc.stdin.write("go\n")
            proc.stdin.flush()
            proc.stdout.readline()  # DONE
            subprocess.run([*control, "-d", str(proc.pid)], capture_output=True)
            results[name] = _latest_ir(workdir, proc.pid) / count
            proc.stdin.write("next\n")
            proc.stdin.flush()
    finally:
        proc.stdin.close()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)  # the dumps are read; keep /tmp clean
    return results


def _latest_ir(workdir: Path, pid: int) -> int:
    dumps = sorted(workdir.glob(f"micro.{pid}.*"), key=lambda p: int(p.name.rsplit(".", 1)[1])
                   if p.name.rsplit(".", 1)[1].isdigit() else -1)
    match = re.search(r"^summary:\s+(\d+)", dumps[-1].read_text(errors="replace"), re.M)
    return int(match.group(1)) if match else 0


def run_timeit(names: list[str]) -> dict[str, float]:
    cases = make_cases()
    found = {}
    for name in names:
        timer = timeit.Timer(cases[name])
        number, _ = timer.autorange()
        best = min(timer.repeat(repeat=5, number=number)) / number
        found[name] = best * 1e9
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callgrind", action="store_true", help="instructions per call")
    parser.add_argument("--case", default="", help="comma-separated cases (default: all)")
    parser.add_argument("-n", "--count", type=int, default=1000, help="calls per case (callgrind)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    names = [n for n in args.case.split(",") if n] or list(make_cases())
    if args.child:
        child(names, args.count)
        return 0
    if args.callgrind:
        if "noop" not in names:
            names.insert(0, "noop")
        found = run_callgrind(names, max(1, min(args.count, 100_000)))
        loop = found.get("noop", 0.0)
        print(f"{'case':26} {'instructions/call':>18} {'minus loop':>12}")
        for name, value in found.items():
            print(f"{name:26} {value:18,.0f} {value - loop:12,.0f}")
    else:
        print(f"{'case':26} {'ns/call':>10}")
        for name, value in run_timeit(names).items():
            print(f"{name:26} {value:10,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
