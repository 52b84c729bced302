"""django-scgi's benchmark against flup, uWSGI and gunicorn: ``./dev bench [options]``.

One run measures every selected metric for every selected server, servers interleaved
(each repetition visits them in a rotated order) and reports medians over the
repetitions, plus callgrind instruction counts and strace system call counts, which
need no repetition. See bench/README.rst for what each figure means.

    ./dev bench                     # everything but the null-app figures (about 15 minutes)
    ./dev bench --quick             # timed metrics only, one repetition (about 3 minutes)
    ./dev bench --only deterministic,null   # callgrind + strace, Django and a null app
    ./dev bench --only callgrind --server runscgi
    ./dev bench --only direct,nginx --server runscgi,uwsgi-gevent --reps 5 --duration 10

Writes bench/results/<date>/results.json and results.txt (and bench/results/latest.json);
``python bench/report.py`` turns a results.json into docs/benchmarks.rst.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shlex
import shutil
import signal
import statistics
import sys
import time
import traceback
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import catalog  # noqa: E402
import database  # noqa: E402
import deterministic  # noqa: E402
import frontends  # noqa: E402
import measure  # noqa: E402
import procs  # noqa: E402
import report  # noqa: E402
import setup_env  # noqa: E402

ROOT = BENCH.parent
RESULTS = BENCH / "results"

# Throughput of /json/ (a small JsonResponse) beside that of / (plain text hello).
JSON = ["json_direct", "json_nginx", "json_apache"]
TIMED = ["direct", "nginx", "apache", *JSON, "stream", "download", "upload", "body"]
METRICS = [*TIMED, "sleep", "slowloris", "inprocess", "callgrind", "strace", "callgrind_null",
           "strace_null", "micro", *database.METRICS]
GROUPS = {
    "throughput": ["direct", "nginx", "apache", *JSON],
    "hello": ["direct", "nginx", "apache"],
    "json": JSON,
    "memory": ["download", "upload", "body"],
    "deterministic": ["callgrind", "strace", "callgrind_null", "strace_null", "micro"],
    "null": ["callgrind_null", "strace_null"],
    "database": list(database.METRICS),
    "timed": [*TIMED, "sleep", "slowloris", "inprocess"],
    "hostile": ["slowloris"],
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./dev bench", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="metrics: " + ", ".join(METRICS) + "; groups: "
        + ", ".join(f"{k} ({'+'.join(v)})" for k, v in GROUPS.items())
        + "; servers: " + ", ".join(catalog.SERVERS))
    add = parser.add_argument
    add("--quick", action="store_true",
        help="1 repetition, 2 s runs, no callgrind/strace (unless --only): a quick look")
    add("--only", default="", help="comma-separated metrics or groups to run (default: all)")
    add("--skip", default="", help="comma-separated metrics or groups to leave out")
    add("--server", default="", help="comma-separated servers (default: "
        + ",".join(catalog.DEFAULT_SERVERS) + ")")
    add("--app", choices=["django", "null"], default="django",
        help="serve the demo project (default) or a do-nothing WSGI app (server cost alone)")
    add("--reps", type=int, default=None, help="repetitions of the timed metrics (default 3)")
    add("--duration", type=float, default=None, help="seconds per load run (default 3)")
    add("--warmup", type=float, default=None, help="seconds of warm-up load (default 1)")
    add("--concurrency", type=int, default=32, help="connections for wrk and the direct load")
    add("--big-mib", type=int, default=None, help="streamed response and upload size (1024)")
    add("--body-mib", type=int, default=64, help="request.body size for the body metric")
    add("--sleepers", default="200,5000", help="concurrent /sleep/?s=2 requests per test")
    add("--sleep-reps", type=int, default=1,
        help="repetitions of the sleeping-requests tests (default 1: memory, not timing)")
    add("--dribblers", type=int, default=5000,
        help="slowloris: connections dribbling a header block (default 5000)")
    add("--dribble-interval", type=float, default=0.5,
        help="slowloris: seconds between two bytes on one dribbling connection (0.5)")
    add("--good-requests", type=int, default=200,
        help="slowloris: sequential / requests timed while they dribble (200)")
    add("--callgrind-requests", type=int, default=100,
        help="sequential requests counted per server by callgrind and db_callgrind (100)")
    add("--strace-requests", type=int, default=1000)
    add("--base-port", type=int, default=18400)
    add("--no-install", action="store_true", help="do not apt-get or pip install anything")
    add("--out", default="", help="results directory (default bench/results/<date>)")
    add("--write-docs", action="store_true", help="also regenerate docs/benchmarks.rst")
    args = parser.parse_args(argv)
    quick = args.quick
    args.reps = args.reps or (1 if quick else 3)
    args.duration = args.duration or (2.0 if quick else 3.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if quick else 1.0)
    args.big_mib = args.big_mib or 1024
    default = [m for m in METRICS if m not in GROUPS["null"]]
    if quick:  # a quick look: the timed metrics only, unless --only says otherwise
        default = [m for m in default
                   if m not in GROUPS["deterministic"] and m != "db_callgrind"]
    args.metrics = _expand(args.only) or default
    args.metrics = [m for m in args.metrics if m not in set(_expand(args.skip))]
    args.servers = [s for s in args.server.split(",") if s] or [
        name for name in catalog.DEFAULT_SERVERS
        # with --app null, runscgi itself is the do-nothing app behind the front-ends
        if args.app == "django" or catalog.SERVERS[name].measured]
    for name in args.servers:
        if name not in catalog.SERVERS:
            parser.error(f"unknown server {name!r}; known: {', '.join(catalog.SERVERS)}")
    args.sleeper_counts = [int(n) for n in args.sleepers.split(",") if n]
    return args


def _expand(text: str) -> list[str]:
    found = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        names = GROUPS.get(item, [item])
        for name in names:
            if name not in METRICS:
                raise SystemExit(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
            found.append(name)
    return found


def measured_servers(names: list[str]) -> list[str]:
    return [name for name in names if catalog.SERVERS[name].measured]


# Port offsets of each front-end's listening ports from the backends' (catalog offsets
# stay below 20).
FRONTEND_OFFSETS = (("nginx", 20), ("apache", 40))


def log(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[bench {stamp}] {message}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.records: list[dict] = []
        self.checks: dict[str, str] = {}
        self.frontends: dict[str, frontends.FrontEnd] = {}
        cpus = procs.cpu_list()
        # The server gets one core, everything else (load generators, front-ends) another.
        self.server_cpu = cpus[0] if len(cpus) > 1 else None
        self.load_cpu = cpus[1] if len(cpus) > 1 else None
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.out = Path(args.out) if args.out else RESULTS / stamp
        self.out.mkdir(parents=True, exist_ok=True)
        self.base_env = dict(os.environ)

    # -- setup --

    def setup(self) -> None:
        _raise_nofile()
        install = not self.args.no_install
        self.tools = setup_env.ensure_system_tools(install)
        missing = [tool for tool, path in self.tools.items() if not path]
        if missing:
            log("missing tools (their metrics are skipped): " + ", ".join(missing))
        need_anchors = any(catalog.SERVERS[s].anchor for s in self.args.servers)
        anchors_bin = setup_env.ensure_anchors_venv(install) if need_anchors else None
        self.ctx = catalog.Context(Path(sys.executable).parent,
                                   anchors_bin or setup_env.ANCHORS_VENV / "bin", self.args.app)
        self.env = self.env_for(self.ctx)
        if self.load_cpu is not None:
            os.sched_setaffinity(0, {self.load_cpu})
        self.meta = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": "./dev bench " + shlex.join(sys.argv[1:]),
            "machine": setup_env.machine(),
            "versions": setup_env.versions(anchors_bin, self.tools),
            "options": {k: v for k, v in vars(self.args).items() if k not in ("only", "skip")},
            "server_cpu": self.server_cpu, "load_cpu": self.load_cpu,
            "servers": {name: {"label": catalog.SERVERS[name].label,
                               "notes": catalog.SERVERS[name].notes,
                               "command": self.command_line(name)}
                        for name in self.args.servers},
        }
        self._drop_unavailable()

    def _drop_unavailable(self) -> None:
        needs = {"nginx": "nginx", "apache": "apache2", "json_nginx": "nginx",
                 "json_apache": "apache2", "callgrind": "valgrind",
                 "strace": "strace", "callgrind_null": "valgrind", "strace_null": "strace",
                 "micro": "valgrind", "db_callgrind": "valgrind"}
        for metric, tool in needs.items():
            if metric in self.args.metrics and not self.tools.get(tool):
                log(f"no {tool}: skipping {metric}")
                self.args.metrics.remove(metric)
        if set(database.METRICS) & set(self.args.metrics):
            why = database.available() or (None if self.tools.get("nginx") else "no nginx")
            if why or self.args.app != "django":
                log(f"skipping the database figures: {why or '--app null'}")
                self.args.metrics = [m for m in self.args.metrics if m not in database.METRICS]
        behind = ("nginx", "apache", "json_nginx", "json_apache", *database.METRICS)
        if any(m in self.args.metrics for m in behind) and not self.tools.get("wrk"):
            log("no wrk: skipping the throughput through nginx and apache")
            self.args.metrics = [m for m in self.args.metrics if m not in behind]

    def command_line(self, name: str) -> str:
        """How the server is started, with the settings module that picks the app."""
        server = catalog.SERVERS[name]
        ctx = server.context(self.ctx)
        settings = self.env_for(ctx)["DJANGO_SETTINGS_MODULE"]
        return f"DJANGO_SETTINGS_MODULE={settings} " + shlex.join(server.argv(ctx, self.port(name)))

    def env_for(self, ctx: catalog.Context) -> dict[str, str]:
        return catalog.server_env(self.base_env, ctx, self.out / "bench.sqlite3")

    def port(self, name: str, offset: int = 0) -> int:
        return self.args.base_port + offset + catalog.SERVERS[name].offset

    def frontend_url(self, kind: str, name: str, path: str) -> str:
        """Where front-end ``kind`` serves ``path`` from server ``name``."""
        return f"http://127.0.0.1:{self.port(name, dict(FRONTEND_OFFSETS)[kind])}{path}"

    # -- processes --

    def start_server(self, name: str, *, many: bool = False,
                     extra: list[str] | None = None, env: dict[str, str] | None = None,
                     app_spec: str | None = None) -> measure.Target | None:
        """Start ``name``; ``env`` is added to its environment, ``app_spec`` replaces the
        WSGI application the anchors load (bench/database.py)."""
        server = catalog.SERVERS[name]
        port = self.port(name)
        if not procs.port_free(port):
            raise SystemExit(f"port {port} is busy; choose another --base-port")
        ctx = server.context(self.ctx)
        env = {**(self.env if ctx == self.ctx else self.env_for(ctx)), **(env or {})}
        argv = self.server_argv(name, many=many, extra=extra, app_spec=app_spec)
        proc = procs.Proc(name, argv, env=env, cwd=ROOT,
                          log_path=self.out / "logs" / f"{name}.log", cpu=self.server_cpu,
                          stop_signal=server.stop_signal)
        target = measure.Target(proc, port, server.protocol)
        if not measure.wait_ready(target, server.startup):
            log(f"{name} did not start:\n{proc.log_tail()}")
            proc.stop()
            return None
        self.check_local(name, target)
        return target

    def server_argv(self, name: str, *, many: bool = False, extra: list[str] | None = None,
                    app_spec: str | None = None) -> list[str]:
        """``name``'s command line on its port; ``app_spec`` as in ``start_server``."""
        server = catalog.SERVERS[name]
        ctx = server.context(self.ctx)
        argv = server.argv(ctx, self.port(name), many=many) + list(extra or [])
        if app_spec:
            argv = [app_spec if arg == server.app_spec(ctx) else arg for arg in argv]
        return argv

    def check_local(self, name: str, target: measure.Target) -> None:
        if catalog.SERVERS[name].context(self.ctx).app != "django" or name in self.checks:
            return
        found = measure.local_class(target)
        expected = catalog.SERVERS[name].local
        self.checks[name] = found
        verdict = "ok" if found.startswith(expected) else f"WRONG (expected {expected}*)"
        log(f"{name}: Django's connection local is {found}: {verdict}")

    def start_frontends(self) -> None:
        for kind, offset in FRONTEND_OFFSETS:
            wanted = {kind, f"json_{kind}"} | (set(database.METRICS) if kind == "nginx" else set())
            if not wanted & set(self.args.metrics):
                continue
            routes = [frontends.Route(self.port(name, offset), self.port(name),
                                      catalog.SERVERS[name].protocol)
                      for name in self.args.servers]
            frontend = frontends.FrontEnd(kind, self.out / "frontends", routes, self.load_cpu,
                                          self.base_env)
            if not frontend.wait():
                log(f"{kind} did not start: {frontend.error_log()}")
                frontend.stop()
                self.args.metrics = [m for m in self.args.metrics
                                     if m not in (kind, f"json_{kind}")]
                continue
            self.frontends[kind] = frontend

    def stop_frontends(self) -> None:
        for frontend in self.frontends.values():
            frontend.stop()
        self.frontends.clear()

    # -- measuring --

    def record(self, metric: str, server: str, rep: int, func, *args, **kwargs) -> None:
        try:
            found = func(*args, **kwargs)
        except Exception as error:  # one failed measurement must not end the run
            log(f"{metric} on {server} failed: {error!r}")
            traceback.print_exc()
            found = {"errors": 1, "exception": repr(error)}
        found.update(metric=metric, server=server, rep=rep)
        self.records.append(found)
        log(f"{metric:9} {server:14} rep {rep}: " + _brief(found))

    def timed_phase(self) -> None:
        args = self.args
        per_server = [m for m in TIMED if m in args.metrics]
        servers = list(args.servers)
        for rep in range(args.reps):
            order = servers[rep % len(servers):] + servers[: rep % len(servers)]
            if per_server:
                for name in order:
                    self.one_server(name, rep, per_server)
            if "inprocess" in args.metrics and args.app == "django":
                for gevent in (False, True):
                    label = "inprocess-gevent" if gevent else "inprocess"
                    count = 1000 if args.quick else 3000
                    self.record("inprocess", label, rep, measure.inprocess,
                                self.ctx.main_bin / "python", gevent=gevent, count=count,
                                env=self.env, cwd=ROOT, cpu=self.server_cpu)
            if "sleep" in args.metrics and args.app == "django" and rep < args.sleep_reps:
                for name in order:
                    if (catalog.SERVERS[name].concurrent and catalog.SERVERS[name].measured
                            and catalog.applies(name, "sleep")):
                        for count in args.sleeper_counts:
                            self.sleep_test(name, rep, count)
            if "slowloris" in args.metrics and args.app == "django" and rep < args.sleep_reps:
                for name in order:
                    self.slowloris_test(name, rep)

    def one_server(self, name: str, rep: int, metrics: list[str]) -> None:
        args = self.args
        if not catalog.SERVERS[name].measured:  # the front-ends' ceiling: / through them
            metrics = [m for m in metrics if m in ("nginx", "apache")]
        metrics = [m for m in metrics if catalog.applies(name, m)]
        if not metrics:
            return
        target = self.start_server(name)
        if target is None:
            for metric in metrics:
                self.records.append({"metric": metric, "server": name, "rep": rep,
                                     "errors": 1, "exception": "did not start"})
            return
        try:
            self.throughput(name, rep, metrics, target, "", "/")
            if args.app == "django" and catalog.SERVERS[name].measured:
                self.throughput(name, rep, metrics, target, "json_", "/json/")
                if "stream" in metrics:
                    self.record("stream", name, rep, measure.first_chunk, target)
                if "download" in metrics:
                    self.record("download", name, rep, measure.big_download, target,
                                mib=args.big_mib)
                if "upload" in metrics:
                    self.record("upload", name, rep, measure.big_upload, target,
                                mib=args.big_mib)
                if "body" in metrics:
                    self.record("body", name, rep, measure.request_body, target,
                                mib=args.body_mib)
        finally:
            target.proc.stop()

    def throughput(self, name: str, rep: int, metrics: list[str], target: measure.Target,
                   prefix: str, path: str) -> None:
        """Load ``path`` directly, then through each front-end (metrics ``prefix`` + kind)."""
        args = self.args
        load = {"duration": args.duration, "concurrency": args.concurrency, "warmup": args.warmup}
        if prefix + "direct" in metrics:
            self.record(prefix + "direct", name, rep, measure.direct_load, target, path=path,
                        **load)
        for kind, _ in FRONTEND_OFFSETS:
            if prefix + kind in metrics and kind in self.frontends:
                url = self.frontend_url(kind, name, path)
                self.record(prefix + kind, name, rep, measure.wrk_load, url, target,
                            self.frontends[kind], cpu=self.load_cpu, **load)

    def sleep_test(self, name: str, rep: int, count: int) -> None:
        target = self.start_server(name, many=True)
        if target is None:
            return
        try:
            self.record("sleep", name, rep, measure.sleepers, target, count=count)
        finally:
            target.proc.stop()

    def slowloris_test(self, name: str, rep: int) -> None:
        if not catalog.slowloris_applies(name):
            self.records.append({"metric": "slowloris", "server": name, "rep": rep,
                                 "not_applicable": True})
            return
        extra = catalog.SLOWLORIS_ARGS.get(name, [])
        target = self.start_server(name, many=True, extra=extra)
        if target is None:
            self.records.append({"metric": "slowloris", "server": name, "rep": rep,
                                 "errors": 1, "exception": "did not start"})
            return
        try:
            self.record("slowloris", name, rep, measure.slowloris, target,
                        python=Path(sys.executable), count=self.args.dribblers,
                        interval=self.args.dribble_interval, good=self.args.good_requests)
            self.records[-1]["command"] = shlex.join(target.proc.argv)
        finally:
            target.proc.stop()

    def deterministic_phase(self) -> None:
        """callgrind and strace of the demo project, then of the do-nothing app."""
        args = self.args
        workdir = self.out / "deterministic"
        workdir.mkdir(exist_ok=True)
        if "micro" in args.metrics:
            self.record("micro", "runscgi", 0, run_micro)
        plain = ("callgrind", "strace") if args.app == "django" else (None, None)
        for app, (cg, st) in (("django", plain), ("null", ("callgrind_null", "strace_null"))):
            if not cg:
                continue
            ctx = catalog.Context(self.ctx.main_bin, self.ctx.anchors_bin, app)
            env = self.env_for(ctx)
            appdir = workdir / app
            appdir.mkdir(exist_ok=True)
            if cg in args.metrics:
                self.callgrind_all(cg, ctx, env, appdir)
            if st in args.metrics:
                self.strace_all(st, ctx, env, appdir)

    def callgrind_all(self, metric: str, ctx: catalog.Context, env: dict, workdir: Path) -> None:
        args = self.args
        for name in measured_servers(args.servers):
            server = catalog.SERVERS[name]
            port = self.port(name)

            def factory(proc, port=port, server=server):
                return measure.Target(proc, port, server.protocol)

            self.record(metric, name, 0, deterministic.callgrind_server, server, factory,
                        workdir, requests=args.callgrind_requests, warmup=100, env=env,
                        cwd=ROOT, cpu=self.server_cpu, argv=server.argv(ctx, port), port=port,
                        check_local=ctx.app == "django")
        if ctx.app == "django":
            for label in deterministic.INPROCESS_VARIANTS:
                self.record(metric, label, 0, deterministic.callgrind_inprocess,
                            ctx.main_bin / "python", workdir, name=label,
                            requests=args.callgrind_requests, env=env, cwd=ROOT,
                            cpu=self.server_cpu)

    def strace_all(self, metric: str, ctx: catalog.Context, env: dict, workdir: Path) -> None:
        saved = self.ctx, self.env
        self.ctx, self.env = ctx, env
        try:
            for name in measured_servers(self.args.servers):
                target = self.start_server(name)
                if target is None:
                    continue
                try:
                    self.record(metric, name, 0, deterministic.strace_server,
                                catalog.SERVERS[name], target, workdir,
                                requests=self.args.strace_requests, warmup=200,
                                cpu=self.server_cpu, concurrency=self.args.concurrency)
                finally:
                    target.proc.stop()
        finally:
            self.ctx, self.env = saved

    # -- output --

    def results(self) -> dict:
        return {"meta": self.meta, "checks": self.checks, "records": self.records,
                "summary": summarize(self.records)}

    def write(self) -> Path:
        data = self.results()
        path = self.out / "results.json"
        path.write_text(json.dumps(data, indent=1, default=str))
        (self.out / "results.txt").write_text(report.render_text(data))
        RESULTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, RESULTS / "latest.json")
        return path


def summarize(records: list[dict]) -> dict:
    """Medians over repetitions per (metric, server); lists and tables kept from rep 0."""
    grouped: dict[tuple[str, str, object], list[dict]] = {}
    for record in records:
        key = (record["metric"], record["server"], record.get("count"))
        grouped.setdefault(key, []).append(record)
    summary: dict[str, dict] = {}
    for (metric, server, count), group in grouped.items():
        merged: dict = {"reps": len(group)}
        keys = {key for record in group for key in record}
        for key in sorted(keys - {"metric", "server", "rep"}):
            values = [record[key] for record in group if key in record]
            numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
                       and v is not None]
            if key == "errors":
                merged[key] = sum(numbers)
            elif numbers and len(numbers) == len([v for v in values if v is not None]):
                merged[key] = round(statistics.median(numbers), 3)
                if len(numbers) > 1:
                    merged[key + "_range"] = [min(numbers), max(numbers)]
            else:
                merged[key] = next((v for v in values if v is not None), None)
        place = summary.setdefault(metric, {})
        if metric == "sleep":
            place.setdefault(server, {})[str(count)] = merged
        else:
            place[server] = merged
    return summary


def run_micro() -> dict:
    """bench/micro.py under callgrind: instructions per call, the loop's own subtracted."""
    import micro

    found = micro.run_callgrind(list(micro.make_cases()), 1000)
    loop = found.pop("noop", 0.0)
    return {"cases": {name: round((value - loop) / 1000, 1) for name, value in found.items()},
            "errors": 0 if found else 1}


def _brief(found: dict) -> str:
    keys = ("req_per_s", "p99_ms", "cpu_us_per_req", "k_instr_per_req", "syscalls_per_req",
            "gib_per_s", "rss_growth_mib", "first_chunk_ms", "wall_s", "kib_per_request",
            "ratio", "held", "kib_per_dribbler", "server_cpu_pct", "closed_by_server",
            "errors", "cases", "by_path")
    return ", ".join(f"{k}={found[k]}" for k in keys if found.get(k) is not None)


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 20000 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    if wanted < 12000:
        log(f"RLIMIT_NOFILE hard limit is {hard}: 5,000 sleepers or dribblers may fail "
            "to connect")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    began = time.monotonic()
    # SIGTERM behaves like Ctrl-C: the finally clauses stop every process we started.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        bench.setup()
        log(f"servers: {', '.join(args.servers)}; metrics: {', '.join(args.metrics)}; "
            f"reps {args.reps}, {args.duration:g} s runs; results in {bench.out}")
        bench.start_frontends()
        bench.timed_phase()
        if set(database.METRICS) & set(args.metrics) and "nginx" in bench.frontends:
            database.run_phase(bench, log)
        bench.stop_frontends()
        bench.deterministic_phase()
    except KeyboardInterrupt:
        log("interrupted: writing what was measured")
    finally:
        bench.stop_frontends()
        path = bench.write()
    print(report.render_text(bench.results()))
    log(f"done in {time.monotonic() - began:.0f} s; {path}")
    if args.write_docs:
        report.write_docs(json.loads(path.read_text()))
        log(f"wrote {report.DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
