"""Hand a file to the front-end instead of streaming it through Python.

``X-Sendfile`` carries a filesystem path: Apache serves it with ``ProxySCGISendfile On``,
lighttpd with ``"x-sendfile" => "enable"`` (the path must be under its
``x-sendfile-docroot``). ``X-Accel-Redirect`` carries a URI that nginx maps to an
``internal`` location. Without such a front-end configuration the header reaches the
client and the body is empty: use ``FileResponse`` then (sent with ``os.sendfile``).

The front-end trusts the header completely (Apache serves any file its access control
allows, and every front-end follows symlinks), so the path is confined here: it must
resolve, symlinks and ``..`` included, to a regular file inside one of the directories
in ``SCGI_OFFLOAD_ROOTS``, and the resolved path is what the front-end is given (it then
has no symlink left to follow). Names are encoded for the front-end that decodes them.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, SuspiciousFileOperation
from django.http import HttpResponse

from .environ import sendfile_path_is_decoded

VIA_HEADERS = {"x-sendfile": "X-Sendfile", "x-accel-redirect": "X-Accel-Redirect"}
ROOTS_SETTING = "SCGI_OFFLOAD_ROOTS"


def offload_response(
    path: str, *, via: str = "x-sendfile", uri: str | None = None,
    content_type: str | None = None, filename: str | None = None, request: Any = None,
) -> HttpResponse:
    """A 200 response with no body whose header tells the front-end which file to send.

    ``via="x-sendfile"`` sends ``path`` (an absolute filesystem path);
    ``via="x-accel-redirect"`` sends ``uri`` (the nginx internal location of the same
    file, not percent-encoded: that is done here). Either way ``path`` must be a
    regular file inside ``SCGI_OFFLOAD_ROOTS`` once symlinks are resolved, or
    ``SuspiciousFileOperation`` is raised (Django answers 400 and logs it to
    ``django.security``). ``request`` tells which front-end will read an
    ``X-Sendfile`` path (lighttpd percent-decodes it); without it a path that needs
    encoding is refused rather than sent in a form one front-end misreads.
    """
    header = VIA_HEADERS.get(via.lower())
    if header is None:
        raise ValueError(f"via must be one of {', '.join(VIA_HEADERS)}, not {via!r}")
    if header == "X-Accel-Redirect" and not (uri and uri.startswith("/")):
        raise ValueError("X-Accel-Redirect needs the file's internal URI, starting with /")
    real = confined_path(path)
    if content_type is None:
        content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    response = HttpResponse(content_type=content_type)
    if header == "X-Sendfile":
        response[header] = _sendfile_value(real, request)
    elif uri is not None:  # checked above: X-Accel-Redirect comes with its URI
        # nginx percent-decodes the URI (and would take "?" as the start of a query).
        response[header] = quote(uri, safe="/")
    if filename:
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def offload_roots() -> tuple[str, ...]:
    """``SCGI_OFFLOAD_ROOTS`` resolved (symlinks included); ImproperlyConfigured if unset."""
    roots: Any = getattr(settings, ROOTS_SETTING, None)
    problem = roots_problem(roots)
    if problem:
        raise ImproperlyConfigured(problem)
    return tuple(os.path.realpath(root) for root in roots)


def roots_problem(roots: Any) -> str | None:
    """Why ``roots`` is not a usable ``SCGI_OFFLOAD_ROOTS`` value, or None."""
    if roots is None:
        return (f"{ROOTS_SETTING} is not set: list the directories whose files may be "
                "offloaded to the front-end.")
    if isinstance(roots, (str, bytes)) or not isinstance(roots, Iterable):
        return f"{ROOTS_SETTING} must be a list of directories, not {roots!r}."
    for root in roots:
        if not isinstance(root, (str, os.PathLike)) or not os.path.isabs(root):
            return f"{ROOTS_SETTING} entries must be absolute paths, not {root!r}."
        if os.path.realpath(root) == os.path.sep:
            return f"{ROOTS_SETTING} must not contain / (every file would be offloadable)."
    return None


def confined_path(path: str) -> str:
    """``path`` with every symlink resolved, if that is a regular file inside a root."""
    if not os.path.isabs(path):
        raise SuspiciousFileOperation("offload needs an absolute filesystem path")
    real = os.path.realpath(path)
    if not any(_is_inside(real, root) for root in offload_roots()):
        raise SuspiciousFileOperation(
            f"offload of {path!r} refused: it resolves outside {ROOTS_SETTING}")
    try:
        regular = stat.S_ISREG(os.stat(real).st_mode)
    except OSError:
        regular = False
    if not regular:
        raise SuspiciousFileOperation(f"offload of {path!r} refused: not a regular file")
    return real


def _is_inside(real: str, root: str) -> bool:
    return real.startswith(root.rstrip(os.path.sep) + os.path.sep)


def _sendfile_value(real: str, request: Any) -> str:
    encoded = quote(real, safe="/")
    if request is not None:
        return encoded if sendfile_path_is_decoded(request.META) else real
    if encoded != real:
        raise SuspiciousFileOperation(
            f"offload of {real!r}: pass request= so that the name can be encoded for the "
            "front-end (lighttpd percent-decodes X-Sendfile, Apache does not)")
    return real
