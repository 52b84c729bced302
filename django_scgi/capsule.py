"""Serving a Gemini capsule from Django views: the public API.

A request from a Gemini front-end (Molly Brown, Xitzin) reaches a view as a plain,
secure GET (``django_scgi.environ``), and the server turns Django's answer into a Gemini
head (``django_scgi.gemini``: 2xx -> 20, redirects -> 30/31, 404 -> 51, ...). This
module covers what HTTP statuses cannot say -- ask for input (10/11), for a client
certificate (60-62), to slow down (44) -- and reads what a Gemini request carries (its
input, its client certificate). docs/gemini.rst documents it all.

Example::

    from django_scgi import capsule

    @capsule.requires_input("Search for?")
    def search(request):
        return capsule.GemtextResponse(f"# Results for {capsule.gemini_input(request)}\\n")

Unlike the rest of the package this module imports Django; the server never imports it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from django.http import HttpRequest, HttpResponse

from .gemini import GEMINI, GEMINI_CLIENT_CERT, GEMINI_INPUT, META_HEADER, STATUS_HEADER

__all__ = [
    "GeminiMiddleware",
    "GeminiResponse",
    "GemtextResponse",
    "certificate_not_authorised",
    "certificate_not_valid",
    "certificate_required",
    "client_certificate",
    "gemini_input",
    "is_gemini",
    "request_input",
    "requires_certificate",
    "requires_input",
    "slow_down",
]

View = TypeVar("View", bound=Callable[..., Any])

GEMTEXT = "text/gemini"

# The HTTP status a Gemini answer carries for anything that is not a Gemini front-end
# (an HTTP client on the same view, Django's test client): the closest in meaning.
_HTTP_STATUS = {1: 200, 2: 200, 3: 302, 4: 503, 5: 400, 6: 403}
_HTTP_EXACT = {42: 500, 43: 502, 44: 429, 51: 404, 52: 410, 60: 401}

# Everything printable in ASCII except "%" stays as it is in the meta header.
_META_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


# --- what a request carries ---------------------------------------------------------------


def is_gemini(request: HttpRequest) -> bool:
    """Whether ``request`` came from a Gemini front-end (Molly Brown, Xitzin)."""
    return request.META.get(GEMINI) is True


def gemini_input(request: HttpRequest) -> str | None:
    """The user's input: the whole query, percent-decoded ("hello world"), or None when
    the request has no query. For any request, Gemini or not."""
    query = request.META.get("QUERY_STRING", "")
    if not query:
        return None
    text = request.META.get(GEMINI_INPUT)
    if text is None:  # not a Gemini request: decode the same way
        from .gemini import gemini_input as decode

        text = decode(query)
    return str(text)


def client_certificate(request: HttpRequest) -> str | None:
    """The client certificate's SHA-256 fingerprint (64 lower-case hex digits), or None.

    The same form whichever front-end sent it (Molly Brown's hex, Xitzin's
    ``sha256:<hex>``): compare it with what you stored to recognise a user.
    """
    value = request.META.get(GEMINI_CLIENT_CERT)
    return str(value) if value else None


# --- answers HTTP cannot say --------------------------------------------------------------


class GeminiResponse(HttpResponse):  # type: ignore[misc]
    """A response with a Gemini status of its own choosing: ``GeminiResponse(10, "Name?")``.

    Over Gemini the client gets exactly ``<status> <meta>``; a body is sent only for 20.
    Over HTTP it is a plain response with the closest HTTP status (200 for input, 401 for
    60, 429 for 44, ...).
    """

    def __init__(self, gemini_status: int, meta: str = "", *args: Any, **kwargs: Any) -> None:
        if not 10 <= gemini_status <= 69:
            raise ValueError(f"Gemini status {gemini_status!r} is not in 10-69")
        kwargs.setdefault("status", _http_status(gemini_status))
        kwargs.setdefault("content_type", "text/plain; charset=utf-8")
        if not args and "content" not in kwargs:
            args = (meta,)
        super().__init__(*args, **kwargs)
        self.gemini_status = gemini_status
        self.gemini_meta = meta
        self[STATUS_HEADER] = str(gemini_status)
        self[META_HEADER] = quote(meta.encode("utf-8"), safe=_META_SAFE)


class GemtextResponse(HttpResponse):  # type: ignore[misc]
    """A gemtext page (``20 text/gemini``)."""

    def __init__(self, content: Any = b"", *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("content_type", GEMTEXT)
        super().__init__(content, *args, **kwargs)


def _http_status(gemini_status: int) -> int:
    return _HTTP_EXACT.get(gemini_status) or _HTTP_STATUS[gemini_status // 10]


def request_input(prompt: str, *, sensitive: bool = False) -> GeminiResponse:
    """Ask the user for a line of input (10; 11: sensitive, such as a password).

    The client requests the same URL again with the answer as the query:
    ``gemini_input(request)``.
    """
    return GeminiResponse(11 if sensitive else 10, prompt)


def certificate_required(message: str = "Client certificate required") -> GeminiResponse:
    """60: this page needs a client certificate."""
    return GeminiResponse(60, message)


def certificate_not_authorised(message: str = "Certificate not authorised") -> GeminiResponse:
    """61: this certificate may not see this page."""
    return GeminiResponse(61, message)


def certificate_not_valid(message: str = "Certificate not valid") -> GeminiResponse:
    """62: the certificate is not valid (expired, malformed)."""
    return GeminiResponse(62, message)


def slow_down(seconds: int) -> GeminiResponse:
    """44: the client must wait ``seconds`` before asking again."""
    response = GeminiResponse(44, str(int(seconds)))
    response["Retry-After"] = str(int(seconds))
    return response


# --- decorators ---------------------------------------------------------------------------


def requires_input(prompt: str, *, sensitive: bool = False) -> Callable[[View], View]:
    """Answer ``10 <prompt>`` (11 when ``sensitive``) until the request carries input."""
    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if gemini_input(request) is None:
                return request_input(prompt, sensitive=sensitive)
            return view(request, *args, **kwargs)
        return wrapper  # type: ignore[return-value]
    return decorate


def requires_certificate(message: str = "Client certificate required") -> Callable[[View], View]:
    """Answer ``60 <message>`` unless the request carries a client certificate."""
    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if client_certificate(request) is None:
                return certificate_required(message)
            return view(request, *args, **kwargs)
        return wrapper  # type: ignore[return-value]
    return decorate


# --- gemini:// absolute URIs --------------------------------------------------------------


class GeminiMiddleware:
    """Makes ``request.scheme`` "gemini" for Gemini requests (put it first in MIDDLEWARE).

    Without it a Gemini request is "https" to Django -- Django's ``is_secure()`` is
    ``scheme == "https"``, and Gemini is always TLS -- so ``build_absolute_uri()`` gives
    https:// URLs (the server still turns redirects to this capsule into gemini://).
    With it ``build_absolute_uri()`` gives gemini:// and ``is_secure()`` stays true.
    """

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        if is_gemini(request):
            request.__class__ = _gemini_class(type(request))
        return self.get_response(request)


class _GeminiScheme:
    """Mixed into the request's own class: the scheme is gemini, and it is secure."""

    @property
    def scheme(self) -> str:
        return "gemini"

    def is_secure(self) -> bool:
        return True


_GEMINI_CLASSES: dict[type, type] = {}


def _gemini_class(request_class: type) -> type:
    """The request class with the Gemini scheme mixed in, made once per class."""
    if issubclass(request_class, _GeminiScheme):
        return request_class
    made = _GEMINI_CLASSES.get(request_class)
    if made is None:
        made = type(f"Gemini{request_class.__name__}", (_GeminiScheme, request_class), {})
        _GEMINI_CLASSES[request_class] = made
    return made
