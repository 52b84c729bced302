"""Hand a file to the front-end instead of streaming it through Python.

``X-Sendfile`` carries a filesystem path: Apache serves it with ``ProxySCGISendfile On``,
lighttpd with ``"x-sendfile" => "enable"`` (the path must be under its
``x-sendfile-docroot``). ``X-Accel-Redirect`` carries a URI that nginx maps to an
``internal`` location. Without such a front-end configuration the header reaches the
client and the body is empty: use ``FileResponse`` then (sent with ``os.sendfile``).
"""

from __future__ import annotations

import mimetypes
import os

from django.http import HttpResponse

VIA_HEADERS = {"x-sendfile": "X-Sendfile", "x-accel-redirect": "X-Accel-Redirect"}


def offload_response(
    path: str, *, via: str = "x-sendfile", uri: str | None = None,
    content_type: str | None = None, filename: str | None = None,
) -> HttpResponse:
    """A 200 response with no body whose header tells the front-end which file to send.

    ``via="x-sendfile"`` sends ``path`` (absolute filesystem path); ``via="x-accel-redirect"``
    sends ``uri`` (the nginx internal location of the same file).
    """
    header = VIA_HEADERS.get(via.lower())
    if header is None:
        raise ValueError(f"via must be one of {', '.join(VIA_HEADERS)}, not {via!r}")
    if header == "X-Sendfile" and not os.path.isabs(path):
        raise ValueError("X-Sendfile needs an absolute filesystem path")
    if header == "X-Accel-Redirect" and not (uri and uri.startswith("/")):
        raise ValueError("X-Accel-Redirect needs the file's internal URI, starting with /")
    if content_type is None:
        content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    response = HttpResponse(content_type=content_type)
    response[header] = path if header == "X-Sendfile" else uri
    if filename:
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
