"""Views of the demo project; the test suite and the benchmark drive each one."""

import hashlib
import os
import time

from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import connection, connections
from django.db.backends.signals import connection_created
from django.http import (
    FileResponse,
    Http404,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

READ_SIZE = 64 * 1024


def _number(request, name, default):
    try:
        return type(default)(request.GET.get(name, default))
    except ValueError:
        return default


def hello(request):
    return HttpResponse("Hello from django-scgi\n", content_type="text/plain")


def small_json(request):
    return JsonResponse({"message": "hello", "items": [1, 2, 3], "ok": True})


def stream(request):
    """``n`` chunks, ``delay`` seconds apart, each stamped with when it was made."""
    count, delay = _number(request, "n", 3), _number(request, "delay", 0.5)

    def chunks():
        for index in range(count):
            if index:
                time.sleep(delay)
            yield f"chunk {index} at {time.time():.3f}\n".encode()

    response = StreamingHttpResponse(chunks(), content_type="text/plain")
    # Each chunk is meant to reach the client as it is made: nginx is asked not to
    # buffer (runscgi does that by itself only for text/event-stream).
    response["X-Accel-Buffering"] = "no"
    return response


def events(request):
    """``n`` server-sent events, ``delay`` seconds apart."""
    count, delay = _number(request, "n", 3), _number(request, "delay", 0.5)

    def chunks():
        for index in range(count):
            if index:
                time.sleep(delay)
            yield f"data: event {index} at {time.time():.3f}\n\n".encode()

    return StreamingHttpResponse(chunks(), content_type="text/event-stream")


def status_header(request):
    """A 200 whose application sets a CGI ``Status:`` header (it must not win)."""
    response = HttpResponse("the real status is 200\n", content_type="text/plain")
    response["Status"] = request.GET.get("claim", "302 Found")
    response["Location"] = "/elsewhere/"
    return response


def stream_error(request):
    """Fails after the first chunk, i.e. after the response head went out."""

    def chunks():
        yield b"first chunk\n"
        raise RuntimeError("stream broke after the first chunk")

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def big(request):
    """``mb`` MiB of streamed bytes, in 64 KiB chunks, never held in memory at once."""
    total = _number(request, "mb", 1) * 1024 * 1024
    block = b"x" * READ_SIZE

    def chunks():
        sent = 0
        while sent < total:
            piece = block[: total - sent]
            sent += len(piece)
            yield piece

    response = StreamingHttpResponse(chunks(), content_type="application/octet-stream")
    response["Content-Length"] = str(total)
    return response


@csrf_exempt
def upload(request):
    """Hashes the body while reading it in pieces: the body is never held whole."""
    digest, size = hashlib.sha256(), 0
    while chunk := request.read(READ_SIZE):
        digest.update(chunk)
        size += len(chunk)
    return JsonResponse({"bytes": size, "sha256": digest.hexdigest()})


@csrf_exempt
def echo(request):
    return HttpResponse(request.body, content_type=request.content_type or "text/plain")


def db(request):
    """Holds a DB connection for ``sleep`` seconds; reports which connection it was."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
        time.sleep(_number(request, "sleep", 0.2))
    return JsonResponse({
        "connection": id(connection.connection),
        # The storage behind Django's per-thread connections: gevent's local when
        # gevent patched threading before Django loaded, the thread's local otherwise.
        "local_class": _class_name(connections._connections._storage),
        "pid": os.getpid(),
    })


def _class_name(value):
    return f"{type(value).__module__}.{type(value).__qualname__}"


def connection_requests(request):
    """How many requests the server has taken on this request's connection, this one
    included (FastCGI keeps connections open; SCGI: always absent)."""
    count = request.META.get("django_scgi.requests_on_connection")
    return JsonResponse({"requests_on_connection": count})


AUTHZ_COOKIE, AUTHZ_SALT = "files-user", "testproject.authorize"


def authz_login(request):
    """Sets the signed cookie that ``authorize`` accepts (a stand-in for a login)."""
    response = HttpResponse("logged in\n", content_type="text/plain")
    response.set_signed_cookie(AUTHZ_COOKIE, request.GET.get("user", "alice"), salt=AUTHZ_SALT)
    return response


def authorize(request, name=""):
    """A FastCGI AUTHORIZER for Apache mod_authnz_fcgi (docs/fastcgi.rst): 200 lets
    Apache serve the file it guards, naming the user; 403 refuses it."""
    user = request.get_signed_cookie(AUTHZ_COOKIE, default=None, salt=AUTHZ_SALT)
    if user is None or request.META.get("FCGI_ROLE") != "AUTHORIZER":
        return HttpResponse("Not allowed.\n", status=403, content_type="text/plain")
    response = HttpResponse(status=200)
    response["Variable-REMOTE_USER"] = user
    return response


def wsgi_errors(request):
    """Writes a line to wsgi.errors (FastCGI: a STDERR record the front-end logs)."""
    request.META["wsgi.errors"].write("testproject: a line for wsgi.errors\n")
    return HttpResponse("logged\n", content_type="text/plain")


def sleep(request):
    time.sleep(_number(request, "s", 0.5))
    return HttpResponse("slept\n", content_type="text/plain")


class _SlowCleanupResponse(HttpResponse):
    """A response whose close() (the server calls it once the response is sent) is slow."""

    def __init__(self, *args, cleanup_seconds: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.cleanup_seconds = cleanup_seconds

    def close(self):
        try:
            super().close()  # request_finished: counted in STATS
        finally:
            time.sleep(self.cleanup_seconds)


def slow_cleanup(request):
    """Answers at once; closing the response then takes ``s`` seconds (cleanup work)."""
    return _SlowCleanupResponse("answered\n", content_type="text/plain",
                                cleanup_seconds=_number(request, "s", 1.0))


def info(request, rest=""):
    """What Django made of the request: paths, scheme, host, cookies, auth."""
    return JsonResponse({
        "path": request.path,
        "path_info": request.path_info,
        "script_name": request.META.get("SCRIPT_NAME"),
        "full_path": request.get_full_path(),
        "reverse": reverse("info"),
        "is_secure": request.is_secure(),
        "host": request.get_host(),
        "method": request.method,
        "query": dict(request.GET.lists()),
        "cookies": request.COOKIES,
        "authorization": request.META.get("HTTP_AUTHORIZATION"),
        "remote_addr": request.META.get("REMOTE_ADDR"),
        "url_scheme": request.META.get("wsgi.url_scheme"),
        "content_length": request.META.get("CONTENT_LENGTH"),
    })


def error(request):
    raise RuntimeError("this view fails on purpose")


def redirect_home(request):
    return HttpResponseRedirect(reverse("hello"))


def cookies(request):
    response = HttpResponse("cookies set\n", content_type="text/plain")
    response.set_cookie("first", "1")
    response.set_cookie("second", "2")
    response.set_cookie("third", "3")
    return response


def _protected_file(request):
    name = os.path.basename(request.GET.get("name", "sample.txt"))
    path = os.path.join(settings.PROTECTED_FILES_DIR, name)
    if not os.path.isfile(path):
        raise Http404("no such file")
    return name, path


def file(request):
    """A FileResponse: the server sends it with os.sendfile via wsgi.file_wrapper."""
    _, path = _protected_file(request)
    return FileResponse(open(path, "rb"), content_type="text/plain")


def offload(request):
    """Hands the file to the front-end instead of sending it (``via`` = header kind)."""
    from django_scgi.offload import offload_response

    name, path = _protected_file(request)
    return offload_response(path, via=request.GET.get("via", "x-sendfile"),
                            uri=f"/protected/{name}", content_type="text/plain",
                            request=request)


def careless_offload(request):
    """Offloads whatever path the client names: django_scgi.offload must confine it."""
    from django_scgi.offload import offload_response

    path = request.GET["path"]
    return offload_response(path, via=request.GET.get("via", "x-sendfile"),
                            uri="/protected/" + os.path.basename(path),
                            content_type="text/plain", request=request)


# --- instrumentation for the leak and secrets tests (tests/test_leaks.py, test_secrets.py) ---
# Counters over the whole process, read through /stats/. A DB connection is "open" from
# connection_created until its wrapper's ``connection`` is None again (Django closes it
# on request_finished). Open wrappers are held here, so one that nobody closed stays
# visible (and its file stays open) instead of being quietly collected with its greenlet.

STATS = {"request_started": 0, "request_finished": 0, "streams_closed": 0}
_open_db_wrappers = {}


def _on_request_started(sender, **kwargs):
    STATS["request_started"] += 1


def _on_request_finished(sender, **kwargs):
    STATS["request_finished"] += 1
    _forget_closed_wrappers()


def _on_connection_created(sender, connection, **kwargs):
    _open_db_wrappers[id(connection)] = connection


def _forget_closed_wrappers():
    for key, wrapper in list(_open_db_wrappers.items()):
        if wrapper.connection is None:
            del _open_db_wrappers[key]


request_started.connect(_on_request_started, dispatch_uid="testproject-stats-started")
request_finished.connect(_on_request_finished, dispatch_uid="testproject-stats-finished")
connection_created.connect(_on_connection_created, dispatch_uid="testproject-stats-db")


def stats(request):
    """The counters above; the request asking is counted as started, not yet finished."""
    _forget_closed_wrappers()
    return JsonResponse({**STATS, "db_open": len(_open_db_wrappers)})


def _touch_db():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


@csrf_exempt
def db_upload(request):
    """Opens a DB connection, then reads the body in pieces (a peer may vanish meanwhile)."""
    _touch_db()
    size = 0
    while chunk := request.read(READ_SIZE):
        size += len(chunk)
    return JsonResponse({"bytes": size})


def db_big(request):
    """Opens a DB connection, then streams ``mb`` MiB; counts the stream being closed."""
    _touch_db()
    total = _number(request, "mb", 1) * 1024 * 1024
    block = b"y" * READ_SIZE

    def chunks():
        try:
            for _ in range(0, total, READ_SIZE):
                yield block
        finally:
            STATS["streams_closed"] += 1

    return StreamingHttpResponse(chunks(), content_type="application/octet-stream")


def stream_error_early(request):
    """A streamed response whose iterator fails before its first chunk (before the head)."""

    def chunks():
        raise RuntimeError("stream broke before the first chunk")
        yield b""  # pragma: no cover -- makes this a generator

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def big_body(request):
    """``mb`` MiB in one plain HttpResponse: a single chunk, as a built-in-memory export."""
    return HttpResponse(b"b" * (_number(request, "mb", 1) * 1024 * 1024),
                        content_type="application/octet-stream")


# --- PostgreSQL views for the database tests (tests/test_database.py) --------------------


def pg_sleep(request):
    """``SELECT pg_sleep(s)``: holds a connection and a running query for ``s`` seconds."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [_number(request, "s", 0.5)])
    return JsonResponse({
        "backend_pid": _backend_pid(), "pid": os.getpid(),
        "driver": connection.Database.__name__,
        # psycopg 3's libpq binding: "binary" (psycopg[binary]), "c" or "python".
        "impl": getattr(getattr(connection.Database, "pq", None), "__impl__", None),
    })


def _backend_pid():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def pg_pid(request):
    """The PostgreSQL backend serving this request: equal across requests = reused."""
    return JsonResponse({"backend_pid": _backend_pid(), "pid": os.getpid()})


def pg_open_transaction(request):
    """Starts a transaction Django does not know about and answers without ending it."""
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute("CREATE TEMPORARY TABLE IF NOT EXISTS left_open (n int)")
        cursor.execute("INSERT INTO left_open VALUES (1)")
    return JsonResponse({"backend_pid": _backend_pid()})


def no_db(request):
    """Touches no database: must never wait for a database connection."""
    return HttpResponse("no database\n", content_type="text/plain")


def pg_item(request):
    """One indexed SELECT on a small table (the benchmark's /pg-item/, bench/database.py)."""
    item = _number(request, "id", 0) or STATS["request_started"] % 1000 + 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM bench_item WHERE id = %s", [item])
        row = cursor.fetchone()
    return HttpResponse(f"{row[0] if row else '-'}\n", content_type="text/plain")
